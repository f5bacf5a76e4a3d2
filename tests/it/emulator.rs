//! The Lambda function against a local AWS emulator (`moto_server`): S3 objects in,
//! alerts out through SNS to an SQS subscriber, dedup windows in DynamoDB.
//!
//! Every test starts its own server with its own bucket, topic, queue and table, and
//! builds the handler the way `run_lambda` does, so what is checked here is what a
//! deployed function does: conditional writes under concurrency, at-least-once
//! publication, roll-ups of closed windows, expired items.

use crate::support::{moto, stack};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use trailwatch::alert::{alert_id, Notification};
use trailwatch::aws_error::Cause;
use trailwatch::counters::Counters;
use trailwatch::dedup::{DedupStore, DynamoStore};
use trailwatch::handler::Handler;
use trailwatch::pipeline::Alerter;
use trailwatch::rule::RuleSet;
use trailwatch::sink::{AlertSink, SinkError};
use trailwatch::source::{ObjectRef, S3Source};
use trailwatch::time::{format_ms, parse_event_time};

use stack::{export_record, log_file, log_key, other_record, scheduled_event, Stack};

const MINUTE: i64 = 60_000;
const WINDOW: i64 = 60 * MINUTE;
const RULE: &str = "AWS.RDS.SnapshotExport";

/// 2024-05-01T10:00:00Z, the start of most test windows.
fn t0() -> i64 {
    parse_event_time("2024-05-01T10:00:00Z").expect("a valid time")
}

fn at(ms: i64) -> String {
    format_ms(ms)
}

fn dedup_key(account: &str) -> String {
    format!("{RULE}:us-east-1:{account}")
}

fn snapshot_arn(account: &str, name: &str) -> String {
    format!("arn:aws:rds:us-east-1:{account}:snapshot:{name}")
}

/// Fails its first `failures` publications, then publishes through `inner`.
struct FailingFirst {
    inner: Arc<dyn AlertSink>,
    failures: AtomicUsize,
    refused: Mutex<Vec<String>>,
}

impl FailingFirst {
    fn new(inner: Arc<dyn AlertSink>, failures: usize) -> Arc<Self> {
        Arc::new(FailingFirst {
            inner,
            failures: AtomicUsize::new(failures),
            refused: Mutex::new(Vec::new()),
        })
    }

    fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

#[async_trait]
impl AlertSink for FailingFirst {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            self.refused
                .lock()
                .unwrap()
                .push(notification.alert_id.clone());
            return Err(SinkError {
                alert_id: notification.alert_id.clone(),
                cause: Cause::ServerError,
                message: "simulated SNS outage".into(),
            });
        }
        self.inner.publish(notification).await
    }
}

/// Never finishes a publication: the instance dies (times out) in the middle.
struct Hangs;

#[async_trait]
impl AlertSink for Hangs {
    async fn publish(&self, _: &Notification) -> Result<(), SinkError> {
        std::future::pending().await
    }
}

/// A handler like `Stack::handler`, with an explicit store and sink.
fn handler_with(stack: &Stack, dedup: Arc<dyn DedupStore>, sink: Arc<dyn AlertSink>) -> Handler {
    Handler::assemble(
        &stack.config(&stack.table),
        RuleSet::embedded(),
        Arc::new(S3Source::new(aws_sdk_s3::Client::new(&stack.conf))),
        dedup,
        sink,
    )
}

fn short_lease_store(stack: &Stack, lease: Duration) -> Arc<dyn DedupStore> {
    Arc::new(
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&stack.conf),
            stack.table.clone(),
        )
        .with_lease(lease),
    )
}

