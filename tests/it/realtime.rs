//! The real-time path: an EventBridge "AWS API Call via CloudTrail" event is one
//! CloudTrail record, alerted seconds after the call, and the log file that brings
//! the same record minutes later is a redelivery. One alert per export, whichever
//! path sees it first, in memory, through `trailwatch invoke`, and against the
//! emulator with the DynamoDB store; the pattern EventBridge filters with is the
//! rules', in the code and in both templates.
//!
//! The EventBridge event and the log file always hold the same record, as AWS
//! delivers them: the log file adds no field the record of the event lacks.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{json, Value};

use trailwatch::config::Config;
use trailwatch::dedup::{DedupStore, MemoryStore};
use trailwatch::detect::DeliveryPath;
use trailwatch::handler::Handler;
use trailwatch::rule::{event_pattern, RuleSet};
use trailwatch::sink::MemorySink;
use trailwatch::source::LocalSource;

use crate::support::fixtures::dead_letter_record;
use crate::support::moto::{self, REGION};
use crate::support::stack::{export_record, log_file, log_key, Stack};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Panther's first test record of the export rule, in both sample events.
const SEED_EVENT_ID: &str = "f1e2d3c4-b5a6-7890-1234-567890abcdef";
const SEED_EVENTBRIDGE: &str = "eventbridge:us-east-1:4c2f8e1a-93d7-4b6e-a5c0-7d1e2f3a4b5c";

fn load(file: &str) -> Value {
    let path = Path::new(ROOT).join("events").join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The record as EventBridge delivered it.
fn eventbridge_event() -> Value {
    load("eventbridge-api-call.json")
}

/// The S3 notification of the log file holding the same record.
fn log_file_event() -> Value {
    load("s3-put-same-call.json")
}

/// An "AWS API Call via CloudTrail" event carrying `record`.
fn api_call_event(id: &str, record: &Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.rds", "account": record["recipientAccountId"],
        "time": record["eventTime"], "region": record["awsRegion"], "resources": [],
        "detail": record
    })
}

/// A handler as `trailwatch invoke` builds it, on `dedup`, with objects from
/// `events/objects`.
fn handler(dedup: Arc<dyn DedupStore>, sink: Arc<MemorySink>) -> Handler {
    Handler::assemble(
        &Config::default(),
        RuleSet::embedded(),
        Arc::new(LocalSource::new(Path::new(ROOT).join("events/objects"))),
        dedup,
        sink,
    )
}

fn documents(sink: &MemorySink) -> Vec<Value> {
    sink.notifications()
        .iter()
        .map(|n| serde_json::from_str(&n.document).unwrap())
        .collect()
}

/// The fields that identify one call, whichever way it was delivered.
const STABLE_FIELDS: &[&str] = &[
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "recipientAccountId",
    "requestID",
    "userIdentity",
    "sourceIPAddress",
    "requestParameters",
    "responseElements",
    "errorCode",
    "eventID",
];

#[test]
fn the_log_file_holds_the_record_eventbridge_delivered() {
    let object = Path::new(ROOT)
        .join("events/objects/trailwatch-demo-cloudtrail")
        .join(
            log_file_event()["Records"][0]["s3"]["object"]["key"]
                .as_str()
                .unwrap(),
        );
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&object).unwrap()),
        &mut text,
    )
    .unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    let detail = &eventbridge_event()["detail"];
    let in_file = file["Records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["eventID"] == SEED_EVENT_ID)
        .expect("the log file holds the record");
    for field in STABLE_FIELDS {
        assert_eq!(in_file.get(*field), detail.get(*field), "{field}");
    }
    assert_eq!(in_file, detail, "the whole record, as AWS delivers it");
}

#[tokio::test]
async fn eventbridge_first_then_the_log_file_alerts_once() {
    let sink = Arc::new(MemorySink::new());
    let dedup: Arc<dyn DedupStore> = Arc::new(MemoryStore::new());
    let (first, counters) = handler(dedup.clone(), sink.clone())
        .handle_counted(eventbridge_event())
        .await;
    assert_eq!(first.unwrap(), json!({"alerts": 1}));
    assert_eq!((counters.api_calls, counters.records), (1, 1));
    let latencies = &counters.alert_latency_ms[&DeliveryPath::EventBridge];
    assert_eq!(latencies.len(), 1);
    let (second, counters) = handler(dedup, sink.clone())
        .handle_counted(log_file_event())
        .await;
    assert_eq!(second.unwrap(), json!({"alerts": 0}));
    assert_eq!((counters.matches, counters.redeliveries), (1, 1));
    assert!(counters.alert_latency_ms.is_empty());

    let docs = documents(&sink);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert_eq!(docs[0]["path"], "eventbridge");
    assert_eq!(docs[0]["source"], SEED_EVENTBRIDGE);
    assert_eq!(docs[0]["eventId"], SEED_EVENT_ID);
    assert_eq!(docs[0]["alertLatencyMs"], latencies[0]);
    // Publication time minus the record's eventTime (2024-01-15T10:30:00Z).
    let event_ms = trailwatch::time::parse_event_time("2024-01-15T10:30:00Z").unwrap();
    let published = event_ms + docs[0]["alertLatencyMs"].as_i64().unwrap();
    assert!((published - trailwatch::time::now_ms()).abs() < 60_000);
    assert_eq!(
        docs[0]["event"],
        eventbridge_event()["detail"],
        "the detail is the alert's event"
    );
}

