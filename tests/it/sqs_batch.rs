//! The SQS ingest path end to end: the real binary in Lambda mode (a local Runtime
//! API), S3, SNS and DynamoDB on the emulator, S3 reads through a gate that proves
//! whether they overlap.
//!
//! One batch of ten S3 notifications, one of them for a corrupt object: the nine
//! others are read concurrently (never more at once than the configured bound),
//! only the corrupt one's message is reported in `batchItemFailures`, and the
//! alerts are those `trailwatch scan` gives for the same ten files. The same run
//! measures what a warm function writes to its log per invocation in steady state
//! (clean log files, nothing to alert), for one direct S3 notification and for a
//! batch of ten.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::support::fixtures::sqs_batch;
use crate::support::lambda_api::{Answer, LambdaFunction};
use crate::support::read_gate::ReadGate;
use crate::support::stack::{export_record, log_file, log_key, other_record, Stack};

/// Objects read at once (`TRAILWATCH_CONCURRENCY`), the bound the gate checks.
const BOUND: usize = 4;

/// Log bytes per steady-state invocation before the summary moved into the EMF
/// document (a JSON summary line inside the runtime's span, beside an EMF line),
/// measured by this test's harness on the code of that time: one direct S3
/// notification of one log file, and one SQS batch of ten.
const BEFORE_DIRECT_BYTES: usize = 1619;
const BEFORE_BATCH_BYTES: usize = 1623;

const T0: &str = "2024-05-01T10:00:00Z";
const T5: &str = "2024-05-01T10:05:00Z";

/// Non-matching records: another RDS call, a failed export and an export by
/// another service.
fn decoys(id: &str, account: &str) -> Vec<Value> {
    let mut failed = export_record(&format!("{id}-failed"), T0, account, "denied");
    failed["errorCode"] = json!("AccessDenied");
    let mut other_service = export_record(&format!("{id}-neptune"), T0, account, "graph");
    other_service["eventSource"] = json!("neptune-graph.amazonaws.com");
    let mut records: Vec<Value> = (0..20)
        .map(|i| other_record(&format!("{id}-d{i}"), T0, account))
        .collect();
    records.push(failed);
    records.push(other_service);
    records
}

/// The ten objects of the batch: `(key, body)`; the fourth is corrupt (gzip magic,
/// then garbage). Three accounts export: one alert each, and one of them a second
/// time within the window (suppressed).
fn batch_objects() -> Vec<(String, Vec<u8>)> {
    (0..10)
        .map(|i| {
            let account = format!("{:012}", 210_987_654_300u64 + i);
            let key = log_key(&account, &format!("batch{i}"));
            let mut records = decoys(&format!("b{i}"), &account);
            match i {
                0 | 6 => records.push(export_record(&format!("x{i}"), T0, &account, "orders")),
                8 => {
                    records.push(export_record("x8a", T0, &account, "orders"));
                    records.push(export_record("x8b", T5, &account, "payments"));
                }
                _ => {}
            }
            let body = if i == 3 {
                b"\x1f\x8b\x08\x00this is not a deflate stream".to_vec()
            } else {
                log_file(&records)
            };
            (key, body)
        })
        .collect()
}

/// Clean log files: what nearly every delivery is.
fn quiet_objects(count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let account = format!("{:012}", 310_987_654_300u64 + i as u64);
            let key = log_key(&account, &format!("quiet{i}"));
            (key, log_file(&decoys(&format!("q{i}"), &account)))
        })
        .collect()
}

fn message_id(i: usize) -> String {
    format!("0f6e1d3c-{i:04}-4b2a-9d3c-7a8b9c0d1e2f")
}

/// The SQS batch of one S3 notification per key, as S3 -> SQS -> Lambda delivers it.
fn batch_event(stack: &Stack, keys: &[String]) -> Value {
    let messages: Vec<(String, Value)> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (message_id(i), stack.s3_event(std::slice::from_ref(key))))
        .collect();
    sqs_batch(&messages)
}

/// What identifies an alert whatever carried it (the `source` differs: an S3 URL
/// or a local path).
fn identity(alert: &Value) -> (String, String, String, String) {
    let text = |name: &str| alert[name].as_str().unwrap_or_default().to_owned();
    (
        text("alertId"),
        text("eventId"),
        text("dedupKey"),
        text("title"),
    )
}

