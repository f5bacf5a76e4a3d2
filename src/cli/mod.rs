//! The command line: its arguments (clap types, kept out of the library, all
//! here), the commands in [`commands`], [`history`] (`scan s3://` arguments,
//! `backfill`) and [`verify`], the Lambda entry in [`lambda`], and what they all
//! write to stderr in [`stderr`]. The commands import this module and
//! [`stderr`], never the other way round.

pub mod commands;
pub mod help;
pub mod history;
pub mod lambda;
pub mod stderr;
pub mod verify;
pub mod version;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use trailwatch::sink::OutputFormat;

/// Alerts on RDS snapshots exported to S3 (rds:StartExportTask) in CloudTrail logs.
///
/// One binary: the AWS Lambda function (when AWS_LAMBDA_RUNTIME_API is set, or
/// `trailwatch lambda`) and this command line, which runs the same pipeline on
/// local and S3 CloudTrail logs, replays Lambda events, verifies CloudTrail's
/// digests and tests rules. `--version` lists the rules compiled in.
#[derive(Parser)]
#[command(
    name = "trailwatch",
    // The short form; `--version` gets the rule list (see `Cli::parse_args`).
    version,
    after_help = help::TRAILWATCH
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command line as given. `--version`'s text parses and hashes every
    /// embedded rule (9 M instructions, 1.7 ms of CPU): it is attached only when the flag
    /// is there, not on every start, Lambda's cold starts included.
    pub fn parse_args() -> Cli {
        let asks_version = std::env::args_os()
            .skip(1)
            .any(|arg| arg == "--version" || arg == "-V");
        let mut command = <Cli as clap::CommandFactory>::command();
        if asks_version {
            command = command.version(version::text());
        }
        let matches = command.get_matches();
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the whole pipeline on CloudTrail log files, directories, stdin or s3:// history.
    ///
    /// Reads `.json.gz` and `.json` files (directories recursively), decides dedup
    /// on all matches in (eventTime, eventID) order, prints one alert per line
    /// (NDJSON unless on a terminal), then the roll-ups, and a summary on stderr.
    /// Nothing is published before everything is read.
    #[command(after_help = help::SCAN)]
    Scan(ScanArgs),
    /// Run the Lambda handler on event files, with S3 served from a local folder.
    ///
    /// The events are handled in order by one handler with one in-memory dedup
    /// store, as one warm Lambda instance would; each alert is printed as SNS
    /// would receive it, and a summary goes to stderr.
    #[command(after_help = help::INVOKE)]
    Invoke(InvokeArgs),
    /// Print the EventBridge event pattern of the enabled rules (the real-time path).
    ///
    /// The pattern sends the rules' API calls from the default bus to the
    /// function; template.yaml and deploy/member.yaml carry it verbatim.
    #[command(after_help = help::EVENTBRIDGE_PATTERN)]
    EventbridgePattern(PatternArgs),
    /// Write the S3 Batch Operations manifest of a CloudTrail history and print its job.
    ///
    /// Lists the history as `scan s3://` would (pruned by the filters), uploads
    /// the CSV manifest and prints the `aws s3control create-job` command that
    /// runs the backfill function over it.
    #[command(after_help = help::BACKFILL)]
    Backfill(BackfillArgs),
    /// Check a bucket's CloudTrail log files and digests against the signed digests.
    ///
    /// Like `aws cloudtrail validate-logs`, and also reports files no digest
    /// lists: one line per object that is not valid, then a summary.
    #[command(after_help = help::VERIFY)]
    Verify(VerifyArgs),
    /// Run the `Tests:` of rule files (every embedded rule when none is given).
    #[command(after_help = help::TEST)]
    Test {
        /// Rule files (Panther YAML format).
        rules: Vec<PathBuf>,
    },
    /// Run the Lambda runtime loop (automatic when AWS_LAMBDA_RUNTIME_API is set).
    #[command(after_help = help::LAMBDA)]
    Lambda,
}