#[tokio::test]
async fn the_log_file_first_then_eventbridge_alerts_once() {
    let sink = Arc::new(MemorySink::new());
    let dedup: Arc<dyn DedupStore> = Arc::new(MemoryStore::new());
    let first = handler(dedup.clone(), sink.clone())
        .handle(log_file_event())
        .await;
    assert_eq!(first.unwrap(), json!({"alerts": 1}));
    let (second, counters) = handler(dedup, sink.clone())
        .handle_counted(eventbridge_event())
        .await;
    assert_eq!(second.unwrap(), json!({"alerts": 0}));
    assert_eq!((counters.api_calls, counters.redeliveries), (1, 1));
    let docs = documents(&sink);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["path"], "s3");
    assert!(docs[0]["source"].as_str().unwrap().starts_with("s3://"));
}

#[tokio::test]
async fn both_paths_at_once_alert_once() {
    for _ in 0..20 {
        let sink = Arc::new(MemorySink::new());
        let dedup: Arc<dyn DedupStore> = Arc::new(MemoryStore::new());
        let a = handler(dedup.clone(), sink.clone());
        let b = handler(dedup, sink.clone());
        let (eventbridge, log) = tokio::join!(
            tokio::spawn(async move { a.handle_counted(eventbridge_event()).await }),
            tokio::spawn(async move { b.handle_counted(log_file_event()).await }),
        );
        let (eventbridge, log) = (eventbridge.unwrap(), log.unwrap());
        assert!(eventbridge.0.is_ok() && log.0.is_ok());
        assert_eq!(eventbridge.1.alerts + log.1.alerts, 1);
        assert_eq!(eventbridge.1.redeliveries + log.1.redeliveries, 1);
        assert_eq!(sink.notifications().len(), 1);
    }
}

#[tokio::test]
async fn without_the_eventbridge_event_the_log_file_alerts_as_before() {
    let sink = Arc::new(MemorySink::new());
    let response = handler(Arc::new(MemoryStore::new()), sink.clone())
        .handle(log_file_event())
        .await
        .unwrap();
    assert_eq!(response, json!({"alerts": 1}));
    let docs = documents(&sink);
    assert_eq!(docs[0]["path"], "s3");
    assert_eq!(docs[0]["eventId"], SEED_EVENT_ID);
}

/// The event as a queue, a topic or a redriven dead-letter queue delivers it.
fn wrapped_shapes() -> Vec<(&'static str, Value)> {
    let event = eventbridge_event();
    let text = serde_json::to_string_pretty(&event).unwrap();
    let sqs = |body: String| {
        json!({"Records": [{
            "messageId": "m-1", "receiptHandle": "r", "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
        }]})
    };
    let sns_envelope = json!({
        "Type": "Notification", "MessageId": "n-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:api-calls", "Message": text,
        "Timestamp": "2024-01-15T10:30:02.000Z", "SignatureVersion": "1", "Signature": "s",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/c.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    });
    vec![
        ("direct", event.clone()),
        ("SQS body", sqs(text.clone())),
        (
            "SNS message",
            json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                "Sns": {"Type": "Notification", "Message": text}}]}),
        ),
        ("SNS through SQS", sqs(sns_envelope.to_string())),
        (
            "redriven destination record",
            dead_letter_record(event.clone()),
        ),
        (
            "redriven destination record in SQS",
            sqs(dead_letter_record(event).to_string()),
        ),
    ]
}

