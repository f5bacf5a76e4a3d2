//! The Lambda handler: trigger event -> object refs -> byte streams -> matches ->
//! dedup -> alerts -> sink, with one summary log line per invocation.
//!
//! The same handler runs in Lambda (S3 source, DynamoDB or memory dedup, SNS sink),
//! under `trailwatch invoke` (local folder, memory, stdout) and in tests (memory
//! fakes). Objects of one event are read concurrently, each on a blocking thread;
//! one bad object never stops the others, and their alerts are sent before the
//! invocation reports the failure so that Lambda retries it (dedup makes the retry
//! harmless).

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::config::Config;
use crate::dedup::DedupStore;
use crate::detect::{Detector, ObjectReport};
use crate::events;
use crate::pipeline::{Alerter, Counters};
use crate::rule::RuleSet;
use crate::sink::AlertSink;
use crate::source::{ObjectRef, ObjectSource, S3Source, SourceError};
use crate::time::now_ms;
use crate::trigger::{classify_key, parse_trigger, KeyKind, Trigger, TriggerError};

/// Why an invocation failed. Alerts for the good objects were already published.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error("{} of the event's objects failed: {}", .0.len(), .0.join("; "))]
    Objects(Vec<String>),
    #[error(transparent)]
    Batch(#[from] crate::batchops::BatchError),
}

pub struct Handler {
    pub detector: Arc<Detector>,
    pub alerter: Arc<Alerter>,
    pub source: Arc<dyn ObjectSource>,
    /// Objects read at once.
    pub concurrency: usize,
}

/// What one group of objects (an event, or one SQS message) produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub counters: Counters,
    /// One line per failure, naming the object and the cause.
    pub failures: Vec<String>,
}

impl Handler {
    /// Wires a handler from its parts and the configuration (limits, allow-list,
    /// dedup window, concurrency).
    pub fn assemble(
        config: &Config,
        rules: RuleSet,
        source: Arc<dyn ObjectSource>,
        dedup: Arc<dyn DedupStore>,
        sink: Arc<dyn AlertSink>,
    ) -> Handler {
        let detector = Arc::new(Detector::new(rules, config.limits));
        Handler {
            alerter: Arc::new(Alerter {
                rules: Arc::clone(&detector.rules),
                dedup,
                sink,
                allow: config.allow.clone(),
                window_minutes: config.dedup_minutes,
            }),
            detector,
            source,
            concurrency: config.concurrency,
        }
    }

    /// The handler as Lambda mode runs it: the embedded rules, objects from S3,
    /// windows in DynamoDB (or memory without a table), alerts through `sink`.
    pub fn for_aws(
        config: &Config,
        aws: &aws_config::SdkConfig,
        sink: Arc<dyn AlertSink>,
    ) -> Handler {
        Handler::assemble(
            config,
            config.rules.clone(),
            Arc::new(S3Source::new(aws_sdk_s3::Client::new(aws))),
            crate::dedup::store_for(config, aws),
            sink,
        )
    }

    /// Handles one invocation. The returned value is the Lambda response.
    pub async fn handle(&self, event: Value) -> Result<Value, HandlerError> {
        // A redriven dead-letter record is its original event.
        let event = crate::redrive::unwrap(event);
        if crate::batchops::is_batch_event(&event) {
            return self.handle_batch(&event).await;
        }
        let started = std::time::Instant::now();
        let trigger = parse_trigger(&event);
        let (kind, outcome, response) = match trigger? {
            Trigger::TestEvent => {
                tracing::info!("s3:TestEvent acknowledged");
                (
                    "test",
                    Outcome::default(),
                    json!({"status": "ignored s3:TestEvent"}),
                )
            }
            Trigger::Scheduled => {
                let mut outcome = Outcome::default();
                let failures = self
                    .alerter
                    .flush_rollups(now_ms(), false, &mut outcome.counters)
                    .await;
                outcome.failures = failures.iter().map(ToString::to_string).collect();
                let response = json!({"rollups": outcome.counters.rollups});
                ("schedule", outcome, response)
            }
            Trigger::Objects(objects) => {
                let outcome = self.process_objects(objects).await;
                let response = json!({"alerts": outcome.counters.alerts});
                ("objects", outcome, response)
            }
            Trigger::Batch(messages) => {
                let mut total = Outcome::default();
                let mut failed = Vec::new();
                for message in messages {
                    let outcome = match message.objects {
                        Ok(objects) => self.process_objects(objects).await,
                        Err(e) => {
                            tracing::error!(
                                message_id = %message.message_id,
                                error = %e,
                                "SQS message could not be read"
                            );
                            Outcome {
                                failures: vec![e.to_string()],
                                ..Outcome::default()
                            }
                        }
                    };
                    if !outcome.failures.is_empty() {
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = message.message_id.clone();
                        failed.push(failure);
                    }
                    total.merge(outcome);
                }
                crate::events::invocation_summary(
                    "sqs",
                    &total.counters,
                    total.failures.len(),
                    started,
                );
                // Partial batch response: only the failed messages are retried.
                let mut response = SqsBatchResponse::default();
                response.batch_item_failures = failed;
                // (Strings only: this cannot fail, and were it to, the whole batch
                // would be retried rather than acknowledged.)
                return serde_json::to_value(response)
                    .map_err(|e| HandlerError::Objects(vec![format!("SQS batch response: {e}")]));
            }
        };
        crate::events::invocation_summary(kind, &outcome.counters, outcome.failures.len(), started);
        if outcome.failures.is_empty() {
            Ok(response)
        } else {
            Err(HandlerError::Objects(outcome.failures))
        }
    }

