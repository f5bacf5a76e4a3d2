//! The Lambda entry: logging as AWS documents it, configuration checked at cold
//! start, then the runtime loop around the library's handler.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use trailwatch::config::Config;
use trailwatch::handler::Handler;

use super::runtime;

/// The runtime's own subscriber, so that the function's log settings behave as
/// AWS documents them: `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, else info) and
/// `AWS_LAMBDA_LOG_FORMAT` (`JSON` for JSON lines, text otherwise). Warnings and
/// errors go through it; the invocation's summary does not: it is written as its
/// EMF document, a JSON line of its own with no level (Lambda reads it as INFO, so
/// an application log level above INFO would drop it along with the metrics).
fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Lambda mode's configuration: the environment's, with the alert topic, and
/// whether digests are checked. The error names the variable.
pub fn settings() -> Result<(Config, String, bool), trailwatch::config::ConfigError> {
    let config = Config::from_env()?;
    let topic_arn = config.require_topic()?.to_owned();
    let integrity =
        trailwatch::integrity::watch::enabled_from_env(|name| std::env::var(name).ok())?;
    Ok((config, topic_arn, integrity))
}

/// The handler exactly as Lambda mode builds it (also `trailwatch invoke --aws`):
/// the SDK configured from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`), S3 source, SNS sink (and Security Hub when enabled),
/// DynamoDB windows when a table is set, enrichment and response clients, digest
/// checks when on.
pub async fn aws_handler(config: &Config, topic_arn: &str, integrity: bool) -> Handler {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sink = trailwatch::sink::lambda_sink(config, &aws, topic_arn);
    let handler = Handler::for_aws(config, &aws, sink);
    if integrity {
        let watch =
            trailwatch::integrity::IntegrityWatch::for_aws(&aws, config.dedup_table.as_deref());
        return handler.with_integrity(watch);
    }
    handler
}

pub fn run() -> ExitCode {
    init_logging();
    // Bad configuration fails the cold start with one message naming the variable.
    let (config, topic_arn, integrity) = match settings() {
        Ok(settings) => settings,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("trailwatch: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime().block_on(async move {
        let handler = Arc::new(aws_handler(&config, &topic_arn, integrity).await);
        lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<Value>| {
                let handler = Arc::clone(&handler);
                // The summary, often the invocation's only line, names its request.
                trailwatch::events::with_request_id(event.context.request_id, async move {
                    handler.handle(event.payload).await
                })
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