#[tokio::test]
async fn every_way_the_event_arrives_alerts_from_eventbridge() {
    for (shape, event) in wrapped_shapes() {
        let sink = Arc::new(MemorySink::new());
        let (response, counters) = handler(Arc::new(MemoryStore::new()), sink.clone())
            .handle_counted(event)
            .await;
        let response = response.unwrap_or_else(|e| panic!("{shape}: {e}"));
        if let Some(failures) = response.get("batchItemFailures") {
            assert_eq!(failures, &json!([]), "{shape}");
        }
        assert_eq!((counters.api_calls, counters.alerts), (1, 1), "{shape}");
        let docs = documents(&sink);
        assert_eq!(docs.len(), 1, "{shape}");
        assert_eq!(docs[0]["path"], "eventbridge", "{shape}");
        assert_eq!(docs[0]["source"], SEED_EVENTBRIDGE, "{shape}");
        assert_eq!(docs[0]["event"], eventbridge_event()["detail"], "{shape}");
    }
}

#[tokio::test]
async fn failed_calls_and_other_calls_from_eventbridge_do_not_alert() {
    let mut failed = eventbridge_event();
    failed["detail"]["errorCode"] = json!("AccessDenied");
    let mut other = eventbridge_event();
    other["detail"]["eventName"] = json!("DescribeExportTasks");
    let mut not_a_record = eventbridge_event();
    not_a_record["detail"] = json!("StartExportTask");
    for event in [failed, other, not_a_record] {
        let sink = Arc::new(MemorySink::new());
        let (response, counters) = handler(Arc::new(MemoryStore::new()), sink.clone())
            .handle_counted(event.clone())
            .await;
        assert_eq!(response.unwrap(), json!({"alerts": 0}), "{event}");
        assert_eq!(counters.api_calls, 1);
        assert!(sink.notifications().is_empty());
    }
    let mut no_detail = eventbridge_event();
    no_detail.as_object_mut().unwrap().remove("detail");
    let error = handler(Arc::new(MemoryStore::new()), Arc::new(MemorySink::new()))
        .handle(no_detail)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no detail"), "{error}");
}

// ---- the command line ----------------------------------------------------------

fn trailwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .current_dir(ROOT)
        .args(args)
        .output()
        .unwrap()
}

fn ndjson(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A `key=value` of `invoke`'s summary line.
fn summary(out: &Output, key: &str) -> u64 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("invoke: "))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn invoke_prints_one_alert_from_eventbridge() {
    let out = trailwatch(&[
        "invoke",
        "events/eventbridge-api-call.json",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let docs = ndjson(&out);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["path"], "eventbridge");
    assert_eq!(docs[0]["source"], SEED_EVENTBRIDGE);
    assert!(docs[0]["alertLatencyMs"].is_u64());
    assert_eq!(summary(&out, "api_calls"), 1);
}

#[test]
fn invoke_of_both_events_in_either_order_prints_one_alert() {
    for (order, path) in [
        (
            [
                "events/eventbridge-api-call.json",
                "events/s3-put-same-call.json",
            ],
            "eventbridge",
        ),
        (
            [
                "events/s3-put-same-call.json",
                "events/eventbridge-api-call.json",
            ],
            "s3",
        ),
    ] {
        let out = trailwatch(&["invoke", order[0], order[1], "--format", "json"]);
        assert!(out.status.success(), "{order:?}: {out:?}");
        let docs = ndjson(&out);
        assert_eq!(docs.len(), 1, "{order:?}");
        assert_eq!(docs[0]["path"], path, "{order:?}");
        assert_eq!(summary(&out, "alerts"), 1, "{order:?}");
        assert_eq!(summary(&out, "redeliveries"), 1, "{order:?}");
        assert_eq!(summary(&out, "matches"), 2, "{order:?}");
    }
}

#[test]
fn invoke_names_an_unreadable_event_file() {
    let out = trailwatch(&[
        "invoke",
        "events/eventbridge-api-call.json",
        "events/nope.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "nothing runs before every file is read"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events/nope.json"), "{stderr}");
}

// ---- the pattern: the rules', in the code and in both templates ------------------

/// The `EventPattern` of a template's `AWS::Events::Rule` resource.
fn template_pattern(template: &str, resource: &str) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join(template)).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let rule = &yaml["Resources"][resource];
    assert_eq!(
        rule["Type"].as_str(),
        Some("AWS::Events::Rule"),
        "{template}"
    );
    rule["Properties"]["EventPattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{template}: {resource}'s EventPattern is not a JSON string"))
        .to_owned()
}

