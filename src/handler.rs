//! The Lambda handler: trigger event -> object refs -> byte streams -> matches ->
//! dedup -> alerts -> sink, with one summary log line per invocation.
//!
//! The same handler runs in Lambda (S3 source, DynamoDB or memory dedup, SNS sink),
//! under `trailwatch invoke` (local folder, memory, stdout) and in tests (memory
//! fakes). Objects of one event are read concurrently, each on a blocking thread;
//! one bad object never stops the others, and their alerts are sent before the
//! invocation reports the failure so that Lambda retries it (dedup makes the retry
//! harmless). The messages of an SQS batch are read concurrently too, within the
//! same bound on reads in flight, their matches decided together as one event's,
//! and each failed message is reported alone.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::aws_error::Cause;
use crate::config::Config;
use crate::counters::{Counters, PublishFailure};
use crate::decode::DecodeError;
use crate::dedup::DedupStore;
use crate::detect::{Detector, ObjectReport};
use crate::enrich::{Enricher, MemberAccounts};
use crate::events;
use crate::pipeline::Alerter;
use crate::respond::{Responder, ResponseMode};
use crate::rule::RuleSet;
use crate::sink::AlertSink;
use crate::source::{ObjectRef, ObjectSource, S3Source, SourceError};
use crate::time::now_ms;
use crate::trigger::{
    classify_key, parse_trigger, ApiCall, BatchMessage, KeyKind, Trigger, TriggerError,
};

/// Why an invocation failed. Alerts for the good objects were already published.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error("{} of the event's objects failed: {}", .0.len(), join(.0))]
    Objects(Vec<Failure>),
    #[error(transparent)]
    Batch(#[from] crate::batchops::BatchError),
    /// The response could not be encoded (it holds only strings: not expected).
    #[error("{what} response: {source}")]
    Response {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// One thing that went wrong in an invocation, with its cause kept typed so that
/// retrying (throttling, timeouts) and fixing (access denied, corrupt objects) can
/// be told apart by code, not by reading a message.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The object was read but its content is bad (corrupt gzip, not CloudTrail).
    #[error("{object}: {error}")]
    Decode {
        object: ObjectRef,
        error: DecodeError,
    },
    /// The object could not be fetched.
    #[error(transparent)]
    Fetch(SourceError),
    /// An alert or roll-up could not be published or recorded.
    #[error(transparent)]
    Publish(PublishFailure),
    /// An SQS message's body is not a known notification.
    #[error("SQS message {message_id}: {error}")]
    Message {
        message_id: String,
        error: TriggerError,
    },
    /// A record EventBridge delivered (`eventbridge:<region>:<id>`) that no JSON
    /// parser accepts.
    #[error("{origin}: {error}")]
    Record { origin: String, error: DecodeError },
    /// A digest could not be checked to the end (see `crate::integrity::watch`).
    #[error("integrity check: {0}")]
    Integrity(crate::integrity::IntegrityFailure),
}

impl Failure {
    /// The AWS-side cause, for failures that came from a call to AWS.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            Failure::Fetch(e) => Some(e.cause()),
            Failure::Publish(p) => Some(p.cause),
            Failure::Integrity(f) => Some(f.cause),
            Failure::Decode { .. } | Failure::Message { .. } | Failure::Record { .. } => None,
        }
    }

    /// Whether the same invocation may succeed later (throttling, timeouts).
    pub fn is_transient(&self) -> bool {
        self.cause().is_some_and(Cause::is_transient)
    }
}

fn join(failures: &[Failure]) -> String {
    let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
    text.join("; ")
}

pub struct Handler {
    pub detector: Arc<Detector>,
    pub alerter: Arc<Alerter>,
    pub source: Arc<dyn ObjectSource>,
    /// Objects read at once.
    pub concurrency: usize,
    /// `concurrency` permits, one per object read in flight, shared by the
    /// messages of an SQS batch.
    reads: Arc<Semaphore>,
    /// Digest checking and the scanned-object ledger, when on (`TRAILWATCH_INTEGRITY`).
    pub integrity: Option<Arc<crate::integrity::IntegrityWatch>>,
}

/// What reading one group of objects (an event, or one SQS message) gave, before
/// its matches are decided.
#[derive(Debug, Default)]
struct Reading {
    outcome: Outcome,
    matches: Vec<crate::detect::Match>,
    /// Digest deliveries, checked once the matches are decided.
    digests: Vec<ObjectRef>,
}

