//! The `scan`, `invoke`, `eventbridge-pattern` and `test` commands: configuration
//! and arguments in, the library's pipeline run, an exit code out.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use trailwatch::config::{Config, EnrichSettings};
use trailwatch::counters::Counters;
use trailwatch::dedup::{DedupStore, MemoryStore, NoDedup};
use trailwatch::detect::Detector;
use trailwatch::enrich::{Enricher, MemberAccounts};
use trailwatch::handler::Handler;
use trailwatch::history::{collect_s3, HistoryArgs, HistoryError};
use trailwatch::pipeline::Alerter;
use trailwatch::rule::{run_rule_tests, Rule, RuleSet};
use trailwatch::scan::{decide, Collected};
use trailwatch::sink::{OutputFormat, StdoutSink};
use trailwatch::source::LocalSource;

use super::stderr::{init_cli_logging, usage_error};
use super::{runtime, InvokeArgs, PatternArgs, ScanArgs};

pub fn scan(args: ScanArgs) -> ExitCode {
    init_cli_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return usage_error(e),
    };
    let named: Vec<PathBuf> = config.rule_names.iter().map(PathBuf::from).collect();
    let rules = match RuleSet::load(&[named, args.rules.clone()].concat()) {
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
    let mut alerter = Alerter::new(
        Arc::clone(&detector.rules),
        dedup,
        Arc::new(StdoutSink::new(format)),
        config.allow.clone(),
        args.dedup_window.or(config.dedup_minutes),
    );
    let (s3_urls, local) = super::history::split_paths(&args.paths);
    if let Err(e) = super::history::check_scan_args(&s3_urls, &args.filters, &args.checkpoint) {
        return usage_error(e);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let local_jobs = args.jobs.map_or(cores, |j| j as usize);
    let s3_jobs = args.jobs.map_or(super::history::S3_JOBS, |j| j as usize);
    let progress = !args.no_progress && (args.progress || std::io::stderr().is_terminal());
    if args.verify && s3_urls.is_empty() {
        return usage_error(
            "--verify checks s3:// locations against their digests; none was given",
        );
    }
    let mut alert_sources = std::collections::BTreeSet::new();
    let summary = runtime().block_on(async {
        let started = Instant::now();
        if args.enrich {
            alerter.enricher = Some(enricher(&config).await);
        }
        let mut collected = if local.is_empty() {
            Collected::default()
        } else {
            trailwatch::files::read_local(&detector, &local, local_jobs, progress).await
        };
        if !s3_urls.is_empty() {
            let client = super::history::s3_client().await;
            let detector = Arc::new(detector.clone());
            for url in &s3_urls {
                let history = HistoryArgs {
                    url: url.clone(),
                    since: args.filters.since.clone(),
                    until: args.filters.until.clone(),
                    accounts: args.filters.accounts.clone(),
                    regions: args.filters.regions.clone(),
                    jobs: s3_jobs,
                    checkpoint: args.checkpoint.clone(),
                    progress,
                };
                let part = collect_s3(&history, client.clone(), Arc::clone(&detector)).await?;
                collected.absorb(&part.counters, part.matches, part.failures);
            }
        }
        if args.verify {
            alert_sources.extend(collected.matches.iter().map(|m| m.source.clone()));
        }
        Ok::<_, HistoryError>(decide(&alerter, collected, started).await)
    });
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) => {
            // Nothing was published: alerts are decided once everything is read.
            eprintln!("trailwatch: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for failure in &summary.failures {
        eprintln!("trailwatch: error: {failure}");
    }
    eprintln!("{}", summary.line());
    let verified = !args.verify
        || super::verify::after_scan(
            &s3_urls,
            &args.filters,
            &args.public_keys,
            s3_jobs,
            &alert_sources,
        );
    if summary.failures.is_empty() && verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `scan --enrich`: the lookups of a deployment, with the environment's
/// credentials (history is not acted on: no response is decided).
async fn enricher(config: &Config) -> Arc<Enricher> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let settings = EnrichSettings {
        enabled: true,
        ..config.enrich.clone()
    };
    let accounts = Arc::new(MemberAccounts::for_config(&aws, &settings));
    Arc::new(Enricher::for_aws(&settings, accounts))
}

pub fn invoke(args: InvokeArgs) -> ExitCode {
    init_cli_logging();
    if args.aws {
        return invoke_aws(&args.events);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return usage_error(e),
    };
    let events = match read_events(&args.events) {
        Ok(events) => events,
        Err(code) => return code,
    };
    // One dedup store and one sink for every event, as one warm Lambda instance.
    let dedup: Arc<dyn DedupStore> = Arc::new(MemoryStore::new());
    let sink = Arc::new(StdoutSink::new(args.format));
    let rt = runtime();
    run_events(&rt, events, |path| {
        let objects = args
            .objects
            .clone()
            .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).join("objects"));
        Arc::new(Handler::assemble(
            &config,
            config.rules.clone(),
            Arc::new(LocalSource::new(objects)),
            Arc::clone(&dedup),
            sink.clone(),
        ))
    })
}

