//! `trailwatch verify s3://BUCKET[/PREFIX] --since T`: the bucket's log files and
//! digests checked against CloudTrail's signed digests (the library's
//! `integrity::audit`), and the `--verify` of `scan s3://…`, which says which
//! alerts came from files that failed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use trailwatch::config::Config;
use trailwatch::detect::Detector;
use trailwatch::history::layout::today;
use trailwatch::history::{resolve_filters, HistoryArgs, S3Lister, S3Url};
use trailwatch::integrity::audit::{Audit, Summary, Verdict};
use trailwatch::integrity::keys::{CloudTrailKeys, KeyRing, PublicKeySource, StaticKeys};
use trailwatch::source::S3Source;

use super::stderr::{init_cli_logging, usage_error};
use super::{runtime, FilterArgs, VerifyArgs, VerifyFormat};

fn history_args(url: &str, filters: &FilterArgs) -> HistoryArgs {
    HistoryArgs {
        url: url.to_owned(),
        since: filters.since.clone(),
        until: filters.until.clone(),
        accounts: filters.accounts.clone(),
        regions: filters.regions.clone(),
        ..HistoryArgs::default()
    }
}

/// The keys of `--public-keys` files, or ListPublicKeys.
fn key_source(
    files: &[PathBuf],
    aws: &aws_config::SdkConfig,
) -> Result<Arc<dyn PublicKeySource>, String> {
    if files.is_empty() {
        return Ok(Arc::new(CloudTrailKeys::new(aws)));
    }
    let mut keys = StaticKeys::default();
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
        keys.0.extend(
            StaticKeys::parse(&name, &text)
                .map_err(|e| e.to_string())?
                .0,
        );
    }
    Ok(Arc::new(keys))
}

/// Runs the audit of one location; `emit` sees every verdict.
async fn audit(
    url: &str,
    filters: &FilterArgs,
    public_keys: &[PathBuf],
    jobs: usize,
    emit: impl FnMut(&Verdict),
) -> Result<Summary, String> {
    let location = S3Url::parse(url).map_err(|e| e.to_string())?;
    let resolved = resolve_filters(&history_args(url, filters)).map_err(|e| e.to_string())?;
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_s3::Client::new(&aws);
    let audit = Audit {
        lister: Arc::new(S3Lister::new(client.clone())),
        source: Arc::new(S3Source::new(client)),
        detector: Arc::new(Detector::new(config.rules, config.limits)),
        keys: Arc::new(KeyRing::new(key_source(public_keys, &aws)?)),
        jobs,
    };
    audit
        .run(&location, &resolved, today(), emit)
        .await
        .map_err(|e| e.to_string())
}

pub fn run(args: VerifyArgs) -> ExitCode {
    init_cli_logging();
    if args.filters.since.is_none() {
        return usage_error(
            "verify needs --since: the start of the history to verify (a date, or an age like 7d)",
        );
    }
    if let Err(e) = S3Url::parse(&args.url)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            resolve_filters(&history_args(&args.url, &args.filters)).map_err(|e| e.to_string())
        })
    {
        return usage_error(e);
    }
    let stdout = std::io::stdout();
    let result = runtime().block_on(audit(
        &args.url,
        &args.filters,
        &args.public_keys,
        args.jobs as usize,
        |verdict| {
            let line = match args.format {
                VerifyFormat::Json => serde_json::to_string(verdict).ok(),
                VerifyFormat::Text => (args.verbose
                    || verdict.status.fails()
                    || verdict.status == trailwatch::integrity::audit::Status::Unverified)
                    .then(|| verdict.text()),
            };
            if let Some(line) = line {
                let _ = writeln!(stdout.lock(), "{line}");
            }
        },
    ));
    match result {
        Ok(summary) => {
            eprintln!("{}", summary.line());
            if summary.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("trailwatch: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scan s3://… --verify`: verifies the scanned locations and names, on stderr,
/// the log files that alerted (`alert_sources`) and failed verification.
/// Returns whether everything verified.
pub fn after_scan(
    urls: &[String],
    filters: &FilterArgs,
    public_keys: &[PathBuf],
    jobs: usize,
    alert_sources: &BTreeSet<String>,
) -> bool {
    let mut ok = true;
    for url in urls {
        let mut failed_sources = Vec::new();
        let result = runtime().block_on(audit(url, filters, public_keys, jobs, |verdict| {
            if verdict.status.fails() {
                eprintln!("trailwatch: verify: {}", verdict.text());
                if alert_sources.contains(&verdict.object) {
                    failed_sources.push(verdict.clone());
                }
            }
        }));
        match result {
            Ok(summary) => {
                eprintln!("trailwatch: verify {url}: {}", summary.line());
                ok &= !summary.failed();
            }
            Err(e) => {
                eprintln!("trailwatch: verify {url}: error: {e}");
                ok = false;
            }
        }
        for verdict in failed_sources {
            eprintln!(
                "trailwatch: verify: alerts from {} come from a log file that failed verification ({}{})",
                verdict.object,
                verdict.status.label(),
                verdict.detail.map(|d| format!(": {d}")).unwrap_or_default()
            );
        }
    }
    ok
}
