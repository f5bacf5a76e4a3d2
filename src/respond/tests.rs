//! Containment against in-memory fakes: when it applies, the modes, the guard
//! rails, idempotence, the deadline, and the texts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::fake::FakeExportTasks;
use super::*;
use crate::aws_error::Cause;
use crate::config::{AllowList, ResponseMode, ResponseSettings};
use crate::rule::{Containment, Facts, RuleSet};

const ACCOUNT: &str = "123456789012";
const TASK: &str = "orders-export";
const BUCKET: &str = "exfil-bucket";
const ROLE: &str = "arn:aws:iam::123456789012:role/rds-s3-export-role";
const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/DataEngineer/jdoe";
const ISSUER: &str = "arn:aws:iam::123456789012:role/DataEngineer";
/// 2024-03-15T10:33:41Z.
const NOW: i64 = 1_710_498_821_000;

fn containment() -> Containment {
    RuleSet::embedded()
        .get("AWS.RDS.SnapshotExport")
        .unwrap()
        .containment
        .clone()
        .unwrap()
}

fn place() -> Place {
    Place::new(ACCOUNT, "us-east-1")
}

/// The facts of an export whose task is in `status` to a bucket with `owner`.
fn facts(status: &str, owner: &str, trusted: bool) -> Facts {
    let fields = json!({"exportTaskIdentifier": TASK, "s3Bucket": BUCKET, "iamRoleArn": ROLE});
    Facts::new(fields.as_object().unwrap(), ACCOUNT, "us-east-1")
        .with_principal(CALLER, Some(ISSUER))
        .with_enrichment(json!({
            "exportTask": {"id": TASK, "status": status},
            "bucket": {"name": BUCKET, "owner": owner, "trusted": trusted},
        }))
}

struct Setup {
    tasks: Arc<FakeExportTasks>,
    responder: Responder,
}

fn setup(mode: ResponseMode, tasks: FakeExportTasks, allow: &str, max_per_hour: u32) -> Setup {
    let tasks = Arc::new(tasks);
    let responder = Responder::new(
        ResponseSettings { mode, max_per_hour },
        Arc::clone(&tasks) as Arc<dyn ExportTasks>,
        Arc::new(MemoryBreaker::new()),
        AllowList::parse(allow),
    )
    .with_clock(Arc::new(|| NOW));
    Setup { tasks, responder }
}

fn later() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3)
}

async fn respond(s: &Setup, facts: &Facts) -> Response {
    let responding = s
        .responder
        .respond(&containment(), facts, &place(), later())
        .await
        .expect("a response outside off mode");
    assert!(responding.in_flight.is_none());
    responding.response
}

#[tokio::test]
async fn cancel_mode_cancels_a_running_export_to_an_unconfirmed_bucket() {
    // moto marks a new export task `complete` at once, so the states a real task
    // goes through (`starting`, `in_progress`) are tested here, with the fake.
    for status in ["starting", "in_progress"] {
        let s = setup(
            ResponseMode::Cancel,
            FakeExportTasks::new().with_task(TASK, status),
            "",
            3,
        );
        let response = respond(&s, &facts(status, "unconfirmed", false)).await;
        assert_eq!(response.outcome, Outcome::Canceled, "{response:?}");
        assert_eq!(response.target, TASK);
        assert_eq!(response.at, "2024-03-15T10:33:41Z");
        assert_eq!(s.tasks.cancels(), [(place(), TASK.to_owned())]);
        assert_eq!(s.tasks.status_of(TASK).as_deref(), Some("canceling"));
        let doc = serde_json::to_value(&response).unwrap();
        assert_eq!(doc["outcome"], "canceled");
        assert_eq!(doc["mode"], "cancel");
        assert_eq!(doc["action"], "CancelExportTask");
    }
}

#[tokio::test]
async fn report_mode_decides_the_same_and_calls_nothing() {
    let s = setup(
        ResponseMode::Report,
        FakeExportTasks::new().with_task(TASK, "starting"),
        "",
        3,
    );
    let response = respond(&s, &facts("starting", "unconfirmed", false)).await;
    assert_eq!(response.outcome, Outcome::WouldCancel);
    assert_eq!(response.mode, ResponseMode::Report);
    assert!(s.tasks.cancels().is_empty());
    assert_eq!(s.tasks.status_of(TASK).as_deref(), Some("starting"));
    assert_eq!(
        serde_json::to_value(&response).unwrap()["outcome"],
        "would-cancel"
    );
    // Where cancel would not act, report does not say it would.
    let finished = respond(&s, &facts("complete", "unconfirmed", false)).await;
    assert_eq!(finished.outcome, Outcome::NotApplicable);
}

