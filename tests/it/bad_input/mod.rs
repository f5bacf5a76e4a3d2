//! SPEC §7, one table row per row of the specification's table, each run through the
//! Lambda handler (in-memory S3, dedup and sink) under the three ways a bad object can
//! arrive: an S3 notification, an SNS notification and an SQS batch. Every event
//! also names a good object, whose alert must survive its neighbour's failure.
//!
//! Then the keys (SPEC §3): organisation trails, bucket prefixes, URL decoding, and
//! the keys that are skipped; and `trailwatch scan` on a folder with corrupt files.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::support::corpus::{self, Options};
use crate::support::fixtures::{self, gzip, log_file};

use trailwatch::config::Config;
use trailwatch::counters::Counters;
use trailwatch::decode::Limits;
use trailwatch::dedup::MemoryStore;
use trailwatch::handler::{Failure, Handler, HandlerError};
use trailwatch::rule::RuleSet;
use trailwatch::sink::MemorySink;
use trailwatch::source::{MemorySource, ObjectRef};
use trailwatch::trigger::{parse_trigger, Trigger, TriggerError};

const BUCKET: &str = "trail-bucket";
const GOOD_KEY: &str = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_GoodGoodGood0001.json.gz";
const BAD_KEY: &str = "AWSLogs/123456789012/CloudTrail/eu-west-1/2024/03/15/123456789012_CloudTrail_eu-west-1_20240315T1040Z_BadBadBadBad0001.json.gz";
const GOOD_EVENT_ID: &str = "good-export-0001";

/// A successful `rds:StartExportTask` record.
fn export(event_id: &str, region: &str) -> Value {
    json!({
        "eventVersion": "1.09", "eventTime": "2024-03-15T10:32:55Z", "awsRegion": region,
        "eventSource": "rds.amazonaws.com", "eventName": "StartExportTask",
        "recipientAccountId": "123456789012", "eventID": event_id,
        "sourceIPAddress": "198.51.100.23", "userAgent": "aws-cli/2.15.30",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/DataEngineer/jdoe"},
        "requestParameters": {
            "exportTaskIdentifier": "orders-export", "s3BucketName": "exfil-bucket",
            "sourceArn": "arn:aws:rds:us-east-1:123456789012:snapshot:orders-prod-2024-03-15",
            "iamRoleArn": "arn:aws:iam::123456789012:role/rds-s3-export-role",
            "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-22bb-33cc-44dd-5555eeee6666"
        }
    })
}

/// Records that do not match: what most of a log file is.
fn noise(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"eventVersion": "1.09", "eventTime": "2024-03-15T10:31:07Z", "awsRegion": "eu-west-1",
                   "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventID": format!("noise-{i}"),
                   "requestParameters": {"bucketName": "app-logs", "key": format!("logs/{i}.gz")}})
        })
        .collect()
}

fn good_object() -> Vec<u8> {
    good_object_in("us-east-1", GOOD_EVENT_ID)
}

/// Noise around one export of `event_id` in `region`.
fn good_object_in(region: &str, event_id: &str) -> Vec<u8> {
    let mut records = noise(3);
    records.insert(1, export(event_id, region));
    log_file(&records)
}

fn new_handler(source: MemorySource, limits: Limits) -> (Handler, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let config = Config {
        limits,
        ..Config::default()
    };
    let handler = Handler::assemble(
        &config,
        RuleSet::embedded(),
        Arc::new(source),
        Arc::new(MemoryStore::new()),
        sink.clone(),
    );
    (handler, sink)
}

fn s3_notification(keys: &[&str]) -> Value {
    fixtures::s3_notification(BUCKET, keys)
}

fn sns_envelope(message: &Value) -> Value {
    json!({
        "Type": "Notification", "MessageId": "b2f7e0a4-9c3d-5e1f-a6b8-7c9d0e1f2a3b",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:trail-events",
        "Subject": "Amazon S3 Notification", "Message": message.to_string(),
        "Timestamp": "2024-03-15T10:40:12.571Z", "SignatureVersion": "1", "Signature": "c2lnbmF0dXJl",
        "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-60eadc53.pem",
        "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
}

fn sns_event(message: &Value) -> Value {
    json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:trail-events:2bcfbf39",
        "Sns": sns_envelope(message)
    }]})
}