#[derive(clap::Args)]
pub struct ScanArgs {
    /// Files (.json.gz, .json), directories (searched recursively), - for stdin,
    /// or s3://BUCKET[/PREFIX] (a CloudTrail bucket, listed by its key layout).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Record finished s3:// prefixes in FILE; a re-run with the same FILE and
    /// arguments continues where the last one stopped (one s3:// path only).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Output format [default: text on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Dedup window in minutes [default: the rule's DedupPeriodMinutes].
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(1..=10080))]
    pub dedup_window: Option<u32>,
    /// Alert on every match.
    #[arg(long, conflicts_with = "dedup_window")]
    pub no_dedup: bool,
    /// More rules: an embedded rule's name (enabling a rule shipped disabled) or a
    /// rule file (added to TRAILWATCH_RULES).
    #[arg(long = "rules", value_name = "NAME|FILE")]
    pub rules: Vec<PathBuf>,
    /// Files read in parallel [default: all cores; 32 objects for s3:// paths].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Show a progress bar on stderr [default: on a terminal].
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also verify the s3:// locations against CloudTrail's digests (see `verify`)
    /// and name the alerts that come from files that failed.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: the JSON `aws cloudtrail list-public-keys` prints, instead of
    /// calling ListPublicKeys.
    #[arg(long = "public-keys", value_name = "FILE", requires = "verify")]
    pub public_keys: Vec<PathBuf>,
    /// Look up what the rules declare (export task, snapshot, bucket owner) in
    /// the account of each alert, with the credentials of the environment
    /// (history is usually long finished: off by default).
    #[arg(long)]
    pub enrich: bool,
}

/// What a history (`s3://`) scan or backfill looks at, pruned by CloudTrail's key
/// layout before anything is listed. Local paths are read whole.
#[derive(clap::Args, Clone, Default)]
pub struct FilterArgs {
    /// Events from TIME on: an RFC 3339 date (2024-03-15), date-time, or an age
    /// (7d, 24h, 30m, 2w) [s3:// paths].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events up to TIME (a plain date includes that whole day) [s3:// paths].
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only these accounts (12-digit ids, comma-separated) [s3:// paths].
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub accounts: Vec<String>,
    /// Only these regions (comma-separated) [s3:// paths].
    #[arg(long, value_delimiter = ',', value_name = "REGION,...")]
    pub regions: Vec<String>,
}

impl FilterArgs {
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.accounts.is_empty()
            && self.regions.is_empty()
    }
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// s3://BUCKET[/PREFIX] of the CloudTrail logs.
    pub url: String,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Where the CSV manifest is uploaded: s3://BUCKET/KEY (the stack's
    /// BackfillBucketName).
    #[arg(long, value_name = "S3_URL")]
    pub manifest: String,
    /// The function the job invokes (the stack's TrailwatchFunctionArn).
    #[arg(long, value_name = "ARN")]
    pub function_arn: String,
    /// The role the job runs as (the stack's BatchOperationsRoleArn).
    #[arg(long, value_name = "ARN")]
    pub role_arn: String,
    /// Prefix of the job's completion report in the manifest bucket.
    #[arg(long, value_name = "PREFIX", default_value = "trailwatch-reports")]
    pub report_prefix: String,
    /// Prefixes listed at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: u32,
}

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// Lambda events (S3 notification, SQS, SNS, EventBridge, scheduled), handled
    /// in this order by one handler: "EventBridge first, then the log file" replays
    /// as it happens in Lambda, the second sighting a redelivery.
    #[arg(required = true, value_name = "EVENT")]
    pub events: Vec<PathBuf>,
    /// Folder serving S3 as DIR/<bucket>/<key> [default: `objects` beside each event].
    #[arg(long, value_name = "DIR")]
    pub objects: Option<PathBuf>,
    /// Output: the SNS publish request, NDJSON documents, or one line per alert.
    #[arg(long, value_enum, default_value = "sns")]
    pub format: OutputFormat,
    /// Run the handler exactly as Lambda mode does, against AWS as the SDK is
    /// configured (region, credentials, AWS_ENDPOINT_URL): objects from S3,
    /// alerts to TRAILWATCH_TOPIC_ARN, windows in TRAILWATCH_DEDUP_TABLE when set,
    /// enrichment and response.
    #[arg(long, conflicts_with_all = ["objects", "format"])]
    pub aws: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    /// One line per object that is not valid (`--verbose`: every object), then a summary.
    Text,
    /// One JSON document per object (NDJSON), every object.
    Json,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// s3://BUCKET[/PREFIX] of the CloudTrail logs (the trail's bucket and prefix).
    pub url: String,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The JSON `aws cloudtrail list-public-keys` prints, instead of calling
    /// ListPublicKeys (repeat for several regions or ranges).
    #[arg(long = "public-keys", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
    /// Output format [default: text].
    #[arg(long, value_enum, default_value = "text")]
    pub format: VerifyFormat,
    /// Also print the valid objects (text format).
    #[arg(long)]
    pub verbose: bool,
    /// Objects fetched at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: u32,
}

#[derive(clap::Args)]
pub struct PatternArgs {
    /// More rules, as for `scan --rules`: an embedded rule's name or a rule file.
    #[arg(long = "rules", value_name = "NAME|FILE")]
    pub rules: Vec<PathBuf>,
    /// Indent the JSON (the default is one line, as template.yaml carries it).
    #[arg(long)]
    pub pretty: bool,
}

/// The multi-threaded runtime every command runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
}
