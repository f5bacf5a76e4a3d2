//! The Lambda handler against in-memory fakes of its source, dedup store and sink.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::support::fixtures::{self, gzip};

use trailwatch::alert::Notification;
use trailwatch::aws_error::Cause;
use trailwatch::config::{AllowList, Config};
use trailwatch::dedup::MemoryStore;
use trailwatch::handler::Handler;
use trailwatch::rule::RuleSet;
use trailwatch::sink::{AlertSink, MemorySink, SinkError};
use trailwatch::source::MemorySource;

const BUCKET: &str = "trail";

fn key(n: u32) -> String {
    format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/123456789012_CloudTrail_us-east-1_20240115T1035Z_{n:04}.json.gz")
}

fn export(id: &str, time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventTime":"{time}","eventID":"{id}","awsRegion":"us-east-1","recipientAccountId":"123456789012","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/dev"}},"requestParameters":{{"sourceArn":"arn:aws:rds:us-east-1:123456789012:snapshot:db-{id}","s3BucketName":"out"}}}}"#
    )
}

fn log(records: &[String]) -> Vec<u8> {
    gzip(format!("{{\"Records\":[{}]}}", records.join(",")).as_bytes())
}

fn s3_event(keys: &[String]) -> Value {
    fixtures::s3_event(BUCKET, keys)
}

struct Fixture {
    handler: Handler,
    sink: Arc<MemorySink>,
}

fn fixture(source: MemorySource, sink: Option<Arc<dyn AlertSink>>) -> Fixture {
    let memory = Arc::new(MemorySink::new());
    let handler = Handler::assemble(
        &Config::default(),
        RuleSet::embedded(),
        Arc::new(source),
        Arc::new(MemoryStore::new()),
        sink.unwrap_or_else(|| memory.clone()),
    );
    Fixture {
        handler,
        sink: memory,
    }
}

