//! The command line: its arguments (clap types, kept out of the library), the
//! commands in [`commands`] and the Lambda entry in [`lambda`].

pub mod commands;
pub mod lambda;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use trailwatch::sink::OutputFormat;

#[derive(Parser)]
#[command(
    name = "trailwatch",
    version,
    about = "Alerts on RDS snapshots exported to S3 in CloudTrail logs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the whole pipeline on local CloudTrail files or directories.
    Scan(ScanArgs),
    /// Run the Lambda handler once on an event file, S3 served from a local folder.
    Invoke(InvokeArgs),
    /// Run the `Tests:` of rule files (the embedded rules when none is given).
    Test {
        /// Rule files (Panther YAML format).
        rules: Vec<PathBuf>,
    },
    /// Run the Lambda runtime loop (automatic when AWS_LAMBDA_RUNTIME_API is set).
    Lambda,
}

#[derive(clap::Args)]
pub struct ScanArgs {
    /// Files (.json.gz, .json), directories (searched recursively) or - for stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
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
    /// Files read in parallel [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Show a progress bar on stderr [default: on a terminal].
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// A Lambda event (S3 notification, SQS, SNS, EventBridge, scheduled).
    pub event: PathBuf,
    /// Folder serving S3 as DIR/<bucket>/<key> [default: `objects` beside the event].
    #[arg(long, value_name = "DIR")]
    pub objects: Option<PathBuf>,
    /// Output: the SNS publish request, NDJSON documents, or one line per alert.
    #[arg(long, value_enum, default_value = "sns")]
    pub format: OutputFormat,
}

/// The multi-threaded runtime every command runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
}