/// `trailwatch scan` of the same files, written under `dir` by key: its alerts,
/// and its exit status and stderr.
fn scan(dir: &Path, objects: &[(String, Vec<u8>)]) -> (Vec<Value>, Option<i32>, String) {
    for (key, body) in objects {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().expect("a key with folders")).unwrap();
        std::fs::write(&path, body).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["scan", "--format", "json", "--no-progress"])
        .arg(dir)
        .output()
        .expect("run trailwatch scan");
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("an NDJSON line"))
        .filter(|doc| doc["kind"] == "alert")
        .collect();
    (
        alerts,
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one line a steady-state invocation logs: the EMF document carrying the
/// summary.
fn single_summary(invocation: &crate::support::lambda_api::Invocation, what: &str) -> Value {
    let lines = invocation.lines();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one log line per invocation in steady state, got:\n{}",
        lines.join("\n")
    );
    let doc: Value = serde_json::from_str(lines[0]).expect("a JSON log line");
    assert!(
        doc["_aws"]["CloudWatchMetrics"].is_array(),
        "{what}: the line is the EMF document: {doc}"
    );
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_read_concurrently_fails_alone_and_alerts_as_a_scan() {
    let stack = Stack::start().await;
    let gate = ReadGate::start(&stack.server.endpoint).await;
    let batch = batch_objects();
    let quiet = quiet_objects(10);
    for (key, body) in batch.iter().chain(&quiet) {
        stack.put_object(key, body.clone()).await;
    }
    let env = [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_ENDPOINT_URL", stack.server.endpoint.clone()),
        ("AWS_ENDPOINT_URL_S3", gate.endpoint.clone()),
        // What the template's ApplicationLogLevel sets.
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("TRAILWATCH_TOPIC_ARN", stack.topic_arn.clone()),
        ("TRAILWATCH_DEDUP_TABLE", stack.table.clone()),
        ("TRAILWATCH_CONCURRENCY", BOUND.to_string()),
    ];
    let mut function = LambdaFunction::start(&env).await;

    // Steady state: a warm function, clean log files. The first invocation of
    // each kind warms the clients; the second is measured.
    let quiet_keys: Vec<String> = quiet.iter().map(|(key, _)| key.clone()).collect();
    let direct_event = stack.s3_event(&quiet_keys[..1]);
    function.invoke(direct_event.clone()).await.response();
    let direct = function.invoke(direct_event).await;
    assert_eq!(direct.response()["alerts"], 0);
    let quiet_batch = batch_event(&stack, &quiet_keys);
    function.invoke(quiet_batch.clone()).await.response();
    let steady_batch = function.invoke(quiet_batch).await;
    assert_eq!(
        steady_batch.response()["batchItemFailures"],
        json!([]),
        "{:?}",
        steady_batch.lines()
    );
    eprintln!(
        "log bytes per steady-state invocation: direct (1 log file) {} B, SQS batch of 10 {} B ({} B per log file)\n{}\n{}",
        direct.log.len(),
        steady_batch.log.len(),
        steady_batch.log.len() / 10,
        String::from_utf8_lossy(&direct.log),
        String::from_utf8_lossy(&steady_batch.log),
    );

    // The batch: ten notifications, one corrupt object.
    let keys: Vec<String> = batch.iter().map(|(key, _)| key.clone()).collect();
    gate.close(BOUND);
    let invocation = function.invoke(batch_event(&stack, &keys)).await;
    gate.open();
    let response = invocation.response();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": message_id(3)}]),
        "only the corrupt object's message is retried: {response}\nlog:\n{}",
        String::from_utf8_lossy(&invocation.log)
    );
    assert_eq!(gate.reads(), 10, "every object read once");
    assert_eq!(
        gate.max_in_flight(),
        BOUND,
        "objects of a batch are read concurrently, at most {BOUND} at once"
    );
    let log = String::from_utf8_lossy(&invocation.log);
    assert!(
        log.contains(&format!("s3://{}/{}", stack.bucket, keys[3])),
        "the failure names the object: {log}"
    );

    let delivered: BTreeSet<_> = stack
        .drain()
        .await
        .iter()
        .filter(|d| d.kind() == "alert")
        .map(|d| identity(&d.document))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (scanned, status, stderr) = scan(dir.path(), &batch);
    assert_eq!(
        status,
        Some(1),
        "the scan reports the corrupt file: {stderr}"
    );
    assert!(stderr.contains("batch3"), "{stderr}");
    let scanned: BTreeSet<_> = scanned.iter().map(identity).collect();
    assert_eq!(scanned.len(), 3, "three accounts export: {scanned:#?}");
    assert_eq!(
        delivered, scanned,
        "the batch alerts as a scan of the same files"
    );

    // The log bill: at most half of what it was, per invocation.
    let direct_summary = single_summary(&direct, "direct");
    assert_eq!(direct_summary["trigger"], "objects");
    assert_eq!(direct_summary["Objects"], 1);
    let batch_summary = single_summary(&steady_batch, "SQS batch");
    assert_eq!(batch_summary["trigger"], "sqs");
    assert_eq!(batch_summary["Objects"], 10);
    assert!(
        direct.log.len() * 2 <= BEFORE_DIRECT_BYTES,
        "direct: {} B per invocation, before {BEFORE_DIRECT_BYTES} B",
        direct.log.len()
    );
    assert!(
        steady_batch.log.len() * 2 <= BEFORE_BATCH_BYTES,
        "SQS batch: {} B per invocation, before {BEFORE_BATCH_BYTES} B",
        steady_batch.log.len()
    );
    assert!(matches!(invocation.answer, Answer::Response(_)));
}
