//! One object read: object ref -> source -> detector -> report.
//!
//! Every path that reads a CloudTrail log file reads it here, so that they all
//! fail, count and report an object the same way: the Lambda handler (S3
//! notifications, SQS and SNS deliveries), S3 Batch Operations tasks
//! ([`crate::batchops`]), the integrity rescans of files a digest lists
//! ([`crate::integrity`]) and `scan s3://` ([`crate::history`]). It sits below
//! all of them, beside [`crate::detect`], so that none imports another to read
//! an object.
//!
//! The body is fetched through the [`ObjectSource`] (S3, a local folder, a fake)
//! and scanned on a blocking thread: detection is CPU-bound and must not hold up
//! the async runtime. A scan that stops unexpectedly (a panic) is that object's
//! failure, named and typed like any other, never the caller's.

use std::sync::Arc;

use crate::aws_error::Cause;
use crate::detect::{Detector, ObjectReport};
use crate::source::{Body, ObjectRef, ObjectSource, SourceError};

/// Fetches one object and runs the detector over its body on a blocking thread.
pub async fn read_object(
    source: &dyn ObjectSource,
    detector: &Arc<Detector>,
    object: &ObjectRef,
) -> Result<ObjectReport, SourceError> {
    let detector = Arc::clone(detector);
    read_with(source, object, move |body, name| {
        detector.detect(body, name)
    })
    .await
}

/// Fetches one object and runs `scan` over its body (and the object's name, as
/// reports show it) on a blocking thread: [`read_object`], or a scan that also
/// does something else in the same pass (the integrity ledger's hashing).
pub async fn read_with<T, F>(
    source: &dyn ObjectSource,
    object: &ObjectRef,
    scan: F,
) -> Result<T, SourceError>
where
    T: Send + 'static,
    F: FnOnce(Body, &str) -> T + Send + 'static,
{
    let body = source.open(object).await?;
    let name = object.to_string();
    tokio::task::spawn_blocking(move || scan(body, &name))
        .await
        .map_err(|e| SourceError::Failed {
            object: object.clone(),
            cause: Cause::Other,
            message: format!("reading the object stopped unexpectedly: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Limits;
    use crate::rule::RuleSet;
    use crate::source::LocalSource;

    fn object(key: &str) -> ObjectRef {
        ObjectRef {
            bucket: "bucket".into(),
            key: key.into(),
        }
    }

    #[tokio::test]
    async fn an_object_is_read_through_the_source_and_named_as_reports_show_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bucket/AWSLogs")).unwrap();
        let record = r#"{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventTime":"2024-03-15T10:33:41Z","eventID":"e1","awsRegion":"us-east-1","recipientAccountId":"123456789012"}"#;
        std::fs::write(
            dir.path().join("bucket/AWSLogs/log.json"),
            format!("{{\"Records\":[{record}]}}"),
        )
        .unwrap();
        let source = LocalSource::new(dir.path().to_path_buf());
        let detector = Arc::new(Detector::new(RuleSet::embedded(), Limits::default()));
        let report = read_object(&source, &detector, &object("AWSLogs/log.json"))
            .await
            .unwrap();
        assert_eq!(report.source, "s3://bucket/AWSLogs/log.json");
        assert_eq!(report.matches.len(), 1, "{report:?}");
        assert!(report.error.is_none());

        let missing = read_object(&source, &detector, &object("AWSLogs/gone.json")).await;
        assert!(
            matches!(missing, Err(SourceError::NotFound(_))),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn a_scan_that_panics_is_the_objects_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
        std::fs::write(dir.path().join("bucket/a.json"), b"{}").unwrap();
        let source = LocalSource::new(dir.path().to_path_buf());
        let read: Result<(), _> = read_with(&source, &object("a.json"), |_, _| {
            panic!("a scan that stops");
        })
        .await;
        match read {
            Err(SourceError::Failed {
                object,
                cause,
                message,
            }) => {
                assert_eq!(object.key, "a.json");
                assert_eq!(cause, Cause::Other);
                assert!(
                    message.starts_with("reading the object stopped unexpectedly"),
                    "{message}"
                );
            }
            other => panic!("expected the object's failure, got {other:?}"),
        }
    }
}