fn sqs_event(messages: &[(&str, Value)]) -> Value {
    json!({ "Records": messages.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": "AQEBexample", "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1710499212456",
                       "SenderId": "AIDAJHIPRHEMV73VRJEBU", "ApproximateFirstReceiveTimestamp": "1710499212493"},
        "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:trail-events", "awsRegion": "us-east-1"
    })).collect::<Vec<_>>() })
}

/// How a bad object reaches the function.
#[derive(Debug, Clone, Copy)]
enum Route {
    S3,
    Sns,
    Sqs,
}

/// An event naming the good object and the object under test.
fn event_for(route: Route) -> Value {
    match route {
        Route::S3 => s3_notification(&[GOOD_KEY, BAD_KEY]),
        Route::Sns => sns_event(&s3_notification(&[GOOD_KEY, BAD_KEY])),
        Route::Sqs => sqs_event(&[
            ("msg-good", s3_notification(&[GOOD_KEY])),
            ("msg-bad", s3_notification(&[BAD_KEY])),
        ]),
    }
}

/// What the object under test is.
enum Input {
    /// Stored at `BAD_KEY`.
    Object(Vec<u8>),
    /// Named by the event but not in the bucket (`NoSuchKey`).
    Missing,
    /// Not an object: the trigger event itself.
    Event(Value),
}