fn event_ids(notifications: &[Notification]) -> Vec<String> {
    notifications
        .iter()
        .map(|n| {
            serde_json::from_str::<Value>(&n.document).unwrap()["eventId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_export_in_a_log_file_alerts_once_across_redeliveries_of_the_notification() {
    let source = MemorySource::default().with(
        BUCKET,
        &key(1),
        log(&[export("e1", "2024-01-15T10:30:00Z")]),
    );
    let f = fixture(source, None);
    let response = f.handler.handle(s3_event(&[key(1)])).await.unwrap();
    assert_eq!(response["alerts"], 1);
    // S3 may notify twice: the second delivery of the same file does not alert again.
    let response = f.handler.handle(s3_event(&[key(1)])).await.unwrap();
    assert_eq!(response["alerts"], 0);
    let published = f.sink.notifications();
    assert_eq!(event_ids(&published), ["e1"]);
    assert_eq!(
        published[0].subject,
        "[HIGH] RDS snapshot db-e1 exported to S3 in 123456789012/us-east-1"
    );
}

#[tokio::test]
async fn one_window_across_objects_of_an_event_and_a_new_window_later() {
    let source = MemorySource::default()
        .with(BUCKET, &key(1), log(&[export("b", "2024-01-15T10:40:00Z")]))
        .with(BUCKET, &key(2), log(&[export("a", "2024-01-15T10:30:00Z")]))
        .with(BUCKET, &key(3), log(&[export("c", "2024-01-15T11:30:00Z")]));
    let f = fixture(source, None);
    f.handler
        .handle(s3_event(&[key(1), key(2), key(3)]))
        .await
        .unwrap();
    // Decided in event-time order whatever the object order: a opens, b is suppressed,
    // c (exactly one hour after a) opens the next window.
    assert_eq!(event_ids(&f.sink.notifications()), ["a", "c"]);
}

#[tokio::test]
async fn non_log_keys_are_skipped_and_missing_objects_counted_not_failed() {
    let digest = "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/15/d.json.gz".to_owned();
    let f = fixture(MemorySource::default(), None);
    let outcome = f
        .handler
        .process_objects(vec![
            trailwatch::source::ObjectRef {
                bucket: BUCKET.into(),
                key: digest,
            },
            trailwatch::source::ObjectRef {
                bucket: BUCKET.into(),
                key: key(9),
            },
        ])
        .await;
    assert_eq!(outcome.counters.skipped_keys, 1);
    assert_eq!(outcome.counters.missing_objects, 1);
    assert!(outcome.failures.is_empty());
}

#[tokio::test]
async fn a_bad_object_fails_the_invocation_after_the_good_ones_alerted() {
    let source = MemorySource::default()
        .with(
            BUCKET,
            &key(1),
            log(&[export("good", "2024-01-15T10:30:00Z")]),
        )
        .with(
            BUCKET,
            &key(2),
            gzip(b"{\"Records\":[")
                .into_iter()
                .take(10)
                .collect::<Vec<u8>>(),
        );
    let f = fixture(source, None);
    let err = f
        .handler
        .handle(s3_event(&[key(1), key(2)]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("s3://{BUCKET}/{}", key(2))), "{err}");
    assert!(err.contains("gzip"), "{err}");
    assert_eq!(event_ids(&f.sink.notifications()), ["good"]);
}

/// Fails the first `failures` publications, then delivers to memory.
struct FlakySink {
    failures: AtomicUsize,
    inner: MemorySink,
}

#[async_trait]
impl AlertSink for FlakySink {
    async fn publish(&self, n: &Notification) -> Result<(), SinkError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(SinkError {
                alert_id: n.alert_id.clone(),
                cause: Cause::Throttled,
                message: "throttled".into(),
            });
        }
        self.inner.publish(n).await
    }
}

#[tokio::test]
async fn a_failed_publication_fails_the_invocation_and_the_retry_alerts_once() {
    let source = MemorySource::default().with(
        BUCKET,
        &key(1),
        log(&[export("e1", "2024-01-15T10:30:00Z")]),
    );
    let flaky = Arc::new(FlakySink {
        failures: AtomicUsize::new(1),
        inner: MemorySink::new(),
    });
    let f = fixture(source, Some(flaky.clone()));
    let err = f.handler.handle(s3_event(&[key(1)])).await.unwrap_err();
    assert!(err.to_string().contains("throttled"));
    assert!(flaky.inner.notifications().is_empty());
    f.handler.handle(s3_event(&[key(1)])).await.unwrap();
    f.handler.handle(s3_event(&[key(1)])).await.unwrap();
    let delivered = flaky.inner.notifications();
    assert_eq!(
        event_ids(&delivered),
        ["e1"],
        "the retry alerts, a later retry does not"
    );
}

#[tokio::test]
async fn allow_listed_exports_are_counted_not_alerted() {
    let source = MemorySource::default().with(
        BUCKET,
        &key(1),
        log(&[export("e1", "2024-01-15T10:30:00Z")]),
    );
    let mut f = fixture(source, None);
    let alerter = Arc::get_mut(&mut f.handler.alerter).unwrap();
    alerter.allow = AllowList::parse("out");
    let outcome = f
        .handler
        .process_objects(vec![trailwatch::source::ObjectRef {
            bucket: BUCKET.into(),
            key: key(1),
        }])
        .await;
    assert_eq!(outcome.counters.allowed, 1);
    assert_eq!(outcome.counters.alerts, 0);
    assert_eq!(outcome.counters.matches, 1);
    assert!(f.sink.notifications().is_empty());
}

#[tokio::test]
async fn the_schedule_flushes_rollups_of_closed_windows() {
    let records: Vec<String> = (0..5)
        .map(|i| export(&format!("e{i}"), &format!("2020-01-15T10:3{i}:00Z")))
        .collect();
    let source = MemorySource::default().with(BUCKET, &key(1), log(&records));
    let f = fixture(source, None);
    f.handler.handle(s3_event(&[key(1)])).await.unwrap();
    let response = f
        .handler
        .handle(json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events", "account": "1", "time": "2024-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}))
        .await
        .unwrap();
    assert_eq!(response["rollups"], 1);
    let published = f.sink.notifications();
    assert_eq!(published.len(), 2);
    assert_eq!(published[1].kind, "rollup");
    let rollup: Value = serde_json::from_str(&published[1].document).unwrap();
    assert_eq!(rollup["suppressed"], 4);
    assert_eq!(rollup["snapshots"].as_array().unwrap().len(), 4);
    assert_eq!(rollup["firstAlertEventId"], "e0");
}