#[test]
fn both_templates_carry_exactly_the_generated_pattern() {
    let out = trailwatch(&["eventbridge-pattern"]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let printed = printed.trim_end();
    let derived = event_pattern(&RuleSet::embedded().rules).unwrap();
    assert_eq!(printed, derived.to_string());
    for (template, resource) in [
        ("template.yaml", "RealTimeRule"),
        ("deploy/member.yaml", "ForwardRule"),
    ] {
        assert_eq!(
            template_pattern(template, resource),
            printed,
            "{template}: run `trailwatch eventbridge-pattern` and paste its output"
        );
    }
}

#[test]
fn a_rule_the_pattern_cannot_express_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("any_start.yml");
    std::fs::write(
        &rule,
        "RuleID: Any.Start\nSeverity: Low\nDetection:\n  - {Key: eventName, Condition: StartsWith, Value: Start}\n",
    )
    .unwrap();
    let out = trailwatch(&["eventbridge-pattern", "--rules", rule.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rule Any.Start") && stderr.contains("any_start.yml"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

// ---- against the emulator --------------------------------------------------------

/// The stack's log file and EventBridge event for one export of `account`.
async fn one_export(stack: &Stack, account: &str, id: &str) -> (Value, Value) {
    let record = export_record(
        &format!("rt-{id}"),
        "2024-05-01T10:00:00Z",
        account,
        "orders",
    );
    let key = log_key(account, id);
    stack
        .put_object(&key, log_file(std::slice::from_ref(&record)))
        .await;
    let eventbridge = api_call_event(&format!("eb-{id}"), &record);
    (eventbridge, stack.s3_event(&[key]))
}

/// Handles `event` like Lambda: an invocation that fails because the alert of its
/// window is still being published by another one is retried, as Lambda retries it.
async fn invoke_until_done(handler: &Handler, event: Value) -> u64 {
    for _ in 0..50 {
        match handler.handle_counted(event.clone()).await {
            (Ok(response), _) => return response["alerts"].as_u64().unwrap(),
            (Err(e), _) => {
                assert!(e.to_string().contains("being published"), "{e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    panic!("the invocation never succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_one_sns_alert_per_export_in_either_order_and_at_once() {
    let stack = Stack::start().await;
    for (n, scenario) in ["eventbridge first", "log file first", "at once"]
        .iter()
        .enumerate()
    {
        let account = format!("40000000000{n}");
        let (eventbridge, log) = one_export(&stack, &account, &n.to_string()).await;
        let table = moto::unique("dedup");
        stack.create_table(&table).await;
        // Each invocation on an instance of its own (cold starts), as in Lambda.
        let (a, b) = (
            stack.handler_on(&table, None),
            stack.handler_on(&table, None),
        );
        let alerts = match *scenario {
            "eventbridge first" => {
                invoke_until_done(&a, eventbridge).await + invoke_until_done(&b, log).await
            }
            "log file first" => {
                invoke_until_done(&a, log).await + invoke_until_done(&b, eventbridge).await
            }
            _ => {
                let barrier = Arc::new(tokio::sync::Barrier::new(2));
                let run = |handler: Handler, event: Value| {
                    let barrier = Arc::clone(&barrier);
                    tokio::spawn(async move {
                        barrier.wait().await;
                        invoke_until_done(&handler, event).await
                    })
                };
                let (x, y) = tokio::join!(run(a, eventbridge), run(b, log));
                x.unwrap() + y.unwrap()
            }
        };
        assert_eq!(alerts, 1, "{scenario}");
        let delivered = stack.drain().await;
        assert_eq!(delivered.len(), 1, "{scenario}: {delivered:#?}");
        assert_eq!(delivered[0].kind(), "alert");
        assert_eq!(delivered[0].document["eventId"], format!("rt-{n}"));
        let expected_path = match *scenario {
            "eventbridge first" => Some("eventbridge"),
            "log file first" => Some("s3"),
            _ => None,
        };
        if let Some(path) = expected_path {
            assert_eq!(delivered[0].document["path"], path, "{scenario}");
        }
        // A third sighting (a CloudTrail redelivery) changes nothing.
        let again = stack.handler_on(&table, None);
        let (_, log) = one_export(&stack, &account, &n.to_string()).await;
        assert_eq!(invoke_until_done(&again, log).await, 0);
        assert!(stack.drain().await.is_empty(), "{scenario}");
    }
}

/// An EventBridge rule with `pattern` on the default bus of `events`' region,
/// delivering to a new queue; returns the queue's URL.
async fn rule_to_queue(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    pattern: &str,
) -> String {
    let queue_url = sqs
        .create_queue()
        .queue_name(moto::unique("api-calls"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = moto::unique("trailwatch-real-time");
    events
        .put_rule()
        .name(&rule)
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    queue_url
}

/// Puts each record as CloudTrail would, as an API-call event on the default bus.
async fn put_api_calls(events: &aws_sdk_eventbridge::Client, records: &[Value]) {
    for record in records {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("aws.rds")
            .detail_type("AWS API Call via CloudTrail")
            .detail(record.to_string())
            .build();
        let out = events.put_events().entries(entry).send().await.unwrap();
        assert_eq!(out.failed_entry_count, 0, "{out:?}");
    }
}

/// The queue's messages, as the SQS event Lambda would receive (and deleted).
async fn queued_as_lambda_event(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Value {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = received
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            json!({
                "messageId": m.message_id.unwrap(), "receiptHandle": m.receipt_handle.unwrap(),
                "body": m.body.unwrap(), "attributes": {}, "messageAttributes": {},
                "md5OfBody": "x", "eventSource": "aws:sqs", "awsRegion": REGION,
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:api-calls"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_pattern_routes_successful_exports_only() {
    let stack = Stack::start().await;
    let events = aws_sdk_eventbridge::Client::new(&stack.conf);
    let pattern = event_pattern(&RuleSet::embedded().rules)
        .unwrap()
        .to_string();
    let queue_url = rule_to_queue(&events, &stack.sqs, &pattern).await;

    let account = "500000000001";
    let ok = export_record("ok-1", "2024-05-01T10:00:00Z", account, "orders");
    let mut null_error = export_record("ok-2", "2024-05-01T10:01:00Z", account, "orders");
    null_error["errorCode"] = Value::Null;
    let mut failed = export_record("no-1", "2024-05-01T10:02:00Z", account, "orders");
    failed["errorCode"] = json!("AccessDenied");
    let mut empty_error = export_record("no-2", "2024-05-01T10:03:00Z", account, "orders");
    empty_error["errorCode"] = json!("");
    let mut other_call = export_record("no-3", "2024-05-01T10:04:00Z", account, "orders");
    other_call["eventName"] = json!("DescribeExportTasks");
    let mut other_service = export_record("no-4", "2024-05-01T10:05:00Z", account, "orders");
    other_service["eventSource"] = json!("neptune-graph.amazonaws.com");
    put_api_calls(
        &events,
        &[
            ok,
            null_error,
            failed,
            empty_error,
            other_call,
            other_service,
        ],
    )
    .await;

    let batch = queued_as_lambda_event(&stack.sqs, &queue_url).await;
    let ids: Vec<String> = batch["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            body["detail"]["eventID"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        ["ok-1", "ok-2"],
        "the pattern matches the rule's matches"
    );

    // What the queue received is what the function alerts on: one window, one alert.
    let (response, counters) = stack.handler(None).handle_counted(batch).await;
    assert_eq!(response.unwrap()["batchItemFailures"], json!([]));
    assert_eq!(
        (counters.api_calls, counters.alerts, counters.suppressed),
        (2, 1, 1)
    );
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].document["path"], "eventbridge");
    assert_eq!(delivered[0].document["eventId"], "ok-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_region_forwards_matching_calls_to_the_central_bus() {
    let stack = Stack::start().await;
    let central = aws_sdk_eventbridge::Client::new(&stack.conf);
    let member_conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .endpoint_url(&stack.server.endpoint)
        .load()
        .await;
    let member = aws_sdk_eventbridge::Client::new(&member_conf);
    let pattern = template_pattern("deploy/member.yaml", "ForwardRule");
    let queue_url = rule_to_queue(&central, &stack.sqs, &pattern).await;
    // deploy/member.yaml's rule, in another region: the central bus as its target.
    let central_bus = central
        .describe_event_bus()
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    member
        .put_rule()
        .name("trailwatch-forward")
        .event_pattern(&pattern)
        .send()
        .await
        .unwrap();
    member
        .put_targets()
        .rule("trailwatch-forward")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("trailwatch-central")
                .arn(central_bus)
                .role_arn("arn:aws:iam::123456789012:role/trailwatch-forward")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut record = export_record("fw-1", "2024-05-01T10:00:00Z", "600000000001", "orders");
    record["awsRegion"] = json!("eu-west-1");
    let mut failed = record.clone();
    failed["eventID"] = json!("fw-2");
    failed["errorCode"] = json!("AccessDenied");
    put_api_calls(&member, &[record, failed]).await;

    let batch = queued_as_lambda_event(&stack.sqs, &queue_url).await;
    assert_eq!(batch["Records"].as_array().unwrap().len(), 1, "{batch:#}");
    let response = stack.handler(None).handle(batch).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].document["eventId"], "fw-1");
    assert_eq!(delivered[0].document["region"], "eu-west-1");
    assert_eq!(delivered[0].document["path"], "eventbridge");
}