/// Runs each event through the handler `handler_for` gives for its file, in
/// order, then prints the summed counts; fails when an invocation failed.
fn run_events(
    rt: &tokio::runtime::Runtime,
    events: Vec<(&PathBuf, Value)>,
    mut handler_for: impl FnMut(&Path) -> Arc<Handler>,
) -> ExitCode {
    let mut total = Counters::default();
    let mut failed = false;
    for (path, event) in events {
        let handler = handler_for(path);
        let (result, counters) = rt.block_on(handler.handle_counted(event));
        total.absorb(&counters);
        match result {
            Ok(response) => eprintln!("handler response: {response}"),
            Err(e) => {
                failed = true;
                eprintln!("trailwatch: invocation failed: {}: {e}", path.display());
            }
        }
    }
    eprintln!("{}", invoke_summary(&total));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads the event files, in order.
fn read_events(paths: &[PathBuf]) -> Result<Vec<(&PathBuf, Value)>, ExitCode> {
    let mut events = Vec::with_capacity(paths.len());
    for path in paths {
        let event: Result<Value, String> = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
        match event {
            Ok(event) => events.push((path, event)),
            Err(e) => return Err(usage_error(format!("{}: {e}", path.display()))),
        }
    }
    Ok(events)
}

/// `invoke --aws`: one handler built as Lambda mode builds it, for every event.
fn invoke_aws(paths: &[PathBuf]) -> ExitCode {
    let (config, topic_arn, integrity) = match super::lambda::settings() {
        Ok(settings) => settings,
        Err(e) => return usage_error(e),
    };
    let events = match read_events(paths) {
        Ok(events) => events,
        Err(code) => return code,
    };
    let rt = runtime();
    let handler = Arc::new(rt.block_on(super::lambda::aws_handler(&config, &topic_arn, integrity)));
    run_events(&rt, events, |_| Arc::clone(&handler))
}

/// The counts of every event of an `invoke`, summed, on stderr. Enrichment and
/// response counts follow only when something was looked up or decided (a local
/// `invoke` has neither).
fn invoke_summary(c: &Counters) -> String {
    let mut line = format!(
        "invoke: objects={} api_calls={} records={} matches={} alerts={} suppressed={} redeliveries={} allowed={} publish_failures={}",
        c.objects,
        c.api_calls,
        c.records,
        c.matches,
        c.alerts,
        c.suppressed,
        c.redeliveries,
        c.allowed,
        c.publish_failures,
    );
    if c.enrichment.enriched + c.enrichment.errors > 0 {
        line += &format!(
            " enriched={} enrichment_errors={}",
            c.enrichment.enriched, c.enrichment.errors
        );
    }
    let responses = c.responses.taken + c.responses.skipped + c.responses.failures;
    if responses + c.follow_ups > 0 {
        line += &format!(
            " responses_taken={} responses_skipped={} response_failures={} follow_ups={}",
            c.responses.taken, c.responses.skipped, c.responses.failures, c.follow_ups
        );
    }
    line
}

pub fn eventbridge_pattern(args: PatternArgs) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return usage_error(e),
    };
    let named: Vec<PathBuf> = config.rule_names.iter().map(PathBuf::from).collect();
    let rules = match RuleSet::load(&[named, args.rules].concat()) {
        Ok(rules) => rules,
        Err(e) => return usage_error(e),
    };
    match trailwatch::rule::event_pattern(&rules.rules) {
        Ok(pattern) if args.pretty => {
            println!("{pattern:#}");
            ExitCode::SUCCESS
        }
        Ok(pattern) => {
            println!("{pattern}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(e),
    }
}

pub fn rule_tests(paths: &[PathBuf]) -> ExitCode {
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
