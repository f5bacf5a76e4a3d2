//! Enrichment and response end to end against the emulator (moto): an RDS
//! snapshot and its export task, S3 buckets, SNS -> SQS, DynamoDB; the alert read
//! back from the queue as a subscriber gets it. Through the library's handler as
//! Lambda mode builds it, and through `trailwatch invoke --aws`.
//!
//! moto marks a new export task `complete` at once; a real task stays `starting`
//! for minutes while it restores its snapshot. Where a test needs a task it may
//! cancel, it runs moto through a few lines of Python that leave new tasks
//! `starting` ([`Stack::with_running_exports`]), so the whole call path is the
//! real one: DescribeExportTasks reads `starting`, CancelExportTask cancels it in
//! the emulator. moto ignores `ExpectedBucketOwner`, so an unconfirmed bucket here
//! is one that does not exist (HeadBucket 404); the 403 case is the fakes'.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{export_record, ACCOUNT};
use crate::support::moto::unique;
use crate::support::rds::{export, start_export, task_status, BlackHole, Denier, Export};
use crate::support::stack::{log_file, log_key, Delivered, Stack};

/// The record of an export made in the emulator, at `time`.
fn record_of(export: &Export, task: &str, bucket: &str, time: &str) -> Value {
    export_record(
        &unique("event"),
        time,
        ACCOUNT,
        (task, &export.snapshot, bucket),
    )
}

/// Uploads a log file holding `record` and returns the S3 event of it.
async fn deliver(stack: &Stack, record: Value) -> Value {
    let key = log_key(ACCOUNT, &unique("log"));
    stack.put_object(&key, log_file(&[record])).await;
    stack.s3_event(&[key])
}

