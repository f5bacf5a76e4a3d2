//! The `trailwatch` binary: Lambda mode when `AWS_LAMBDA_RUNTIME_API` is set (or
//! `trailwatch lambda`), otherwise the command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::Value;

use trailwatch::config::Config;
use trailwatch::dedup::{DedupStore, MemoryStore, NoDedup};
use trailwatch::detect::Detector;
use trailwatch::handler::Handler;
use trailwatch::pipeline::Alerter;
use trailwatch::rule::{run_rule_tests, Rule, RuleSet};
use trailwatch::sink::{OutputFormat, StdoutSink};
use trailwatch::source::LocalSource;

#[derive(Parser)]
#[command(
    name = "trailwatch",
    version,
    about = "Alerts on RDS snapshots exported to S3 in CloudTrail logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
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
struct ScanArgs {
    /// Files (.json.gz, .json), directories (searched recursively) or - for stdin.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format [default: text on a terminal, json otherwise].
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Dedup window in minutes [default: the rule's DedupPeriodMinutes].
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(1..=10080))]
    dedup_window: Option<u32>,
    /// Alert on every match.
    #[arg(long, conflicts_with = "dedup_window")]
    no_dedup: bool,
    /// More rules: an embedded rule's name (enabling a rule shipped disabled) or a
    /// rule file (added to TRAILWATCH_RULES).
    #[arg(long = "rules", value_name = "NAME|FILE")]
    rules: Vec<PathBuf>,
    /// Files read in parallel [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    jobs: Option<u32>,
    /// Show a progress bar on stderr [default: on a terminal].
    #[arg(long, overrides_with = "no_progress")]
    progress: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(clap::Args)]
struct InvokeArgs {
    /// A Lambda event (S3 notification, SQS, SNS, EventBridge, scheduled).
    event: PathBuf,
    /// Folder serving S3 as DIR/<bucket>/<key> [default: `objects` beside the event].
    #[arg(long, value_name = "DIR")]
    objects: Option<PathBuf>,
    /// Output: the SNS publish request, NDJSON documents, or one line per alert.
    #[arg(long, value_enum, default_value = "sns")]
    format: OutputFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    match cli.command {
        Some(Command::Lambda) => run_lambda(),
        None if lambda => run_lambda(),
        Some(Command::Scan(args)) => scan(args),
        Some(Command::Invoke(args)) => invoke(args),
        Some(Command::Test { rules }) => rule_tests(&rules),
        None => {
            eprintln!("trailwatch: a command is needed (scan, invoke, test, lambda); see trailwatch --help");
            ExitCode::from(2)
        }
    }
}

fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("trailwatch: {message}");
    ExitCode::from(2)
}

fn scan(args: ScanArgs) -> ExitCode {
    init_cli_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return usage_error(e),
    };
    let named: Vec<PathBuf> = config.rule_names.iter().map(PathBuf::from).collect();
    let rules = match RuleSet::load(&[named, args.rules].concat()) {
        Ok(rules) => rules,
        Err(e) => return usage_error(e),
    };
    let detector = Detector::new(rules, config.limits);
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        OutputFormat::Text
    } else {
        OutputFormat::Json
    });
    let dedup: Arc<dyn DedupStore> = if args.no_dedup {
        Arc::new(NoDedup)
    } else {
        Arc::new(MemoryStore::new())
    };
    let alerter = Alerter {
        rules: Arc::clone(&detector.rules),
        dedup,
        sink: Arc::new(StdoutSink::new(format)),
        allow: config.allow.clone(),
        window_minutes: args.dedup_window.or(config.dedup_minutes),
    };
    let jobs = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = !args.no_progress && (args.progress || std::io::stderr().is_terminal());
    let summary = runtime().block_on(trailwatch::scan::run(
        &detector,
        &alerter,
        &args.paths,
        jobs,
        progress,
    ));
    for failure in &summary.failures {
        eprintln!("trailwatch: error: {failure}");
    }
    eprintln!("{}", summary.line());
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn invoke(args: InvokeArgs) -> ExitCode {
    init_cli_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return usage_error(e),
    };
    let event: Value = match std::fs::read(&args.event)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(event) => event,
        Err(e) => return usage_error(format!("{}: {e}", args.event.display())),
    };
    let objects = args.objects.unwrap_or_else(|| {
        args.event
            .parent()
            .unwrap_or(Path::new("."))
            .join("objects")
    });
    let handler = Handler::assemble(
        &config,
        config.rules.clone(),
        Arc::new(LocalSource::new(objects)),
        Arc::new(MemoryStore::new()),
        Arc::new(StdoutSink::new(args.format)),
    );
    match runtime().block_on(handler.handle(event)) {
        Ok(response) => {
            eprintln!("handler response: {response}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trailwatch: invocation failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rule_tests(paths: &[PathBuf]) -> ExitCode {
    let rules: Result<Vec<Rule>, _> = if paths.is_empty() {
        Ok(RuleSet::every_embedded().rules)
    } else {
        paths.iter().map(|p| Rule::from_file(p)).collect()
    };
    let rules = match rules {
        Ok(rules) => rules,
        Err(e) => return usage_error(e),
    };
    let outcomes = run_rule_tests(&rules);
    for o in &outcomes {
        println!(
            "{} {}: {} (expected {}, got {})",
            if o.passed() { "PASS" } else { "FAIL" },
            o.rule_id,
            o.name,
            o.expected,
            o.actual
        );
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    println!("{} passed, {} failed", outcomes.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn init_lambda_logging() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .try_init();
}

fn run_lambda() -> ExitCode {
    init_lambda_logging();
    // Bad configuration fails the cold start with one message naming the variable.
    let config = match Config::from_env()
        .and_then(|c| c.require_topic().map(str::to_owned).map(|t| (c, t)))
    {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("trailwatch: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (config, topic_arn) = config;
    let result = runtime().block_on(async move {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sink = trailwatch::sink::lambda_sink(&config, &aws, &topic_arn);
        let handler = Arc::new(Handler::for_aws(&config, &aws, sink));
        lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<Value>| {
                let handler = Arc::clone(&handler);
                async move { handler.handle(event.payload).await }
            },
        ))
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}
