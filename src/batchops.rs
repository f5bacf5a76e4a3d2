//! S3 Batch Operations: the `LambdaInvoke` job event, one result per task, and the
//! documented response.
//!
//! Schema 1.0 tasks name the bucket by ARN (`s3BucketArn`) and URL-encode the key;
//! schema 2.0 tasks carry the bucket name (`s3Bucket`) and the key as it is. The
//! types are ours because `aws_lambda_events` knows only schema 1.0.
//!
//! Result codes: a throttled or timed-out read, or an alert that could not be
//! published, is a `TemporaryFailure` (Batch Operations retries it; dedup makes
//! the retry harmless); a missing, unreadable or corrupt object is a
//! `PermanentFailure` whose `resultString` names the cause. Matches of all tasks
//! are decided together, in event-time order, like a local scan.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::counters::Counters;
use crate::decode::DecodeError;
use crate::detect::Detector;
use crate::pipeline::Alerter;
use crate::read::read_object;
use crate::source::{ObjectRef, ObjectSource, SourceError};
use crate::time::now_ms;
use crate::trigger::{classify_key, KeyKind};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvent {
    pub invocation_schema_version: String,
    pub invocation_id: String,
    #[serde(default)]
    pub job: Job,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(default)]
    pub id: Option<String>,
    /// Schema 2.0 only.
    #[serde(default)]
    pub user_arguments: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_id: String,
    pub s3_key: String,
    #[serde(default)]
    pub s3_version_id: Option<String>,
    /// Schema 1.0: `arn:aws:s3:::bucket`.
    #[serde(default)]
    pub s3_bucket_arn: Option<String>,
    /// Schema 2.0: the bucket name.
    #[serde(default)]
    pub s3_bucket: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultCode {
    Succeeded,
    TemporaryFailure,
    PermanentFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    pub task_id: String,
    pub result_code: ResultCode,
    pub result_string: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub invocation_schema_version: String,
    /// For tasks missing from `results` (there are none: every task gets one).
    pub treat_missing_keys_as: ResultCode,
    pub invocation_id: String,
    pub results: Vec<TaskResult>,
}

#[derive(Debug, thiserror::Error)]
#[error("S3 Batch Operations event: {0}")]
pub struct BatchError(pub String);

/// Whether a Lambda event is a Batch Operations job event.
pub fn is_batch_event(event: &Value) -> bool {
    event.get("invocationSchemaVersion").is_some() && event.get("tasks").is_some()
}

/// Reads the event; an unknown schema version is refused.
pub fn parse(event: &Value) -> Result<BatchEvent, BatchError> {
    let event: BatchEvent =
        serde_json::from_value(event.clone()).map_err(|e| BatchError(e.to_string()))?;
    match event.invocation_schema_version.as_str() {
        "1.0" | "2.0" => Ok(event),
        other => Err(BatchError(format!(
            "invocationSchemaVersion {other:?} is not supported (1.0 or 2.0)"
        ))),
    }
}

impl Task {
    /// The task's object: bucket from the ARN (1.0) or the name (2.0); the key
    /// URL-decoded in 1.0.
    pub fn object(&self, schema: &str) -> Result<ObjectRef, String> {
        let bucket = match (&self.s3_bucket, &self.s3_bucket_arn) {
            (Some(bucket), _) => bucket.clone(),
            (None, Some(arn)) => arn
                .strip_prefix("arn:")
                .map(|rest| rest.splitn(5, ':').collect::<Vec<_>>())
                .filter(|parts| parts.len() == 5 && parts[1] == "s3")
                .map(|parts| parts[4])
                .filter(|b| !b.is_empty() && !b.contains(':') && !b.contains('/'))
                .ok_or_else(|| format!("s3BucketArn {arn:?} is not an S3 bucket ARN"))?
                .to_owned(),
            (None, None) => return Err("the task has neither s3Bucket nor s3BucketArn".into()),
        };
        let key = if schema == "1.0" {
            crate::trigger::decode_key(&self.s3_key).map_err(|e| e.to_string())?
        } else {
            self.s3_key.clone()
        };
        Ok(ObjectRef { bucket, key })
    }
}

/// The result of reading one task's object, before its alerts are published.
fn read_result(
    object: &ObjectRef,
    report: Result<crate::detect::ObjectReport, SourceError>,
) -> (ResultCode, String) {
    match report {
        Ok(report) => match &report.error {
            None => (
                ResultCode::Succeeded,
                format!(
                    "{} records, {} matches",
                    report.stats.records,
                    report.matches.len()
                ),
            ),
            // The body stopped arriving (timeout, reset): reading again can work.
            Some(DecodeError::Io(e)) => (
                ResultCode::TemporaryFailure,
                format!("{object}: read failed: {e}"),
            ),
            Some(e) => (
                ResultCode::PermanentFailure,
                format!("{object}: corrupt object: {e}"),
            ),
        },
        Err(SourceError::NotFound(_)) => (
            ResultCode::PermanentFailure,
            format!("{object}: object not found"),
        ),
        Err(e) if e.is_transient() => (ResultCode::TemporaryFailure, e.to_string()),
        Err(e) => (ResultCode::PermanentFailure, e.to_string()),
    }
}

