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

pub fn run() -> ExitCode {
    init_logging();
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
    let integrity =
        match trailwatch::integrity::watch::enabled_from_env(|name| std::env::var(name).ok()) {
            Ok(on) => on,
            Err(e) => {
                tracing::error!(error = %e, "invalid configuration");
                eprintln!("trailwatch: {e}");
                return ExitCode::FAILURE;
            }
        };
    let result = runtime().block_on(async move {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sink = trailwatch::sink::lambda_sink(&config, &aws, &topic_arn);
        let mut handler = Handler::for_aws(&config, &aws, sink);
        if integrity {
            let watch =
                trailwatch::integrity::IntegrityWatch::for_aws(&aws, config.dedup_table.as_deref());
            handler = handler.with_integrity(watch);
        }
        let handler = Arc::new(handler);
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
