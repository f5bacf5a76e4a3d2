//! Every sample event in `events/`, through the Lambda handler with in-memory fakes
//! and through `trailwatch invoke` (the real binary), with exact alert counts and,
//! for SQS, the exact partial batch response.
//!
//! The samples are what `make run` and the README point people at, so each one must
//! keep working end to end; a sample added to `events/` without a row in [`SAMPLES`]
//! fails [`every_sample_has_a_row`].

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};

use trailwatch::config::Config;
use trailwatch::dedup::MemoryStore;
use trailwatch::handler::Handler;
use trailwatch::rule::RuleSet;
use trailwatch::sink::MemorySink;
use trailwatch::source::LocalSource;
use trailwatch::trigger::{parse_trigger, Trigger};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The one successful export in the demo log file.
const DEMO_EVENT_ID: &str = "c0ffee00-5e1f-4b2a-9d3c-7a8b9c0d1e2f";
const DEMO_OBJECT: &str = "s3://trailwatch-demo-cloudtrail/AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz";
/// The same file delivered by an organisation trail under a bucket prefix with a space.
const ORG_OBJECT: &str = "s3://trailwatch-demo-cloudtrail/audit logs/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz";

/// Panther's first test record of the export rule: the `detail` of
/// `eventbridge-api-call.json`, and a record of the log file `s3-put-same-call.json`
/// names.
const SEED_EVENT_ID: &str = "f1e2d3c4-b5a6-7890-1234-567890abcdef";
const SEED_EVENTBRIDGE: &str = "eventbridge:us-east-1:4c2f8e1a-93d7-4b6e-a5c0-7d1e2f3a4b5c";
const SEED_OBJECT: &str = "s3://trailwatch-demo-cloudtrail/AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/123456789012_CloudTrail_us-east-1_20240115T1035Z_Hx7pQ2mTn4LwR9aK.json.gz";

/// What a sample's trigger is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Objects,
    ApiCalls,
    Batch,
    TestEvent,
    Scheduled,
}

struct Sample {
    file: &'static str,
    shape: Shape,
    /// `s3://` sources of the alerts, in order.
    alerts: &'static [&'static str],
    /// The handler's response, exactly.
    response: fn() -> Value,
}

const SAMPLES: &[Sample] = &[
    Sample {
        file: "s3-put.json",
        shape: Shape::Objects,
        alerts: &[DEMO_OBJECT],
        response: || json!({"alerts": 1}),
    },
    Sample {
        file: "s3-digest.json",
        shape: Shape::Objects,
        alerts: &[],
        response: || json!({"alerts": 0}),
    },
    Sample {
        file: "s3-url-encoded-key.json",
        shape: Shape::Objects,
        alerts: &[ORG_OBJECT],
        response: || json!({"alerts": 1}),
    },
    Sample {
        file: "sqs-s3.json",
        shape: Shape::Batch,
        alerts: &[DEMO_OBJECT],
        response: || json!({"batchItemFailures": []}),
    },
    Sample {
        file: "sqs-sns-s3.json",
        shape: Shape::Batch,
        alerts: &[DEMO_OBJECT],
        response: || json!({"batchItemFailures": []}),
    },
    Sample {
        file: "sqs-partial-failure.json",
        shape: Shape::Batch,
        alerts: &[DEMO_OBJECT],
        response: || {
            json!({"batchItemFailures": [
                {"itemIdentifier": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"},
                {"itemIdentifier": "9d8c7b6a-5f4e-4d3c-a2b1-0f9e8d7c6b5a"},
            ]})
        },
    },
    Sample {
        file: "sns-s3.json",
        shape: Shape::Objects,
        alerts: &[DEMO_OBJECT],
        response: || json!({"alerts": 1}),
    },
    Sample {
        file: "sns-cloudtrail.json",
        shape: Shape::Objects,
        alerts: &[DEMO_OBJECT],
        response: || json!({"alerts": 1}),
    },
    Sample {
        file: "eventbridge-object-created.json",
        shape: Shape::Objects,
        alerts: &[DEMO_OBJECT],
        response: || json!({"alerts": 1}),
    },
    Sample {
        file: "eventbridge-api-call.json",
        shape: Shape::ApiCalls,
        alerts: &[SEED_EVENTBRIDGE],
        response: || json!({"alerts": 1}),
    },
    Sample {
        file: "s3-put-same-call.json",
        shape: Shape::Objects,
        alerts: &[SEED_OBJECT],
        response: || json!({"alerts": 1}),
    },
    Sample {
        file: "s3-test-event.json",
        shape: Shape::TestEvent,
        alerts: &[],
        response: || json!({"status": "ignored s3:TestEvent"}),
    },
    Sample {
        file: "scheduled.json",
        shape: Shape::Scheduled,
        alerts: &[],
        response: || json!({"rollups": 0}),
    },
];

fn load(file: &str) -> Value {
    let path = Path::new(ROOT).join("events").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A handler like `trailwatch invoke` builds, with the sink kept in memory.
fn new_handler() -> (Handler, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let handler = Handler::assemble(
        &Config::default(),
        RuleSet::embedded(),
        Arc::new(LocalSource::new(Path::new(ROOT).join("events/objects"))),
        Arc::new(MemoryStore::new()),
        sink.clone(),
    );
    (handler, sink)
}

fn shape_of(trigger: &Trigger) -> Shape {
    match trigger {
        Trigger::Objects(_) => Shape::Objects,
        Trigger::ApiCalls(_) => Shape::ApiCalls,
        Trigger::Batch(_) => Shape::Batch,
        Trigger::TestEvent => Shape::TestEvent,
        Trigger::Scheduled => Shape::Scheduled,
    }
}

/// Checks one alert document against the demo export.
fn check_alert(sample: &str, document: &Value, source: &str) {
    assert_eq!(document["kind"], "alert", "{sample}: {document}");
    let event_id = if [SEED_EVENTBRIDGE, SEED_OBJECT].contains(&source) {
        SEED_EVENT_ID
    } else {
        DEMO_EVENT_ID
    };
    assert_eq!(document["eventId"], event_id, "{sample}");
    assert_eq!(document["source"], source, "{sample}");
    assert_eq!(document["account"], "123456789012", "{sample}");
    assert_eq!(document["region"], "us-east-1", "{sample}");
}

/// S3 Batch Operations job events are not triggers: the handler answers them with
/// task results (`history_cli::batch_operations_events_*` run both samples).
pub(crate) fn is_batch_job(file_name: &str) -> bool {
    file_name.starts_with("batch-ops-")
}

#[test]
fn every_sample_has_a_row() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(Path::new(ROOT).join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json") && !is_batch_job(name))
        .collect();
    let in_table: BTreeSet<String> = SAMPLES.iter().map(|s| s.file.to_owned()).collect();
    assert_eq!(
        on_disk, in_table,
        "each sample event needs a row in SAMPLES"
    );
}

#[test]
fn every_sample_has_its_trigger_shape() {
    for sample in SAMPLES {
        let trigger =
            parse_trigger(&load(sample.file)).unwrap_or_else(|e| panic!("{}: {e}", sample.file));
        assert_eq!(shape_of(&trigger), sample.shape, "{}", sample.file);
    }
}

#[test]
fn sqs_samples_report_each_message() {
    let Trigger::Batch(messages) = parse_trigger(&load("sqs-s3.json")).unwrap() else {
        panic!("sqs-s3.json is a batch");
    };
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].objects.as_ref().map(Vec::len), Ok(1));
    assert_eq!(
        messages[1].objects,
        Ok(vec![]),
        "the s3:TestEvent message names nothing and succeeds"
    );

    let Trigger::Batch(messages) = parse_trigger(&load("sqs-partial-failure.json")).unwrap() else {
        panic!("sqs-partial-failure.json is a batch");
    };
    let failed: Vec<String> = messages
        .iter()
        .filter_map(|m| {
            m.objects
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", m.message_id))
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].contains("not JSON"), "{}", failed[0]);
    assert!(
        failed[1].contains("SNS") && failed[1].contains("not JSON"),
        "{}",
        failed[1]
    );
}

