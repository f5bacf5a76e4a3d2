//! A routine export does not hide a worse one for the rest of its window, and a
//! record is a redelivery only when it is the same record: in one window a High
//! export then a Critical one (KMS key of another account) give two alerts, a
//! second High or Critical gives none; a record with a seen eventID and other
//! content is decided like any other. In memory (`invoke`, `scan`) and against the
//! AWS emulator's DynamoDB (Lambda), one invocation per log file.

use std::sync::Arc;

use serde_json::{json, Value};

use trailwatch::config::Config;
use trailwatch::dedup::MemoryStore;
use trailwatch::handler::Handler;
use trailwatch::rule::RuleSet;
use trailwatch::sink::MemorySink;
use trailwatch::source::MemorySource;

use crate::support::fixtures::s3_event;
use crate::support::stack::{self, export_record, log_file, log_key};

const ACCOUNT: &str = "123456789012";

/// (log key, record) of each delivery, in order: High at 10:00, Critical at
/// 10:20, High at 10:40, Critical at 10:50, and the same eventID as the first
/// with other content at 10:55.
fn deliveries() -> Vec<(String, Value)> {
    let high = |id: &str, time: &str| export_record(id, time, ACCOUNT, "orders");
    let critical = |id: &str, time: &str| {
        let mut record = high(id, time);
        record["requestParameters"]["kmsKeyId"] =
            json!("arn:aws:kms:us-east-1:999999999999:key/attacker-key");
        record
    };
    let mut reused = high("high-1", "2024-05-01T10:55:00Z");
    reused["requestParameters"]["s3BucketName"] = json!("another-bucket");
    [
        ("high-1", high("high-1", "2024-05-01T10:00:00Z")),
        ("critical-1", critical("critical-1", "2024-05-01T10:20:00Z")),
        ("high-2", high("high-2", "2024-05-01T10:40:00Z")),
        ("critical-2", critical("critical-2", "2024-05-01T10:50:00Z")),
        ("reused", reused),
    ]
    .into_iter()
    .map(|(name, record)| (log_key(ACCOUNT, name), record))
    .collect()
}

/// What each delivery must give: (alerts, the severity of its alert).
const EXPECTED: [(usize, Option<&str>); 5] = [
    (1, Some("High")),
    (1, Some("Critical")),
    (0, None),
    (0, None),
    (0, None),
];

/// Checks the alerts of each delivery (in order) and that the two alert ids differ.
fn check(per_delivery: &[Vec<Value>]) {
    for (i, (alerts, (count, severity))) in per_delivery.iter().zip(EXPECTED).enumerate() {
        assert_eq!(alerts.len(), count, "delivery {i}: {alerts:?}");
        if let Some(severity) = severity {
            assert_eq!(alerts[0]["severity"], severity, "delivery {i}");
        }
    }
    let (high, critical) = (&per_delivery[0][0], &per_delivery[1][0]);
    assert_eq!(high["windowStart"], critical["windowStart"], "one window");
    assert_ne!(high["alertId"], critical["alertId"], "an alert of its own");
    assert!(critical["severityReason"]
        .as_str()
        .unwrap()
        .contains("KMS key owned by another account"));
}

#[tokio::test]
async fn in_memory_a_worse_export_breaks_through_its_window_once() {
    let deliveries = deliveries();
    let mut source = MemorySource::default();
    for (key, record) in &deliveries {
        source = source.with("trail", key, log_file(std::slice::from_ref(record)));
    }
    let sink = Arc::new(MemorySink::new());
    let handler = Handler::assemble(
        &Config::default(),
        RuleSet::embedded(),
        Arc::new(source),
        Arc::new(MemoryStore::new()),
        sink.clone(),
    );
    let mut per_delivery = Vec::new();
    for (key, _) in &deliveries {
        let before = sink.notifications().len();
        handler.handle(s3_event("trail", &[key])).await.unwrap();
        per_delivery.push(
            sink.notifications()[before..]
                .iter()
                .map(|n| serde_json::from_str(&n.document).unwrap())
                .collect(),
        );
    }
    check(&per_delivery);
    // The Critical one delivered again is a redelivery: nothing more.
    handler
        .handle(s3_event("trail", &[&deliveries[1].0]))
        .await
        .unwrap();
    assert_eq!(sink.notifications().len(), 2);
    // The window's roll-up counts the High, the second Critical and the record
    // that reused an eventID: none was taken for a redelivery.
    let outcome = handler
        .alerter
        .flush_rollups(i64::MAX, true, &mut Default::default())
        .await;
    assert!(outcome.is_empty());
    let rollup: Value = serde_json::from_str(&sink.notifications()[2].document).unwrap();
    assert_eq!(rollup["kind"], "rollup");
    assert_eq!(rollup["suppressed"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dynamodb_a_worse_export_breaks_through_its_window_once() {
    let stack = stack::Stack::start().await;
    let deliveries = deliveries();
    for (key, record) in &deliveries {
        stack
            .put_object(key, log_file(std::slice::from_ref(record)))
            .await;
    }
    let mut per_delivery = Vec::new();
    for (key, _) in &deliveries {
        // A fresh handler each time: another Lambda instance, a cold start.
        stack
            .handler(None)
            .handle(stack.s3_event(std::slice::from_ref(key)))
            .await
            .expect("the delivery is handled");
        per_delivery.push(
            stack
                .drain()
                .await
                .into_iter()
                .map(|d| d.document)
                .collect::<Vec<_>>(),
        );
    }
    check(&per_delivery);
    stack
        .handler(None)
        .handle(stack.s3_event(std::slice::from_ref(&deliveries[1].0)))
        .await
        .unwrap();
    assert!(stack.drain().await.is_empty(), "a redelivery");
    // The item remembers the severity sent and each record with its content.
    let item = stack
        .dynamodb
        .get_item()
        .table_name(&stack.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "AWS.RDS.SnapshotExport:us-east-1:{ACCOUNT}"
            )),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the window item");
    assert_eq!(
        item["severity_sent"],
        aws_sdk_dynamodb::types::AttributeValue::S("Critical".into())
    );
    assert_eq!(
        item["suppressed"],
        aws_sdk_dynamodb::types::AttributeValue::N("3".into())
    );
    let fingerprints: Vec<String> = serde_json::from_str(
        item["seen_fingerprints"]
            .as_s()
            .expect("a JSON array in a string"),
    )
    .unwrap();
    assert_eq!(fingerprints.len(), 5, "every record, with its fingerprint");
    assert!(fingerprints.iter().all(|f| f.len() == 64));
}