/// What SPEC §7 says happens.
enum Expect {
    /// The object fails with an error naming it and this cause; the neighbours'
    /// alerts are sent; the invocation reports the failure.
    Fails(&'static str),
    /// Not an error: the invocation succeeds, with this many alerts from the object
    /// under test and `counter` at `value`.
    Passes {
        alerts: usize,
        counter: (&'static str, fn(&Counters) -> u64, u64),
        check: Option<fn(&Value)>,
    },
    /// A clear trigger error, no panic, nothing read or sent.
    UnknownTrigger,
}

struct Row {
    /// The SPEC §7 row, and the variant of it.
    spec: &'static str,
    input: Input,
    limits: Limits,
    expect: Expect,
}

fn default_limits() -> Limits {
    Limits::default()
}

fn missing_fields_alert(document: &Value) {
    for field in [
        "account",
        "region",
        "eventTime",
        "sourceIPAddress",
        "userAgent",
    ] {
        assert_eq!(document[field], "unknown", "{field}: {document}");
    }
    assert_eq!(document["principal"]["arn"], "unknown", "{document}");
    assert_eq!(document["eventId"], "unknown", "{document}");
    let text = document.to_string();
    assert!(
        text.contains("\"snapshotArn\":\"unknown\"") && text.contains("\"s3Bucket\":\"unknown\""),
        "{document}"
    );
}

fn table() -> Vec<Row> {
    let cap = 1 << 20;
    vec![
        Row {
            spec: "object is not gzip and not JSON (zip bytes)",
            input: Input::Object(b"PK\x03\x04\x14\x00\x00\x00\x08\x00 not a CloudTrail file".to_vec()),
            limits: default_limits(),
            expect: Expect::Fails("not gzip and not JSON"),
        },
        Row {
            spec: "object is not gzip and not JSON (gzip of text)",
            input: Input::Object(gzip(b"Hello, this is a text file, not a CloudTrail log\n")),
            limits: default_limits(),
            expect: Expect::Fails("not gzip and not JSON"),
        },
        Row {
            spec: "object is not gzip and not JSON (empty object)",
            input: Input::Object(Vec::new()),
            limits: default_limits(),
            expect: Expect::Fails("empty object"),
        },
        Row {
            spec: "truncated gzip",
            input: Input::Object({
                let whole = log_file(&noise(400));
                whole[..whole.len() * 2 / 3].to_vec()
            }),
            limits: default_limits(),
            expect: Expect::Fails("gzip stream is corrupt or truncated"),
        },
        Row {
            spec: "invalid JSON (mismatched bracket)",
            input: Input::Object(gzip(br#"{"Records":[{"eventName":"GetObject"}]]"#)),
            limits: default_limits(),
            expect: Expect::Fails("invalid JSON"),
        },
        Row {
            spec: "invalid JSON (inside a matching record)",
            input: Input::Object(
                br#"{"Records":[{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","errorCode":nul}]}"#
                    .to_vec(),
            ),
            limits: default_limits(),
            expect: Expect::Fails("invalid JSON"),
        },
        Row {
            spec: "invalid JSON (document cut short)",
            input: Input::Object(gzip(br#"{"Records":[{"eventName":"GetObject"},{"eventNa"#)),
            limits: default_limits(),
            expect: Expect::Fails("truncated JSON"),
        },
        Row {
            spec: "object missing (NoSuchKey)",
            input: Input::Missing,
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 0,
                counter: ("missing_objects", |c| c.missing_objects, 1),
                check: None,
            },
        },
        Row {
            spec: "decompressed size over the cap",
            input: Input::Object(log_file(&noise(12_000))),
            limits: Limits {
                max_decompressed_bytes: cap,
                ..Limits::default()
            },
            expect: Expect::Fails("decompressed size exceeds the limit of 1048576 bytes"),
        },
        Row {
            spec: "JSON without Records",
            input: Input::Object(gzip(
                json!({"Events": [export("not-in-records", "eu-west-1")]}).to_string().as_bytes(),
            )),
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 0,
                counter: ("objects_without_records", |c| c.objects_without_records, 1),
                check: None,
            },
        },
        Row {
            spec: "Records not an array",
            input: Input::Object(gzip(
                json!({"Records": export("records-is-an-object", "eu-west-1")}).to_string().as_bytes(),
            )),
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 0,
                counter: ("objects_without_records", |c| c.objects_without_records, 1),
                check: None,
            },
        },
        Row {
            spec: "a record that is not an object (the rest of the file is processed)",
            input: Input::Object(log_file(&[
                json!(1),
                json!("StartExportTask"),
                Value::Null,
                json!(true),
                json!([export("nested-in-an-array", "eu-west-1")]),
                export("after-the-junk", "eu-west-1"),
            ])),
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 1,
                counter: ("non_object_records", |c| c.non_object_records, 5),
                check: None,
            },
        },
        Row {
            spec: "matching record missing optional fields",
            input: Input::Object(log_file(&[
                json!({"eventSource": "rds.amazonaws.com", "eventName": "StartExportTask"}),
            ])),
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 1,
                counter: ("matches", |c| c.matches, 2),
                check: Some(missing_fields_alert),
            },
        },
        Row {
            spec: "a bad part beside good records (data after the last gzip member)",
            input: Input::Object({
                let mut object = good_object_in("eu-west-1", "after-the-members");
                object.extend(b"not a gzip member");
                object
            }),
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 1,
                counter: ("trailing_data_objects", |c| c.trailing_data_objects, 1),
                check: None,
            },
        },
        Row {
            spec: "a bad part beside good records (zero padding between gzip members)",
            input: Input::Object({
                let mut records = noise(3);
                records.push(export("after-the-padding", "eu-west-1"));
                let text = json!({ "Records": records }).to_string();
                let (first, second) = text.split_at(text.len() / 2);
                let mut object = gzip(first.as_bytes());
                object.extend([0u8; 100]);
                object.extend(gzip(second.as_bytes()));
                object
            }),
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 1,
                counter: ("records", |c| c.records, 4 + 4),
                check: None,
            },
        },
        Row {
            spec: "a bad part beside good records (a record over the size limit)",
            input: Input::Object(log_file(&[
                json!({"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "blob": "b".repeat(2 << 20)}),
                export("after-the-big-one", "eu-west-1"),
            ])),
            limits: Limits {
                max_record_bytes: 1 << 20,
                ..Limits::default()
            },
            expect: Expect::Passes {
                alerts: 1,
                counter: ("oversized_records", |c| c.oversized_records, 1),
                check: None,
            },
        },
        Row {
            spec: "a bad part beside good records (elements that are not valid JSON)",
            input: Input::Object(gzip(
                format!(
                    r#"{{"x":NaN,"Records":[NaN,"\udc00","{}",{}]}}"#,
                    "a raw\ttab",
                    export("after-the-bad-elements", "eu-west-1")
                )
                .as_bytes(),
            )),
            limits: default_limits(),
            expect: Expect::Passes {
                alerts: 1,
                counter: ("invalid_elements", |c| c.invalid_elements, 4),
                check: None,
            },
        },
        Row {
            spec: "unknown trigger event shape (Kinesis)",
            input: Input::Event(json!({"Records": [{"eventSource": "aws:kinesis", "kinesis": {"data": "e30="}}]})),
            limits: default_limits(),
            expect: Expect::UnknownTrigger,
        },
        Row {
            spec: "unknown trigger event shape (API Gateway)",
            input: Input::Event(json!({"resource": "/", "httpMethod": "GET", "body": null})),
            limits: default_limits(),
            expect: Expect::UnknownTrigger,
        },
        Row {
            spec: "unknown trigger event shape (not an object)",
            input: Input::Event(json!(["s3:TestEvent"])),
            limits: default_limits(),
            expect: Expect::UnknownTrigger,
        },
    ]
}

fn documents(sink: &MemorySink) -> Vec<Value> {
    sink.notifications()
        .iter()
        .map(|n| serde_json::from_str(&n.document).unwrap())
        .collect()
}

async fn run_object_row(row: &Row, route: Route) {
    let name = format!("{} via {route:?}", row.spec);
    let mut source = MemorySource::default().with(BUCKET, GOOD_KEY, good_object());
    if let Input::Object(bytes) = &row.input {
        source = source.with(BUCKET, BAD_KEY, bytes.clone());
    }
    let (handler, sink) = new_handler(source, row.limits);
    let result = handler.handle(event_for(route)).await;
    let alerts = documents(&sink);
    assert!(
        alerts.iter().any(|a| a["eventId"] == GOOD_EVENT_ID),
        "{name}: the good object's alert is sent: {alerts:?}"
    );
    let bad_object = format!("s3://{BUCKET}/{BAD_KEY}");
    match (&row.expect, route, result) {
        (Expect::Fails(cause), Route::S3 | Route::Sns, Err(HandlerError::Objects(failures))) => {
            assert_eq!(failures.len(), 1, "{name}: {failures:?}");
            let failure = failures[0].to_string();
            assert!(
                failure.contains(&bad_object) && failure.contains(cause),
                "{name}: {failure}"
            );
            assert!(
                matches!(failures[0], Failure::Decode { .. }),
                "{name}: a bad object is a decode failure: {:?}",
                failures[0]
            );
            assert_eq!(alerts.len(), 1, "{name}");
        }
        (Expect::Fails(_), Route::Sqs, Ok(response)) => {
            assert_eq!(
                response,
                json!({"batchItemFailures": [{"itemIdentifier": "msg-bad"}]}),
                "{name}"
            );
            assert_eq!(alerts.len(), 1, "{name}");
        }
        (
            Expect::Passes {
                alerts: n, check, ..
            },
            route,
            Ok(response),
        ) => {
            let expected = match route {
                Route::Sqs => json!({"batchItemFailures": []}),
                Route::S3 | Route::Sns => json!({"alerts": 1 + n}),
            };
            assert_eq!(response, expected, "{name}");
            assert_eq!(alerts.len(), 1 + n, "{name}: {alerts:?}");
            if let Some(check) = check {
                for alert in alerts.iter().filter(|a| a["eventId"] != GOOD_EVENT_ID) {
                    check(alert);
                }
            }
        }
        (_, _, other) => panic!("{name}: unexpected outcome {other:?}"),
    }
}

/// The counters and failure lines of the same two objects, read directly.
async fn check_counters(row: &Row) {
    let mut source = MemorySource::default().with(BUCKET, GOOD_KEY, good_object());
    if let Input::Object(bytes) = &row.input {
        source = source.with(BUCKET, BAD_KEY, bytes.clone());
    }
    let (handler, _) = new_handler(source, row.limits);
    let object = |key: &str| ObjectRef {
        bucket: BUCKET.into(),
        key: key.into(),
    };
    let outcome = handler
        .process_objects(vec![object(GOOD_KEY), object(BAD_KEY)])
        .await;
    let c = &outcome.counters;
    match &row.expect {
        Expect::Fails(cause) => {
            assert_eq!(c.failed_objects, 1, "{}: {c:?}", row.spec);
            assert_eq!(outcome.failures.len(), 1, "{}", row.spec);
            assert!(
                outcome.failures[0].to_string().contains(cause),
                "{}",
                row.spec
            );
            assert_eq!(c.missing_objects, 0, "{}", row.spec);
        }
        Expect::Passes {
            counter: (counter, get, value),
            ..
        } => {
            assert!(
                outcome.failures.is_empty(),
                "{}: {:?}",
                row.spec,
                outcome.failures
            );
            assert_eq!(c.failed_objects, 0, "{}", row.spec);
            assert_eq!(get(c), *value, "{}: {counter} in {c:?}", row.spec);
        }
        Expect::UnknownTrigger => unreachable!("trigger rows have no objects"),
    }
    if let Input::Object(bytes) = &row.input {
        if row.limits.max_decompressed_bytes < Limits::default().max_decompressed_bytes {
            // The cap stops the inflation: no more than one read buffer past the cap.
            let good = 4096;
            assert!(
                c.decoded_bytes <= row.limits.max_decompressed_bytes + (512 << 10) + good,
                "{}: decoded {} bytes of a {}-byte object",
                row.spec,
                c.decoded_bytes,
                bytes.len()
            );
        }
    }
}

async fn run_trigger_row(row: &Row, event: &Value) {
    let (handler, sink) = new_handler(MemorySource::default(), row.limits);
    match handler.handle(event.clone()).await {
        Err(HandlerError::Trigger(error @ TriggerError::UnknownShape(_))) => {
            assert!(
                error.to_string().contains("unrecognised trigger event"),
                "{}: {error}",
                row.spec
            );
        }
        other => panic!(
            "{}: expected an unknown-shape error, got {other:?}",
            row.spec
        ),
    }
    assert!(sink.notifications().is_empty(), "{}", row.spec);
}

#[tokio::test]
async fn spec_section_7_table() {
    let rows = table();
    let covered: BTreeSet<&str> = rows
        .iter()
        .map(|r| r.spec.split(" (").next().unwrap_or(r.spec))
        .collect();
    for spec_row in [
        "object is not gzip and not JSON",
        "truncated gzip",
        "invalid JSON",
        "object missing",
        "decompressed size over the cap",
        "JSON without Records",
        "Records not an array",
        "a record that is not an object",
        "matching record missing optional fields",
        "a bad part beside good records",
        "unknown trigger event shape",
    ] {
        assert!(covered.contains(spec_row), "no row for {spec_row:?}");
    }
    for row in &rows {
        match &row.input {
            Input::Event(event) => run_trigger_row(row, event).await,
            Input::Object(_) | Input::Missing => {
                for route in [Route::S3, Route::Sns, Route::Sqs] {
                    run_object_row(row, route).await;
                }
                check_counters(row).await;
            }
        }
    }
}

#[tokio::test]
async fn a_retry_after_a_partial_failure_does_not_alert_twice() {
    let source = MemorySource::default()
        .with(BUCKET, GOOD_KEY, good_object())
        .with(BUCKET, BAD_KEY, b"not json".to_vec());
    let (handler, sink) = new_handler(source, Limits::default());
    let event = s3_notification(&[GOOD_KEY, BAD_KEY]);
    let bad = format!("s3://{BUCKET}/{BAD_KEY}");
    for attempt in ["first", "retry"] {
        // Each attempt fails for the bad object alone, named.
        let error = handler.handle(event.clone()).await.unwrap_err().to_string();
        assert!(error.contains(&bad), "{attempt}: {error}");
        assert!(!error.contains(GOOD_KEY), "{attempt}: {error}");
    }
    assert_eq!(
        sink.notifications().len(),
        1,
        "Lambda's retry re-reads the good object; dedup keeps it to one alert"
    );
}

/// One row per key shape: the key as it arrives in the event, and where the object
mod keys;