/// Runs a job event: every task's object is read (`concurrency` at once), all
/// matches are decided and published together, and each task gets its result.
pub async fn run(
    event: &BatchEvent,
    detector: &Arc<Detector>,
    alerter: &Alerter,
    source: &dyn ObjectSource,
    concurrency: usize,
) -> (BatchResponse, Counters) {
    let schema = event.invocation_schema_version.as_str();
    let mut counters = Counters::default();
    let mut results: Vec<TaskResult> = Vec::with_capacity(event.tasks.len());
    let mut objects: Vec<(usize, ObjectRef)> = Vec::new();
    for (i, task) in event.tasks.iter().enumerate() {
        let (code, text) = match task.object(schema) {
            Err(cause) => (ResultCode::PermanentFailure, cause),
            Ok(object) => match classify_key(&object.key) {
                KeyKind::Log => {
                    objects.push((i, object));
                    (ResultCode::Succeeded, String::new())
                }
                kind => {
                    crate::events::key_skipped(&mut counters, &object, kind);
                    (
                        ResultCode::Succeeded,
                        format!("{object}: skipped, not a CloudTrail log file ({kind:?})"),
                    )
                }
            },
        };
        results.push(TaskResult {
            task_id: task.task_id.clone(),
            result_code: code,
            result_string: text,
        });
    }
    let reads: Vec<(usize, ObjectRef, _)> = stream::iter(objects)
        .map(|(i, object)| async move {
            let report = read_object(source, detector, &object).await;
            (i, object, report)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut matches = Vec::new();
    let mut task_of_source: HashMap<String, usize> = HashMap::new();
    for (i, object, report) in reads {
        match &report {
            Ok(report) => counters.add_object(report),
            Err(SourceError::NotFound(object)) => {
                crate::events::object_missing(&mut counters, object)
            }
            Err(e) => crate::events::fetch_failed(&mut counters, e),
        }
        task_of_source.insert(object.to_string(), i);
        if let Ok(report) = &report {
            matches.extend(report.matches.iter().cloned());
        }
        let (code, text) = read_result(&object, report);
        results[i].result_code = code;
        results[i].result_string = text;
    }
    for failure in alerter.process(matches, now_ms(), &mut counters).await {
        if let Some(&i) = task_of_source.get(&failure.source) {
            results[i].result_code = ResultCode::TemporaryFailure;
            results[i].result_string = format!(
                "{}: alert not published: {}",
                failure.source, failure.message
            );
        }
    }
    let response = BatchResponse {
        invocation_schema_version: event.invocation_schema_version.clone(),
        treat_missing_keys_as: ResultCode::PermanentFailure,
        invocation_id: event.invocation_id.clone(),
        results,
    };
    (response, counters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(key: &str, arn: Option<&str>, bucket: Option<&str>) -> Task {
        Task {
            task_id: "t".into(),
            s3_key: key.into(),
            s3_version_id: None,
            s3_bucket_arn: arn.map(str::to_owned),
            s3_bucket: bucket.map(str::to_owned),
        }
    }

    #[test]
    fn objects_of_both_schema_versions() {
        let v1 = task("a/b+c%2Bd.json.gz", Some("arn:aws:s3:::trail-bucket"), None);
        assert_eq!(
            v1.object("1.0").unwrap(),
            ObjectRef {
                bucket: "trail-bucket".into(),
                key: "a/b c+d.json.gz".into()
            }
        );
        let v2 = task("a/b+c%2Bd.json.gz", None, Some("trail-bucket"));
        assert_eq!(v2.object("2.0").unwrap().key, "a/b+c%2Bd.json.gz");
        assert!(task("k", Some("arn:aws:sqs:us-east-1:1:q"), None)
            .object("1.0")
            .unwrap_err()
            .contains("not an S3 bucket ARN"));
        assert!(task("k", None, None).object("2.0").is_err());
    }

    #[test]
    fn events_are_recognised_and_versions_checked() {
        let event = serde_json::json!({
            "invocationSchemaVersion": "3.0", "invocationId": "i", "job": {"id": "j"}, "tasks": []
        });
        assert!(is_batch_event(&event));
        assert!(parse(&event).unwrap_err().to_string().contains("3.0"));
        assert!(!is_batch_event(&serde_json::json!({"Records": []})));
    }

    #[test]
    fn result_codes_follow_the_cause() {
        let object = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
        };
        let transient = SourceError::Failed {
            object: object.clone(),
            cause: crate::aws_error::Cause::Throttled,
            message: "SlowDown".into(),
        };
        assert_eq!(
            read_result(&object, Err(transient)).0,
            ResultCode::TemporaryFailure
        );
        let (code, text) = read_result(&object, Err(SourceError::NotFound(object.clone())));
        assert_eq!(code, ResultCode::PermanentFailure);
        assert!(text.contains("s3://b/k"));
        let corrupt = crate::detect::ObjectReport::failed("s3://b/k", DecodeError::Empty);
        let (code, text) = read_result(&object, Ok(corrupt));
        assert_eq!(code, ResultCode::PermanentFailure);
        assert!(text.contains("corrupt object: empty object"), "{text}");
        let cut = crate::detect::ObjectReport::failed(
            "s3://b/k",
            DecodeError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            )),
        );
        assert_eq!(
            read_result(&object, Ok(cut)).0,
            ResultCode::TemporaryFailure
        );
    }
}