async fn flush(alerter: &Alerter, now_ms: i64) -> (Counters, usize) {
    let mut counters = Counters::default();
    let failures = alerter.flush_rollups(now_ms, false, &mut counters).await;
    (counters, failures.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_in_alert_out_through_sns_to_sqs_once_per_window() {
    let stack = Stack::start().await;
    // The sample notification and log file, in this test's bucket.
    let mut event: Value = serde_json::from_str(include_str!("../../events/s3-put.json")).unwrap();
    event["Records"][0]["s3"]["bucket"]["name"] = Value::String(stack.bucket.clone());
    let key = event["Records"][0]["s3"]["object"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let sample = std::fs::read(format!(
        "{}/events/objects/trailwatch-demo-cloudtrail/{key}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    stack.put_object(&key, sample).await;

    let response = stack
        .handler(None)
        .handle(event.clone())
        .await
        .expect("invocation succeeds");
    assert_eq!(response["alerts"], 1, "{response}");
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    let alert = &delivered[0];
    let (envelope, doc) = (&alert.envelope, &alert.document);
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], stack.topic_arn.as_str());
    let subject = envelope["Subject"].as_str().unwrap();
    assert!(
        subject.is_ascii() && subject.len() <= 100 && subject.starts_with("[HIGH] "),
        "{subject}"
    );
    assert!(subject.contains("123456789012/us-east-1"), "{subject}");
    assert_eq!(doc["kind"], "alert");
    assert_eq!(doc["ruleId"], RULE);
    assert_eq!(doc["eventId"], "c0ffee00-5e1f-4b2a-9d3c-7a8b9c0d1e2f");
    assert_eq!(doc["event"]["eventName"], "StartExportTask");
    assert_eq!(doc["source"], format!("s3://{}/{key}", stack.bucket));
    assert_eq!(doc["dedupKey"], dedup_key("123456789012"));
    let opened = parse_event_time("2024-03-15T10:33:41Z").unwrap();
    assert_eq!(doc["windowStart"], at(opened));
    assert_eq!(
        alert.alert_id(),
        alert_id(RULE, &dedup_key("123456789012"), opened, "alert")
    );
    // Message attributes for subscription filters.
    assert_eq!(alert.attribute("severity"), Some("HIGH"));
    assert_eq!(alert.attribute("rule_id"), Some(RULE));
    assert_eq!(alert.attribute("account"), Some("123456789012"));
    assert_eq!(alert.attribute("region"), Some("us-east-1"));
    // SNS got both variants; the SQS subscriber was given `default`.
    let published = stack.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0]["default"], envelope["Message"],
        "SQS receives the default variant"
    );
    let email = published[0]["email"].as_str().expect("an email variant");
    assert!(
        !email.trim_start().starts_with('{'),
        "the e-mail is plain text:\n{email}"
    );
    for needle in [
        "StartExportTask",
        "Triage checklist",
        "orders-prod",
        "arn:aws:sts::123456789012:assumed-role/DataEngineer/jdoe",
    ] {
        assert!(email.contains(needle), "e-mail lacks {needle}:\n{email}");
    }

    // The same file again, on another (cold) instance: nothing new.
    let response = stack
        .handler(None)
        .handle(event)
        .await
        .expect("invocation succeeds");
    assert_eq!(response["alerts"], 0, "{response}");
    assert!(stack.drain().await.is_empty());
    assert_eq!(stack.published().await.len(), 1);

    // A file one window later: a match a second before the window ends is counted,
    // one exactly at its end opens the next window and alerts.
    let account = "123456789012";
    let next_key = log_key(account, "next-window");
    let records = [
        other_record("n-0", &at(opened + WINDOW), account),
        export_record(
            "n-1",
            &at(opened + WINDOW - 1000),
            account,
            "orders-prod-late",
        ),
        export_record("n-2", &at(opened + WINDOW), account, "orders-prod-next"),
    ];
    stack.put_object(&next_key, log_file(&records)).await;
    let response = stack
        .handler(None)
        .handle(stack.s3_event(&[next_key]))
        .await
        .expect("invocation succeeds");
    assert_eq!(response["alerts"], 1, "{response}");
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0].document["eventId"], "n-2");
    assert_eq!(delivered[0].document["windowStart"], at(opened + WINDOW));
    assert_ne!(delivered[0].alert_id(), alert.alert_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_invocations_on_one_window_alert_once() {
    const REPETITIONS: usize = 20;
    // Repetitions run in lanes, each on an emulator of its own: the emulator answers
    // one request at a time, so lanes keep the whole run short.
    const LANES: usize = 2;
    let started = Instant::now();
    let lanes = (0..LANES).map(|lane| {
        let repetitions: Vec<usize> = (lane..REPETITIONS).step_by(LANES).collect();
        tokio::spawn(one_window_repeatedly(repetitions))
    });
    for lane in futures::future::join_all(lanes).await {
        lane.expect("lane completes");
    }
    eprintln!("{REPETITIONS} repetitions in {:?}", started.elapsed());
}

/// Eight invocations in parallel on forty objects whose matches share one key and
/// one window, on a fresh table each repetition: exactly one alert, and every other
/// match counted in the window (no lost update).
async fn one_window_repeatedly(repetitions: Vec<usize>) {
    const OBJECTS: usize = 40;
    const INVOCATIONS: usize = 8;
    let stack = Stack::start().await;
    let account = "200000000000";
    // Forty log files, one match each, spread over 40 seconds of one window.
    let keys: Vec<String> = (0..OBJECTS)
        .map(|i| log_key(account, &format!("obj{i:02}")))
        .collect();
    futures::future::join_all(keys.iter().enumerate().map(|(i, key)| {
        let t = t0() + ((i * 17) % OBJECTS) as i64 * 1000;
        let record = export_record(&format!("p-{i}"), &at(t), account, &format!("snap-{i}"));
        stack.put_object(key, log_file(&[record]))
    }))
    .await;
    for rep in repetitions {
        let table = moto::unique("dedup");
        stack.create_table(&table).await;
        // Eight instances (cold starts), each given five of the objects, all at once.
        let barrier = Arc::new(tokio::sync::Barrier::new(INVOCATIONS));
        let tasks: Vec<_> = keys
            .chunks(OBJECTS / INVOCATIONS)
            .map(|chunk| {
                let handler = stack.handler_on(&table, None);
                let event = stack.s3_event(chunk);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    handler.handle(event).await
                })
            })
            .collect();
        let mut alerts = 0;
        for task in tasks {
            let response = task.await.unwrap().expect("invocation succeeds");
            alerts += response["alerts"].as_u64().unwrap();
        }
        assert_eq!(
            alerts, 1,
            "repetition {rep}: {alerts} alerts for one window"
        );
        let delivered = stack.drain().await;
        assert_eq!(delivered.len(), 1, "repetition {rep}: {delivered:#?}");
        assert_eq!(delivered[0].kind(), "alert");
        let alerter = &stack.handler_on(&table, None).alerter;
        let (counters, failures) = flush(alerter, t0() + 2 * WINDOW).await;
        assert_eq!((counters.rollups, failures), (1, 0), "repetition {rep}");
        let rollup = stack.drain().await;
        assert_eq!(rollup.len(), 1, "repetition {rep}: {rollup:#?}");
        assert_eq!(
            rollup[0].document["suppressed"],
            OBJECTS - 1,
            "repetition {rep}: {:#}",
            rollup[0].document
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_publication_fails_the_invocation_and_the_retry_alerts_once() {
    let stack = Stack::start().await;
    let account = "300000000001";
    let key = log_key(account, "fault");
    stack
        .put_object(
            &key,
            log_file(&[export_record("f-1", &at(t0()), account, "orders-prod")]),
        )
        .await;
    let event = stack.s3_event(&[key]);

    let flaky = FailingFirst::new(stack.sns_sink(), 1);
    let error = stack
        .handler(Some(flaky.clone()))
        .handle(event.clone())
        .await
        .expect_err("the invocation fails");
    assert!(
        error.to_string().contains("simulated SNS outage"),
        "{error}"
    );
    assert!(stack.drain().await.is_empty());

    // Lambda retries (on another instance): the alert goes out, with the same id.
    let response = stack
        .handler(None)
        .handle(event.clone())
        .await
        .expect("the retry succeeds");
    assert_eq!(response["alerts"], 1, "{response}");
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        flaky.refused(),
        vec![delivered[0].alert_id().to_owned()],
        "alertId is stable across retries"
    );
    assert_eq!(
        delivered[0].alert_id(),
        alert_id(RULE, &dedup_key(account), t0(), "alert")
    );

    // A retry after the successful publication alerts no more.
    let response = stack
        .handler(None)
        .handle(event)
        .await
        .expect("the retry succeeds");
    assert_eq!(response["alerts"], 0, "{response}");
    assert!(stack.drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_dying_mid_publication_is_re_driven_after_its_lease() {
    const LEASE: Duration = Duration::from_millis(1500);
    let stack = Stack::start().await;
    let account = "300000000002";
    let key = log_key(account, "crash");
    stack
        .put_object(
            &key,
            log_file(&[export_record("c-1", &at(t0()), account, "orders-prod")]),
        )
        .await;
    let event = stack.s3_event(&[key]);

    // The first instance claims the window, then times out while publishing.
    let dying = handler_with(&stack, short_lease_store(&stack, LEASE), Arc::new(Hangs));
    let claimed_at = Instant::now();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), dying.handle(event.clone()))
            .await
            .is_err()
    );
    // A retry within the lease is not taken for a redelivery: it fails, to be retried.
    let early = handler_with(&stack, short_lease_store(&stack, LEASE), stack.sns_sink());
    let error = early
        .handle(event.clone())
        .await
        .expect_err("claim still held");
    assert!(
        error
            .to_string()
            .contains("being published by another invocation"),
        "{error}"
    );
    assert!(stack.drain().await.is_empty());
    // After the lease, the retry publishes the window's alert.
    tokio::time::sleep(LEASE.saturating_sub(claimed_at.elapsed()) + Duration::from_millis(100))
        .await;
    let retry = handler_with(&stack, short_lease_store(&stack, LEASE), stack.sns_sink());
    let response = retry
        .handle(event.clone())
        .await
        .expect("the retry succeeds");
    assert_eq!(response["alerts"], 1, "{response}");
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].alert_id(),
        alert_id(RULE, &dedup_key(account), t0(), "alert")
    );
    let response = retry.handle(event).await.expect("invocation succeeds");
    assert_eq!(response["alerts"], 0, "confirmed: not re-driven again");
    tokio::time::sleep(LEASE).await;
    assert_eq!(
        retry
            .handle(stack.s3_event(&[log_key(account, "crash")]))
            .await
            .unwrap()["alerts"],
        0
    );
    assert!(stack.drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_matches_roll_up_once_after_the_window_closes() {
    let stack = Stack::start().await;
    let account = "300000000003";
    let key = log_key(account, "five");
    let records: Vec<Value> = (0..5)
        .map(|i| {
            export_record(
                &format!("r-{i}"),
                &at(t0() + i * MINUTE),
                account,
                &format!("snap-{i}"),
            )
        })
        .collect();
    stack.put_object(&key, log_file(&records)).await;
    let handler = stack.handler(None);
    let response = handler
        .handle(stack.s3_event(&[key]))
        .await
        .expect("invocation succeeds");
    assert_eq!(response["alerts"], 1, "{response}");
    let alerts = stack.drain().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].document["eventId"], "r-0");

    // While the window is open (by the flush's clock) there is nothing to roll up.
    let (counters, failures) = flush(&handler.alerter, t0() + WINDOW - 1).await;
    assert_eq!((counters.rollups, failures), (0, 0));
    // The scheduled event (wall clock, long after 2024) flushes it.
    let response = stack
        .handler(None)
        .handle(scheduled_event())
        .await
        .expect("flush succeeds");
    assert_eq!(response["rollups"], 1, "{response}");
    let rollups = stack.drain().await;
    assert_eq!(rollups.len(), 1, "{rollups:#?}");
    let doc = &rollups[0].document;
    assert_eq!(doc["kind"], "rollup");
    assert_eq!(doc["suppressed"], 4);
    assert_eq!(doc["firstAlertEventId"], "r-0");
    assert_eq!(doc["windowStart"], at(t0()));
    assert_eq!(doc["firstEventTime"], at(t0() + MINUTE));
    assert_eq!(doc["lastEventTime"], at(t0() + 4 * MINUTE));
    let snapshots: Vec<String> = (1..5)
        .map(|i| snapshot_arn(account, &format!("snap-{i}")))
        .collect();
    assert_eq!(doc["snapshots"], serde_json::json!(snapshots));
    assert_eq!(doc["buckets"], serde_json::json!(["exports-bucket"]));
    assert_eq!(
        rollups[0].alert_id(),
        alert_id(RULE, &dedup_key(account), t0(), "rollup")
    );
    assert_eq!(rollups[0].attribute("account"), Some(account));
    // Returned once.
    let response = stack
        .handler(None)
        .handle(scheduled_event())
        .await
        .expect("flush succeeds");
    assert_eq!(response["rollups"], 0, "{response}");
    assert!(stack.drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_replaced_by_the_next_keeps_its_roll_up() {
    let stack = Stack::start().await;
    let account = "300000000004";
    let first = log_key(account, "first");
    let second = log_key(account, "second");
    stack
        .put_object(
            &first,
            log_file(&[
                export_record("w-0", &at(t0()), account, "a"),
                export_record("w-1", &at(t0() + 10 * MINUTE), account, "b"),
            ]),
        )
        .await;
    stack
        .put_object(
            &second,
            log_file(&[export_record("w-2", &at(t0() + 70 * MINUTE), account, "c")]),
        )
        .await;
    let handler = stack.handler(None);
    assert_eq!(
        handler.handle(stack.s3_event(&[first])).await.unwrap()["alerts"],
        1
    );
    assert_eq!(
        handler.handle(stack.s3_event(&[second])).await.unwrap()["alerts"],
        1
    );
    assert_eq!(stack.drain().await.len(), 2);
    // The second window is still open at this time; the first one's roll-up is due.
    let (counters, failures) = flush(&stack.handler(None).alerter, t0() + 71 * MINUTE).await;
    assert_eq!((counters.rollups, failures), (1, 0));
    let rollups = stack.drain().await;
    assert_eq!(rollups.len(), 1);
    assert_eq!(rollups[0].document["windowStart"], at(t0()));
    assert_eq!(rollups[0].document["suppressed"], 1);
    assert_eq!(
        rollups[0].document["snapshots"],
        serde_json::json!([snapshot_arn(account, "b")])
    );
    let (counters, _) = flush(&stack.handler(None).alerter, t0() + 71 * MINUTE).await;
    assert_eq!(counters.rollups, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_item_not_yet_deleted_does_not_suppress() {
    let stack = Stack::start().await;
    let account = "300000000005";
    let first = log_key(account, "before-expiry");
    let later = log_key(account, "after-expiry");
    stack
        .put_object(
            &first,
            log_file(&[
                export_record("x-0", &at(t0()), account, "a"),
                export_record("x-1", &at(t0() + MINUTE), account, "b"),
            ]),
        )
        .await;
    stack
        .put_object(
            &later,
            log_file(&[export_record("x-2", &at(t0() + 5 * MINUTE), account, "c")]),
        )
        .await;
    let handler = stack.handler(None);
    assert_eq!(
        handler.handle(stack.s3_event(&[first])).await.unwrap()["alerts"],
        1
    );
    // DynamoDB's TTL passed, the item is still there (deletion is lazy).
    stack
        .dynamodb
        .update_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(dedup_key(account)))
        .update_expression("SET #ttl = :past")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":past", AttributeValue::N("1700000000".into()))
        .send()
        .await
        .expect("expire the item");
    let response = handler
        .handle(stack.s3_event(&[later]))
        .await
        .expect("invocation succeeds");
    assert_eq!(
        response["alerts"], 1,
        "an expired window must not suppress: {response}"
    );
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[1].document["windowStart"], at(t0() + 5 * MINUTE));
    // What the expired window had suppressed is still reported.
    let (counters, _) = flush(&handler.alerter, t0() + 6 * MINUTE).await;
    assert_eq!(counters.rollups, 1);
    let rollups = stack.drain().await;
    assert_eq!(rollups[0].document["windowStart"], at(t0()));
    assert_eq!(rollups[0].document["suppressed"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_up_whose_publication_failed_is_sent_after_its_lease() {
    const LEASE: Duration = Duration::from_millis(1000);
    let stack = Stack::start().await;
    let account = "300000000006";
    let key = log_key(account, "rollup-fault");
    stack
        .put_object(
            &key,
            log_file(&[
                export_record("q-0", &at(t0()), account, "a"),
                export_record("q-1", &at(t0() + MINUTE), account, "b"),
            ]),
        )
        .await;
    assert_eq!(
        stack
            .handler(None)
            .handle(stack.s3_event(&[key]))
            .await
            .unwrap()["alerts"],
        1
    );
    assert_eq!(stack.drain().await.len(), 1);

    let flaky = FailingFirst::new(stack.sns_sink(), 1);
    let failing = handler_with(&stack, short_lease_store(&stack, LEASE), flaky.clone());
    let taken_at = Instant::now();
    let (counters, failures) = flush(&failing.alerter, t0() + 2 * WINDOW).await;
    assert_eq!((counters.rollups, failures), (0, 1));
    // Leased to the failed flush for now...
    let other = handler_with(&stack, short_lease_store(&stack, LEASE), stack.sns_sink());
    let (counters, _) = flush(&other.alerter, t0() + 2 * WINDOW).await;
    assert_eq!(counters.rollups, 0);
    // ...and handed out again once the lease has run out.
    tokio::time::sleep(LEASE.saturating_sub(taken_at.elapsed()) + Duration::from_millis(100)).await;
    let (counters, failures) = flush(&other.alerter, t0() + 2 * WINDOW).await;
    assert_eq!((counters.rollups, failures), (1, 0));
    let rollups = stack.drain().await;
    assert_eq!(rollups.len(), 1);
    assert_eq!(
        flaky.refused(),
        vec![rollups[0].alert_id().to_owned()],
        "same alertId as the failed one"
    );
    tokio::time::sleep(LEASE).await;
    let (counters, _) = flush(&other.alerter, t0() + 2 * WINDOW).await;
    assert_eq!(counters.rollups, 0, "confirmed: deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_delivered_twice_neither_alert_nor_count() {
    let stack = Stack::start().await;
    let account = "300000000007";
    let a = log_key(account, "a");
    let b = log_key(account, "b");
    let e1 = export_record("d-1", &at(t0()), account, "s1");
    let e2 = export_record("d-2", &at(t0() + MINUTE), account, "s2");
    let e3 = export_record("d-3", &at(t0() + 2 * MINUTE), account, "s3");
    stack
        .put_object(&a, log_file(&[e1.clone(), e2.clone()]))
        .await;
    stack.put_object(&b, log_file(&[e2, e3, e1])).await;
    let handler = stack.handler(None);
    let object = |key: &str| ObjectRef {
        bucket: stack.bucket.clone(),
        key: key.to_owned(),
    };
    let first = handler.process_objects(vec![object(&a)]).await;
    assert_eq!((first.counters.alerts, first.counters.suppressed), (1, 1));
    let second = stack.handler(None).process_objects(vec![object(&b)]).await;
    assert!(second.failures.is_empty(), "{:?}", second.failures);
    assert_eq!(
        (
            second.counters.alerts,
            second.counters.suppressed,
            second.counters.redeliveries
        ),
        (0, 1, 2)
    );
    assert_eq!(stack.drain().await.len(), 1);
    let (counters, _) = flush(&handler.alerter, t0() + WINDOW).await;
    assert_eq!(counters.rollups, 1);
    assert_eq!(
        stack.drain().await[0].document["suppressed"],
        2,
        "d-2 counted once"
    );
}