#[tokio::test]
async fn off_mode_decides_nothing() {
    let s = setup(ResponseMode::Off, FakeExportTasks::new(), "", 3);
    let answer = s
        .responder
        .respond(
            &containment(),
            &facts("starting", "unconfirmed", false),
            &place(),
            later(),
        )
        .await;
    assert!(answer.is_none());
    assert!(s.tasks.cancels().is_empty());
}

#[tokio::test]
async fn not_applicable_without_a_call() {
    let cases = [
        (facts("starting", "confirmed", false), "bucket"),
        (facts("starting", "unconfirmed", true), "trusted"),
        (facts("complete", "unconfirmed", false), "complete"),
        (facts("failed", "unconfirmed", false), "failed"),
        (facts("canceled", "unconfirmed", false), "canceled"),
        (facts("unknown", "unconfirmed", false), "unknown"),
    ];
    for (facts, why) in cases {
        let s = setup(
            ResponseMode::Cancel,
            FakeExportTasks::new().with_task(TASK, "starting"),
            "",
            3,
        );
        let response = respond(&s, &facts).await;
        assert_eq!(response.outcome, Outcome::NotApplicable, "{why}");
        let reason = response.reason.unwrap();
        assert!(reason.contains(why), "{why}: {reason}");
        assert!(s.tasks.cancels().is_empty(), "{why}: a call was made");
    }
}

#[tokio::test]
async fn an_allow_listed_caller_role_or_bucket_is_never_cancelled() {
    for entry in [CALLER, ISSUER, ROLE, BUCKET] {
        let s = setup(
            ResponseMode::Cancel,
            FakeExportTasks::new().with_task(TASK, "starting"),
            entry,
            3,
        );
        let response = respond(&s, &facts("starting", "unconfirmed", false)).await;
        assert_eq!(response.outcome, Outcome::NotApplicable, "{entry}");
        assert!(response.reason.unwrap().contains("TRAILWATCH_ALLOW"));
        assert!(s.tasks.cancels().is_empty());
    }
}

#[tokio::test]
async fn an_already_cancelled_task_is_success_and_a_finished_one_is_not_applicable() {
    // The task changed state between the lookup and the cancel.
    for (now, outcome) in [
        ("canceling", Outcome::Canceled),
        ("canceled", Outcome::Canceled),
        ("complete", Outcome::NotApplicable),
    ] {
        let s = setup(
            ResponseMode::Cancel,
            FakeExportTasks::new().with_task(TASK, now),
            "",
            3,
        );
        let response = respond(&s, &facts("in_progress", "unconfirmed", false)).await;
        assert_eq!(response.outcome, outcome, "{now}");
        assert!(response.reason.unwrap().contains(now));
    }
}

#[tokio::test]
async fn a_retried_invocation_cancels_once_and_counts_once() {
    let s = setup(
        ResponseMode::Cancel,
        FakeExportTasks::new().with_task(TASK, "starting"),
        "",
        1,
    );
    let first = respond(&s, &facts("starting", "unconfirmed", false)).await;
    let retry = respond(&s, &facts("starting", "unconfirmed", false)).await;
    assert_eq!(first.outcome, Outcome::Canceled);
    assert_eq!(
        retry.outcome,
        Outcome::Canceled,
        "the breaker admits the same task again"
    );
    assert_eq!(
        retry.reason.as_deref(),
        Some("the task was already canceling")
    );
    assert_eq!(s.tasks.status_of(TASK).as_deref(), Some("canceling"));
}

#[tokio::test]
async fn past_the_breaker_cancel_falls_back_to_report() {
    let tasks = (0..4).fold(FakeExportTasks::new(), |t, i| {
        t.with_task(&format!("task-{i}"), "starting")
    });
    let s = setup(ResponseMode::Cancel, tasks, "", 3);
    let mut outcomes = Vec::new();
    for i in 0..4 {
        let fields = json!({"exportTaskIdentifier": format!("task-{i}"), "s3Bucket": BUCKET});
        let facts = Facts::new(fields.as_object().unwrap(), ACCOUNT, "us-east-1").with_enrichment(
            json!({"exportTask": {"status": "starting"}, "bucket": {"owner": "unconfirmed", "trusted": false}}),
        );
        outcomes.push(respond(&s, &facts).await);
    }
    assert_eq!(s.tasks.cancels().len(), 3);
    let last = &outcomes[3];
    assert_eq!(last.outcome, Outcome::WouldCancel);
    assert!(last.breaker_open);
    assert!(last
        .reason
        .as_deref()
        .unwrap()
        .contains("TRAILWATCH_RESPONSE_MAX_PER_HOUR=3"));
    let mut counters = ResponseCounters::default();
    outcomes.iter().for_each(|r| counters.add(r));
    assert_eq!(
        counters.metrics(),
        [
            ("ResponsesTaken", 3),
            ("ResponsesSkipped", 1),
            ("ResponseFailures", 0)
        ]
    );
    assert!(last.email_lines()[0].contains("was NOT"));
}