/// What one group of objects (an event, or one SQS message) produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub counters: Counters,
    /// Each failure, naming the object and the cause.
    pub failures: Vec<Failure>,
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
            alerter: Arc::new(Alerter::new(
                Arc::clone(&detector.rules),
                dedup,
                sink,
                config.allow.clone(),
                config.dedup_minutes,
            )),
            detector,
            source,
            concurrency: config.concurrency,
            reads: Arc::new(Semaphore::new(config.concurrency.max(1))),
            integrity: None,
        }
    }

    /// The same handler, checking digests and recording what it scans.
    pub fn with_integrity(mut self, watch: crate::integrity::IntegrityWatch) -> Handler {
        self.integrity = Some(Arc::new(watch));
        self
    }

    /// The same handler, looking up what the rules declare (`enricher`) and
    /// deciding their containment (`responder`) for each match.
    pub fn with_actions(
        mut self,
        enricher: Option<Arc<Enricher>>,
        responder: Option<Responder>,
    ) -> Handler {
        let mut alerter = (*self.alerter).clone();
        alerter.enricher = enricher;
        alerter.responder = responder;
        self.alerter = Arc::new(alerter);
        self
    }

    /// The handler as Lambda mode runs it: the embedded rules, objects from S3,
    /// windows in DynamoDB (or memory without a table), lookups and containment in
    /// the account of each event (its member role, `TRAILWATCH_MEMBER_ROLE_NAME`)
    /// unless turned off (`TRAILWATCH_ENRICH=false`, `TRAILWATCH_RESPONSE=off`),
    /// alerts through `sink`.
    pub fn for_aws(
        config: &Config,
        aws: &aws_config::SdkConfig,
        sink: Arc<dyn AlertSink>,
    ) -> Handler {
        let accounts = Arc::new(MemberAccounts::for_config(aws, &config.enrich));
        let enricher = config
            .enrich
            .enabled
            .then(|| Arc::new(Enricher::for_aws(&config.enrich, Arc::clone(&accounts))));
        let responder = (config.response.mode != ResponseMode::Off)
            .then(|| Responder::for_aws(config, aws, accounts));
        Handler::assemble(
            config,
            config.rules.clone(),
            Arc::new(S3Source::new(aws_sdk_s3::Client::new(aws))),
            crate::dedup::store_for(config, aws),
            sink,
        )
        .with_actions(enricher, responder)
    }

    /// Handles one invocation. The returned value is the Lambda response.
    pub async fn handle(&self, event: Value) -> Result<Value, HandlerError> {
        self.handle_counted(event).await.0
    }

    /// [`Handler::handle`], with the invocation's counts (`trailwatch invoke` sums
    /// them over its events).
    pub async fn handle_counted(&self, event: Value) -> (Result<Value, HandlerError>, Counters) {
        // A redriven dead-letter record is its original event.
        let event = crate::redrive::unwrap(event);
        if crate::batchops::is_batch_event(&event) {
            return self.handle_batch(&event).await;
        }
        let started = std::time::Instant::now();
        let trigger = match parse_trigger(&event) {
            Ok(trigger) => trigger,
            Err(e) => return (Err(e.into()), Counters::default()),
        };
        let (kind, outcome, response) = match trigger {
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
                outcome.failures = failures.into_iter().map(Failure::Publish).collect();
                let response = json!({"rollups": outcome.counters.rollups});
                ("schedule", outcome, response)
            }
            Trigger::Objects(objects) => {
                let outcome = self.process_objects(objects).await;
                let response = json!({"alerts": outcome.counters.alerts});
                ("objects", outcome, response)
            }
            Trigger::ApiCalls(calls) => {
                let outcome = self.process(Vec::new(), calls).await;
                let response = json!({"alerts": outcome.counters.alerts});
                ("eventbridge", outcome, response)
            }
            Trigger::Batch(messages) => {
                let (total, failed) = self.process_batch(messages).await;
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
                let response =
                    serde_json::to_value(response).map_err(|source| HandlerError::Response {
                        what: "SQS batch",
                        source,
                    });
                return (response, total.counters);
            }
        };
        crate::events::invocation_summary(kind, &outcome.counters, outcome.failures.len(), started);
        if outcome.failures.is_empty() {
            (Ok(response), outcome.counters)
        } else {
            (
                Err(HandlerError::Objects(outcome.failures)),
                outcome.counters,
            )
        }
    }

    /// An S3 Batch Operations job event: every task gets its result code, and a
    /// job is always answered `Ok` (failures are in the results, where Batch
    /// Operations retries or reports them); only an unreadable event is an error.
    async fn handle_batch(&self, event: &Value) -> (Result<Value, HandlerError>, Counters) {
        let started = std::time::Instant::now();
        let event = match crate::batchops::parse(event) {
            Ok(event) => event,
            Err(e) => return (Err(e.into()), Counters::default()),
        };
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
        let response = serde_json::to_value(response).map_err(|source| HandlerError::Response {
            what: "Batch Operations",
            source,
        });
        (response, counters)
    }

    /// The messages of an SQS batch: read concurrently (at most `concurrency`
    /// messages at once, their object reads sharing the handler's read permits, so
    /// a batch never has more reads in flight than one event), then their matches
    /// decided together in event-time order, exactly as if the batch were one event
    /// (the same alerts whatever order the messages arrive in). Each message
    /// succeeds or fails alone: a message whose object could not be read, or one
    /// of whose alerts could not be published, is returned for
    /// `batchItemFailures`, in the batch's order, and only it is retried.
    async fn process_batch(&self, messages: Vec<BatchMessage>) -> (Outcome, Vec<BatchItemFailure>) {
        let mut reads: Vec<(usize, String, Reading)> =
            stream::iter(messages.into_iter().enumerate())
                .map(|(index, message)| async move {
                    let reading = match message.objects {
                        Ok(objects) => self.read(objects, message.api_calls).await,
                        Err(e) => {
                            tracing::error!(
                                message_id = %message.message_id,
                                error = %e,
                                "SQS message could not be read"
                            );
                            let mut reading = Reading::default();
                            reading.outcome.failures.push(Failure::Message {
                                message_id: message.message_id.clone(),
                                error: e,
                            });
                            reading
                        }
                    };
                    (index, message.message_id, reading)
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
        reads.sort_unstable_by_key(|(index, _, _)| *index);
        // Which messages each match came from (an object may be named twice).
        let mut owners: HashMap<String, Vec<usize>> = HashMap::new();
        let mut matches = Vec::new();
        for (position, (_, _, reading)) in reads.iter_mut().enumerate() {
            for m in &reading.matches {
                let messages = owners.entry(m.source.clone()).or_default();
                if messages.last() != Some(&position) {
                    messages.push(position);
                }
            }
            matches.append(&mut reading.matches);
        }
        let mut total = Outcome::default();
        for failure in self
            .alerter
            .process(matches, now_ms(), &mut total.counters)
            .await
        {
            for &position in owners.get(&failure.source).into_iter().flatten() {
                reads[position]
                    .2
                    .outcome
                    .failures
                    .push(Failure::Publish(failure.clone()));
            }
        }
        let mut failed = Vec::new();
        for (_, message_id, mut reading) in reads {
            self.check_digests(&mut reading).await;
            if !reading.outcome.failures.is_empty() {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                failed.push(failure);
            }
            total.merge(reading.outcome);
        }
        (total, failed)
    }

    /// Reads the objects, then decides and publishes their matches together.
    pub async fn process_objects(&self, objects: Vec<ObjectRef>) -> Outcome {
        self.process(objects, Vec::new()).await
    }

    /// Reads the objects and evaluates the records EventBridge delivered, then
    /// decides and publishes all their matches together, then checks the digests
    /// among the objects.
    pub async fn process(&self, objects: Vec<ObjectRef>, api_calls: Vec<ApiCall>) -> Outcome {
        let mut reading = self.read(objects, api_calls).await;
        let failures = self
            .alerter
            .process(
                std::mem::take(&mut reading.matches),
                now_ms(),
                &mut reading.outcome.counters,
            )
            .await;
        reading
            .outcome
            .failures
            .extend(failures.into_iter().map(Failure::Publish));
        self.check_digests(&mut reading).await;
        reading.outcome
    }

    /// The read half of [`Handler::process`]: the objects (log files read, digests
    /// set aside) and the EventBridge records, into matches, counts and failures.
    async fn read(&self, objects: Vec<ObjectRef>, api_calls: Vec<ApiCall>) -> Reading {
        let mut outcome = Outcome::default();
        let mut wanted = Vec::new();
        let mut digests = Vec::new();
        for object in objects {
            match classify_key(&object.key) {
                KeyKind::Log => wanted.push(object),
                KeyKind::Digest if self.integrity.is_some() => digests.push(object),
                kind => events::key_skipped(&mut outcome.counters, &object, kind),
            }
        }
        let reports: Vec<(ObjectRef, Result<ObjectReport, SourceError>, Option<Cause>)> =
            stream::iter(wanted)
                .map(|object| async move {
                    let (report, unrecorded) = self.read_object(&object).await;
                    (object, report, unrecorded)
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
        let mut matches = Vec::new();
        for (object, report, unrecorded) in reports {
            if let Some(cause) = unrecorded {
                *outcome.counters.errors_by_cause.entry(cause).or_default() += 1;
            }
            match report {
                Ok(mut report) => {
                    outcome.counters.add_object(&report);
                    if let Some(error) = report.error.take() {
                        tracing::error!(object = %object, error = %error, "object failed");
                        outcome.failures.push(Failure::Decode { object, error });
                    }
                    matches.extend(report.matches);
                }
                Err(SourceError::NotFound(object)) => {
                    events::object_missing(&mut outcome.counters, &object);
                }
                Err(e) => {
                    events::fetch_failed(&mut outcome.counters, &e);
                    outcome.failures.push(Failure::Fetch(e));
                }
            }
        }
        // ---- records EventBridge delivered (real time) ----
        for call in api_calls {
            let mut report = self
                .detector
                .detect_record(call.record.as_bytes(), &call.source);
            outcome.counters.add_api_call(&report);
            if let Some(error) = report.error.take() {
                tracing::error!(source = %call.source, error = %error, "EventBridge record failed");
                outcome.failures.push(Failure::Record {
                    origin: call.source,
                    error,
                });
            }
            matches.extend(report.matches);
        }
        Reading {
            outcome,
            matches,
            digests,
        }
    }

    /// Checks the digests a reading set aside, after the log files of its event:
    /// their rescans and alerts come on top of the event's own.
    async fn check_digests(&self, reading: &mut Reading) {
        let Some(watch) = &self.integrity else {
            return;
        };
        let pipe = crate::integrity::Pipeline {
            source: self.source.as_ref(),
            detector: &self.detector,
            alerter: &self.alerter,
            concurrency: self.concurrency,
        };
        for digest in std::mem::take(&mut reading.digests) {
            let failures = watch
                .on_digest(&pipe, &digest, &mut reading.outcome.counters)
                .await;
            reading
                .outcome
                .failures
                .extend(failures.into_iter().map(Failure::Integrity));
        }
    }

    /// Reads one log object; with integrity on, also the cause of a failed ledger write.
    async fn read_object(
        &self,
        object: &ObjectRef,
    ) -> (Result<ObjectReport, SourceError>, Option<Cause>) {
        // The semaphore is never closed; were it to be, the read would go ahead
        // unbounded rather than fail.
        let _permit = self.reads.acquire().await.ok();
        let Some(watch) = &self.integrity else {
            let report =
                crate::read::read_object(self.source.as_ref(), &self.detector, object).await;
            return (report, None);
        };
        // Hashed while scanned and recorded; a ledger that cannot be written only
        // costs a second read when the digest comes, so it is counted, not failed.
        let (report, unrecorded) = watch
            .read_and_record(self.source.as_ref(), &self.detector, object)
            .await;
        if let Some(e) = &unrecorded {
            tracing::warn!(object = %object, cause = e.cause.label(), error = %e, "scanned but not recorded in the integrity ledger");
        }
        (report, unrecorded.map(|e| e.cause))
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
        let kind = match &error {
            HandlerError::Trigger(_) => "UnknownTrigger",
            // Every failure may pass on a retry (throttling, timeouts): say so.
            HandlerError::Objects(failures) if failures.iter().all(Failure::is_transient) => {
                "ObjectsFailedTransient"
            }
            HandlerError::Objects(_) => "ObjectsFailed",
            HandlerError::Batch(_) => "InvalidBatchEvent",
            HandlerError::Response { .. } => "ResponseEncoding",
        };
        lambda_runtime::Diagnostic {
            error_type: kind.into(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_failure(cause: Cause) -> Failure {
        Failure::Fetch(SourceError::Failed {
            object: ObjectRef {
                bucket: "trail".into(),
                key: "AWSLogs/1/CloudTrail/a.json.gz".into(),
            },
            cause,
            message: "GetObject".into(),
        })
    }

    fn error_type(failures: Vec<Failure>) -> String {
        lambda_runtime::Diagnostic::from(HandlerError::Objects(failures)).error_type
    }

    #[test]
    fn lambda_is_told_whether_a_retry_can_help() {
        let throttled = || fetch_failure(Cause::Throttled);
        assert_eq!(
            error_type(vec![throttled(), fetch_failure(Cause::Timeout)]),
            "ObjectsFailedTransient"
        );
        assert_eq!(
            error_type(vec![throttled(), fetch_failure(Cause::AccessDenied)]),
            "ObjectsFailed"
        );
        let corrupt = Failure::Decode {
            object: ObjectRef {
                bucket: "trail".into(),
                key: "k".into(),
            },
            error: DecodeError::Empty,
        };
        assert_eq!(corrupt.cause(), None);
        assert_eq!(error_type(vec![corrupt]), "ObjectsFailed");
        let message = fetch_failure(Cause::AccessDenied).to_string();
        assert!(
            message.contains("s3://trail/AWSLogs/1/CloudTrail/a.json.gz")
                && message.contains("access denied"),
            "{message}"
        );
    }
}