    /// An S3 Batch Operations job event: every task gets its result code, and a
    /// job is always answered `Ok` (failures are in the results, where Batch
    /// Operations retries or reports them); only an unreadable event is an error.
    async fn handle_batch(&self, event: &Value) -> Result<Value, HandlerError> {
        let started = std::time::Instant::now();
        let event = crate::batchops::parse(event)?;
        let (response, counters) = crate::batchops::run(
            &event,
            &self.detector,
            &self.alerter,
            self.source.as_ref(),
            self.concurrency,
        )
        .await;
        let failures = response
            .results
            .iter()
            .filter(|r| r.result_code != crate::batchops::ResultCode::Succeeded)
            .count();
        events::invocation_summary("batch", &counters, failures, started);
        serde_json::to_value(response)
            .map_err(|e| HandlerError::Objects(vec![format!("Batch Operations response: {e}")]))
    }

    /// Reads the objects, then decides and publishes their matches together.
    pub async fn process_objects(&self, objects: Vec<ObjectRef>) -> Outcome {
        let mut outcome = Outcome::default();
        let mut wanted = Vec::new();
        for object in objects {
            match classify_key(&object.key) {
                KeyKind::Log => wanted.push(object),
                kind => events::key_skipped(&mut outcome.counters, &object, kind),
            }
        }
        let reports: Vec<(ObjectRef, Result<ObjectReport, SourceError>)> = stream::iter(wanted)
            .map(|object| async move {
                let report = self.read_object(&object).await;
                (object, report)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut matches = Vec::new();
        for (object, report) in reports {
            match report {
                Ok(report) => {
                    outcome.counters.add_object(&report);
                    if let Some(error) = &report.error {
                        tracing::error!(object = %object, error = %error, "object failed");
                        outcome.failures.push(format!("{object}: {error}"));
                    }
                    matches.extend(report.matches);
                }
                Err(SourceError::NotFound(object)) => {
                    events::object_missing(&mut outcome.counters, &object);
                }
                Err(e) => {
                    events::fetch_failed(&mut outcome.counters, &e);
                    outcome.failures.push(e.to_string());
                }
            }
        }
        let failures = self
            .alerter
            .process(matches, now_ms(), &mut outcome.counters)
            .await;
        outcome
            .failures
            .extend(failures.iter().map(ToString::to_string));
        outcome
    }

    async fn read_object(&self, object: &ObjectRef) -> Result<ObjectReport, SourceError> {
        crate::history::scan::read_object(self.source.as_ref(), &self.detector, object).await
    }
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.counters.absorb(&other.counters);
        self.failures.extend(other.failures);
    }
}

/// Lambda reports the failure with its kind and the full message (objects and causes).
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let kind = match error {
            HandlerError::Trigger(_) => "UnknownTrigger",
            HandlerError::Objects(_) => "ObjectsFailed",
            HandlerError::Batch(_) => "InvalidBatchEvent",
        };
        lambda_runtime::Diagnostic {
            error_type: kind.into(),
            error_message: error.to_string(),
        }
    }
}