fn alerts(delivered: &[Delivered]) -> Vec<&Value> {
    delivered
        .iter()
        .filter(|d| d.kind() == "alert")
        .map(|d| &d.document)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_read_from_sqs_carries_what_the_emulator_holds() {
    let stack = Stack::with_running_exports().await;
    let export = export(&stack.conf, &stack.s3).await;
    let event = deliver(
        &stack,
        record_of(
            &export,
            &export.task,
            &export.bucket,
            "2024-05-01T10:40:00Z",
        ),
    )
    .await;
    // Cancel mode, but the bucket is the exporting account's own.
    let handler = stack.handler_with(&[
        ("TRAILWATCH_ENRICH", "true"),
        ("TRAILWATCH_RESPONSE", "cancel"),
    ]);
    stack.server.start_recording().await;
    handler
        .handle(event)
        .await
        .expect("the invocation succeeds");
    let recorded = stack.server.recorded().await;
    let delivered = stack.drain().await;
    let [alert] = alerts(&delivered).try_into().expect("one alert");
    let enrichment = &alert["enrichment"];
    assert_eq!(enrichment["exportTask"]["id"], export.task.as_str());
    assert_eq!(enrichment["exportTask"]["status"], "starting");
    assert_eq!(enrichment["source"]["allocatedStorageGB"], 250);
    assert_eq!(enrichment["source"]["engine"], "postgres");
    assert_eq!(enrichment["source"]["database"], export.db.as_str());
    assert_eq!(enrichment["bucket"]["owner"], "confirmed");
    assert_eq!(enrichment["bucket"]["status"], 200);
    assert!(alert.get("enrichmentErrors").is_none(), "{alert}");
    assert_eq!(alert["severity"], "High");
    // A confirmed bucket: not applicable, and no call.
    assert_eq!(alert["response"]["outcome"], "not-applicable");
    assert!(
        !recorded
            .iter()
            .any(|r| r.body_text().contains("Action=CancelExportTask")),
        "no cancel call"
    );
    assert!(
        recorded
            .iter()
            .any(|r| r.body_text().contains("Action=DescribeExportTasks")),
        "the recording saw the lookups"
    );
    assert_eq!(task_status(&stack.conf, &export.task).await, "starting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mode_cancels_an_export_started_in_the_emulator_and_report_mode_does_not() {
    let stack = Stack::with_running_exports().await;
    let export = export(&stack.conf, &stack.s3).await;
    // A bucket the exporting account does not own (here: none at all).
    let elsewhere = unique("elsewhere");
    let cancelled = start_export(&stack.conf, &export.snapshot_arn, &elsewhere).await;
    let reported = start_export(&stack.conf, &export.snapshot_arn, &elsewhere).await;

    let event = deliver(
        &stack,
        record_of(&export, &cancelled, &elsewhere, "2024-05-01T10:40:00Z"),
    )
    .await;
    let cancel = stack.handler_with(&[
        ("TRAILWATCH_ENRICH", "true"),
        ("TRAILWATCH_RESPONSE", "cancel"),
    ]);
    cancel.handle(event).await.expect("the invocation succeeds");
    assert_eq!(task_status(&stack.conf, &cancelled).await, "canceled");
    let delivered = stack.drain().await;
    let [alert] = alerts(&delivered).try_into().expect("one alert");
    assert_eq!(alert["severity"], "Critical");
    assert_eq!(alert["enrichment"]["bucket"]["owner"], "unconfirmed");
    assert_eq!(alert["enrichment"]["bucket"]["status"], 404);
    assert_eq!(alert["response"]["outcome"], "canceled");
    assert_eq!(alert["response"]["target"], cancelled.as_str());
    let envelope = delivered[0].envelope["Message"].as_str().unwrap();
    assert!(envelope.contains(r#""outcome":"canceled""#), "{envelope}");

    // Two hours later (another window), the same kind of export, in report mode.
    let event = deliver(
        &stack,
        record_of(&export, &reported, &elsewhere, "2024-05-01T12:40:00Z"),
    )
    .await;
    let report = stack.handler_with(&[
        ("TRAILWATCH_ENRICH", "true"),
        ("TRAILWATCH_RESPONSE", "report"),
    ]);
    report.handle(event).await.expect("the invocation succeeds");
    let delivered = stack.drain().await;
    let [alert] = alerts(&delivered).try_into().expect("one alert");
    assert_eq!(alert["response"]["outcome"], "would-cancel");
    assert_eq!(alert["response"]["mode"], "report");
    assert_eq!(task_status(&stack.conf, &reported).await, "starting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_invocations_past_the_breaker_cancel_exactly_the_limit() {
    let stack = Stack::with_running_exports().await;
    let export = export(&stack.conf, &stack.s3).await;
    let elsewhere = unique("elsewhere");
    let mut tasks = Vec::new();
    let mut events = Vec::new();
    for hour in [10, 12, 14, 16] {
        let task = start_export(&stack.conf, &export.snapshot_arn, &elsewhere).await;
        let time = format!("2024-05-01T{hour}:40:00Z");
        events.push(deliver(&stack, record_of(&export, &task, &elsewhere, &time)).await);
        tasks.push(task);
    }
    // Four instances (cold starts), one event each, at once; three cancels an hour.
    let vars = [
        ("TRAILWATCH_ENRICH", "true"),
        ("TRAILWATCH_RESPONSE", "cancel"),
        ("TRAILWATCH_RESPONSE_MAX_PER_HOUR", "3"),
    ];
    let handlers: Vec<_> = (0..4).map(|_| stack.handler_with(&vars)).collect();
    let results =
        futures::future::join_all(handlers.iter().zip(events).map(|(h, e)| h.handle(e))).await;
    for result in results {
        result.expect("every invocation succeeds");
    }
    let mut statuses = Vec::new();
    for task in &tasks {
        statuses.push(task_status(&stack.conf, task).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "canceled").count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "starting").count(),
        1,
        "{statuses:?}"
    );
    let delivered = stack.drain().await;
    let alerts = alerts(&delivered);
    assert_eq!(alerts.len(), 4, "one alert per window");
    let outcome = |a: &&Value| a["response"]["outcome"].as_str().unwrap().to_owned();
    let canceled = alerts.iter().filter(|a| outcome(a) == "canceled").count();
    let refused: Vec<&&Value> = alerts
        .iter()
        .filter(|a| outcome(a) == "would-cancel")
        .collect();
    assert_eq!((canceled, refused.len()), (3, 1), "{alerts:?}");
    assert_eq!(refused[0]["response"]["breakerOpen"], true);
    let target = refused[0]["response"]["target"].as_str().unwrap();
    assert_eq!(task_status(&stack.conf, target).await, "starting");
}

/// The binary with the emulator as its AWS (no profile, no instance metadata),
/// Lambda mode's variables for the stack.
fn trailwatch(stack: &Stack, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
    command
        .env("AWS_ENDPOINT_URL", &stack.server.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", crate::support::moto::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("TRAILWATCH_TOPIC_ARN", &stack.topic_arn)
        .env("TRAILWATCH_DEDUP_TABLE", &stack.table)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Runs `trailwatch invoke --aws EVENT` off the test's runtime (which keeps
/// serving the test's own endpoints meanwhile); the output and the wall time.
async fn invoke_aws(mut command: Command, event: &Value, dir: &Path) -> (Output, Duration) {
    let path = dir.join(format!("{}.json", unique("event")));
    std::fs::write(&path, event.to_string()).unwrap();
    command.args(["invoke", "--aws"]).arg(&path);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = command.output().expect("run trailwatch");
        (output, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_aws_runs_the_lambda_handler_against_the_emulator() {
    let stack = Stack::start().await;
    let export = export(&stack.conf, &stack.s3).await;
    let event = deliver(
        &stack,
        record_of(
            &export,
            &export.task,
            &export.bucket,
            "2024-05-01T10:40:00Z",
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = invoke_aws(trailwatch(&stack, &[]), &event, dir.path()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("alerts=1") && stderr.contains("enriched=1"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "alerts go to SNS, not stdout");
    let delivered = stack.drain().await;
    let [alert] = alerts(&delivered).try_into().expect("one alert");
    let enrichment = &alert["enrichment"];
    assert_eq!(enrichment["exportTask"]["status"], "complete", "moto's own");
    assert_eq!(enrichment["source"]["allocatedStorageGB"], 250);
    assert_eq!(enrichment["bucket"]["owner"], "confirmed");
    // Report mode by default: a finished task is not applicable.
    assert_eq!(alert["response"]["mode"], "report");
    assert_eq!(alert["response"]["outcome"], "not-applicable");

    // The window is in the table: a second process sees the same call again as a
    // redelivery and alerts nothing.
    let (out, _) = invoke_aws(trailwatch(&stack, &[]), &event, dir.path()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("alerts=0") && stderr.contains("redeliveries=1"),
        "{stderr}"
    );
    assert!(alerts(&stack.drain().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rds_denying_or_unreachable_the_alert_still_arrives_in_time() {
    let stack = Stack::start().await;
    let export = export(&stack.conf, &stack.s3).await;
    let dir = tempfile::tempdir().unwrap();
    let budget = Duration::from_millis(1500);
    let budget_ms = budget.as_millis().to_string();

    // One invocation with RDS at `endpoint`: its alert has the RDS lookups
    // unknown with `cause`; returns how long the invocation took.
    let run = |endpoint: String, time: &'static str, cause: &'static str| {
        let (stack, export, budget_ms, dir) = (&stack, &export, &budget_ms, dir.path());
        async move {
            let event = deliver(stack, record_of(export, &export.task, &export.bucket, time)).await;
            let command = trailwatch(
                stack,
                &[
                    ("AWS_ENDPOINT_URL_RDS", &endpoint),
                    ("TRAILWATCH_ENRICH_TIMEOUT_MS", budget_ms),
                ],
            );
            let (out, took) = invoke_aws(command, &event, dir).await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let delivered = stack.drain().await;
            let [alert] = alerts(&delivered).try_into().expect("one alert");
            assert_unknown_with(alert, cause);
            took
        }
    };
    // Denying: every RDS call is refused at once (S3, SNS, DynamoDB answer).
    let denier = Denier::start().await;
    let denied_took = run(
        denier.endpoint.clone(),
        "2024-05-01T10:40:00Z",
        "accessDenied",
    )
    .await;
    // Unreachable: RDS accepts connections and never answers.
    let hole = BlackHole::new();
    let unreachable_took = run(hole.endpoint.clone(), "2024-05-01T12:40:00Z", "timeout").await;
    // The budget, plus what the same run costs when RDS answers at once (start,
    // read, publication), plus the scheduler's slack.
    assert!(
        unreachable_took >= budget
            && unreachable_took < budget + denied_took + Duration::from_millis(1000),
        "unreachable: {unreachable_took:?}; denied: {denied_took:?}; budget {budget:?}"
    );
}

/// The alert of an export whose RDS lookups failed with `cause`: unknown task and
/// source, both calls named, the bucket still confirmed through S3.
fn assert_unknown_with(alert: &Value, cause: &str) {
    let enrichment = &alert["enrichment"];
    assert_eq!(enrichment["exportTask"]["status"], "unknown", "{alert}");
    assert_eq!(enrichment["source"]["allocatedStorageGB"], "unknown");
    assert_eq!(enrichment["bucket"]["owner"], "confirmed");
    let errors: Vec<(&str, &str)> = alert["enrichmentErrors"]
        .as_array()
        .unwrap_or_else(|| panic!("enrichmentErrors: {alert}"))
        .iter()
        .map(|e| (e["call"].as_str().unwrap(), e["cause"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("rds:DescribeExportTasks", cause),
            ("rds:DescribeDBSnapshots", cause)
        ]
    );
    assert_eq!(alert["severity"], "High");
}