#[tokio::test]
async fn every_sample_through_the_handler() {
    for sample in SAMPLES {
        let (handler, sink) = new_handler();
        let response = handler
            .handle(load(sample.file))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", sample.file));
        assert_eq!(response, (sample.response)(), "{}", sample.file);
        let notifications = sink.notifications();
        assert_eq!(
            notifications.len(),
            sample.alerts.len(),
            "{}: alerts",
            sample.file
        );
        for (notification, source) in notifications.iter().zip(sample.alerts) {
            let document: Value = serde_json::from_str(&notification.document).unwrap();
            check_alert(sample.file, &document, source);
        }
    }
}

#[tokio::test]
async fn a_redelivered_sample_does_not_alert_twice() {
    let (handler, sink) = new_handler();
    for file in [
        "sqs-s3.json",
        "sns-s3.json",
        "eventbridge-object-created.json",
        "s3-put.json",
    ] {
        handler.handle(load(file)).await.unwrap();
    }
    assert_eq!(
        sink.notifications().len(),
        1,
        "one export, one alert, whatever the route"
    );
}

/// The binary, with configuration that could change the outcome removed.
fn trailwatch() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
    command.current_dir(ROOT);
    for variable in [
        "AWS_LAMBDA_RUNTIME_API",
        "TRAILWATCH_ALLOW",
        "TRAILWATCH_DEDUP_MINUTES",
        "TRAILWATCH_MAX_DECOMPRESSED_BYTES",
        "TRAILWATCH_CONCURRENCY",
        "RUST_LOG",
    ] {
        command.env_remove(variable);
    }
    command
}

#[test]
fn every_sample_through_trailwatch_invoke() {
    for sample in SAMPLES {
        let event = format!("events/{}", sample.file);
        let output = trailwatch()
            .args([
                "invoke",
                &event,
                "--objects",
                "events/objects",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            output.status.success(),
            "{}: {:?}\n{stderr}",
            sample.file,
            output.status
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            sample.alerts.len(),
            "{}: {stdout}",
            sample.file
        );
        for (line, source) in lines.iter().zip(sample.alerts) {
            let document: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not NDJSON ({e}): {line}", sample.file));
            check_alert(sample.file, &document, source);
        }
        let response = stderr
            .lines()
            .find_map(|l| l.strip_prefix("handler response: "))
            .unwrap_or_else(|| panic!("{}: no handler response on stderr:\n{stderr}", sample.file));
        let response: Value = serde_json::from_str(response).unwrap();
        assert_eq!(response, (sample.response)(), "{}", sample.file);
    }
}

#[test]
fn invoke_fails_on_an_unknown_event_shape() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("kinesis.json");
    std::fs::write(
        &event,
        r#"{"Records":[{"eventSource":"aws:kinesis","kinesis":{"data":"e30="}}]}"#,
    )
    .unwrap();
    let output = trailwatch()
        .arg("invoke")
        .arg(&event)
        .args(["--objects", "events/objects", "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("unrecognised trigger event") && stderr.contains("Records"),
        "{stderr}"
    );
}