#[tokio::test]
async fn a_failed_cancel_is_failed_with_its_cause() {
    let s = setup(
        ResponseMode::Cancel,
        FakeExportTasks::new()
            .with_task(TASK, "starting")
            .failing(CallError::new(
                Cause::AccessDenied,
                "not authorized to perform rds:CancelExportTask",
            )),
        "",
        3,
    );
    let response = respond(&s, &facts("starting", "unconfirmed", false)).await;
    assert_eq!(response.outcome, Outcome::Failed);
    let cause = response.cause.clone().unwrap();
    assert!(
        cause.starts_with("rds:CancelExportTask: access denied"),
        "{cause}"
    );
    let lines = response.email_lines();
    assert!(lines[0].starts_with("RESPONSE FAILED"));
    assert!(lines[1].contains("aws rds cancel-export-task --export-task-identifier orders-export"));
    let mut counters = ResponseCounters::default();
    counters.add(&response);
    assert_eq!(counters.failures, 1);
}

/// A breaker that cannot be read.
struct Broken;

#[async_trait]
impl CancelBreaker for Broken {
    async fn admit(&self, _: &str, _: &str, _: i64, _: u32) -> Result<Admission, CallError> {
        Err(CallError::new(
            Cause::Throttled,
            "ProvisionedThroughputExceeded",
        ))
    }
}

#[tokio::test]
async fn an_unavailable_breaker_means_no_cancel() {
    let tasks = Arc::new(FakeExportTasks::new().with_task(TASK, "starting"));
    let responder = Responder::new(
        ResponseSettings {
            mode: ResponseMode::Cancel,
            max_per_hour: 3,
        },
        Arc::clone(&tasks) as Arc<dyn ExportTasks>,
        Arc::new(Broken),
        AllowList::default(),
    );
    let response = responder
        .respond(
            &containment(),
            &facts("starting", "unconfirmed", false),
            &place(),
            later(),
        )
        .await
        .unwrap()
        .response;
    assert_eq!(response.outcome, Outcome::Failed);
    assert!(response
        .cause
        .unwrap()
        .contains("circuit breaker unavailable (throttled"));
    assert!(tasks.cancels().is_empty());
}

#[tokio::test]
async fn a_slow_cancel_never_holds_the_alert_and_follows_up() {
    let s = setup(
        ResponseMode::Cancel,
        FakeExportTasks::new()
            .with_task(TASK, "starting")
            .slow(Duration::from_millis(400)),
        "",
        3,
    );
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let responding = s
        .responder
        .respond(
            &containment(),
            &facts("starting", "unconfirmed", false),
            &place(),
            deadline,
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(250),
        "the alert waited {waited:?}"
    );
    assert_eq!(responding.response.outcome, Outcome::Pending);
    assert!(responding.response.email_lines()[0].contains("follows in a separate message"));
    let done = responding
        .in_flight
        .expect("the cancel continues")
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Canceled);
    let follow_up = FollowUp::new(
        "82f9d5d8918f152260b7f9bb6850c020",
        "AWS.RDS.SnapshotExport",
        crate::rule::Severity::Critical,
        done,
    );
    let notification = follow_up.notification();
    assert_eq!(notification.kind, "response");
    assert_eq!(notification.alert_id, "82f9d5d8918f152260b7f9bb6850c020");
    let doc: serde_json::Value = serde_json::from_str(&notification.document).unwrap();
    assert_eq!(doc["kind"], "response");
    assert_eq!(doc["alertId"], "82f9d5d8918f152260b7f9bb6850c020");
    assert_eq!(doc["response"]["outcome"], "canceled");
    assert!(notification
        .subject
        .starts_with("[CRITICAL] Response to alert"));
    assert!(notification.email.contains("CANCELED"));
}

#[tokio::test]
async fn texts_and_product_fields() {
    let s = setup(
        ResponseMode::Report,
        FakeExportTasks::new().with_task(TASK, "starting"),
        "",
        3,
    );
    let response = respond(&s, &facts("starting", "unconfirmed", false)).await;
    let lines = response.email_lines();
    assert!(lines[0].starts_with("RESPONSE (report mode): would cancel export task orders-export"));
    let fields: std::collections::HashMap<String, String> =
        response.product_fields().into_iter().collect();
    assert_eq!(fields["trailwatch/response/outcome"], "would-cancel");
    assert_eq!(fields["trailwatch/response/mode"], "report");
    assert_eq!(fields["trailwatch/response/target"], TASK);
    let back: Response = serde_json::from_str(&serde_json::to_string(&response).unwrap()).unwrap();
    assert_eq!(back, response);
}
