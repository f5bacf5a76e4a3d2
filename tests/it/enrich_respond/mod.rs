//! Enrichment and response wired into the pipeline: matches -> enrich -> dedup ->
//! alert -> respond -> sink, with in-memory fakes for AWS (`FakeLookups`,
//! `FakeExportTasks`) so that every answer AWS can give, and every failure, is
//! one line to set up. `emulator` runs the same through the SDK against moto, and
//! through `trailwatch invoke --aws`.

mod emulator;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use trailwatch::alert::Notification;
use trailwatch::aws_error::Cause;
use trailwatch::config::Config;
use trailwatch::counters::Counters;
use trailwatch::dedup::MemoryStore;
use trailwatch::detect::{DeliveryPath, Match};
use trailwatch::enrich::fake::{Behaviour, FakeLookups};
use trailwatch::enrich::{CallError, Enricher, Lookups, SnapshotFacts};
use trailwatch::pipeline::Alerter;
use trailwatch::respond::fake::FakeExportTasks;
use trailwatch::respond::{ExportTasks, MemoryBreaker, Responder};
use trailwatch::rule::RuleSet;
use trailwatch::sink::{AlertSink, SinkError};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const TASK: &str = "orders-export";
pub const SNAPSHOT: &str = "orders-prod-2024-03-15";
pub const BUCKET: &str = "analytics-exports-7731";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/rds-s3-export-role";
/// The responder's clock in these tests: 2024-03-15T10:33:44Z.
pub const NOW: i64 = 1_710_498_824_000;

pub fn snapshot_arn(account: &str, snapshot: &str) -> String {
    format!("arn:aws:rds:{REGION}:{account}:snapshot:{snapshot}")
}

/// A successful `rds:StartExportTask` record of `account`, exporting `snapshot`
/// as `task` to `bucket`.
pub fn export_record(
    event_id: &str,
    event_time: &str,
    account: &str,
    (task, snapshot, bucket): (&str, &str, &str),
) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole", "principalId": "AROAEXAMPLE:jdoe",
            "arn": format!("arn:aws:sts::{account}:assumed-role/DataEngineer/jdoe"),
            "accountId": account,
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "DataEngineer",
                "arn": format!("arn:aws:iam::{account}:role/DataEngineer")}}
        },
        "eventTime": event_time, "eventSource": "rds.amazonaws.com", "eventName": "StartExportTask",
        "awsRegion": REGION, "sourceIPAddress": "198.51.100.23", "userAgent": "aws-cli/2.15.30",
        "requestParameters": {
            "exportTaskIdentifier": task, "sourceArn": snapshot_arn(account, snapshot),
            "s3BucketName": bucket, "s3Prefix": "rds/orders",
            "iamRoleArn": format!("arn:aws:iam::{account}:role/rds-s3-export-role"),
            "kmsKeyId": format!("arn:aws:kms:{REGION}:{account}:key/6d7c1a3e-92f4-4b1e-8c55-0d2f4e9a1b77")
        },
        "responseElements": {"exportTaskIdentifier": task, "status": "STARTING"},
        "eventID": event_id, "eventType": "AwsApiCall", "readOnly": false,
        "recipientAccountId": account
    })
}

/// The export of the constants: `TASK` of `SNAPSHOT` to `BUCKET` in `ACCOUNT`.
pub fn the_export(event_id: &str, event_time: &str) -> Value {
    export_record(event_id, event_time, ACCOUNT, (TASK, SNAPSHOT, BUCKET))
}

pub fn matched(rules: &RuleSet, record: Value) -> Match {
    let rule = rules
        .rules
        .iter()
        .position(|r| r.id == "AWS.RDS.SnapshotExport")
        .expect("the export rule");
    let time = record["eventTime"].as_str().unwrap_or_default().to_owned();
    Match {
        rule,
        raw: Some(serde_json::value::RawValue::from_string(record.to_string()).unwrap()),
        event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
        record,
        parse_warnings: Vec::new(),
        source: "s3://trail/AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/x.json.gz".into(),
        offset: 0,
        event_time_ms: trailwatch::time::parse_event_time(&time),
        path: DeliveryPath::S3,
        fingerprint: None,
    }
}

/// What DescribeDBSnapshots says of `SNAPSHOT`.
pub fn snapshot_facts() -> SnapshotFacts {
    SnapshotFacts {
        engine: Some("postgres".into()),
        engine_version: Some("15.4".into()),
        database: Some("orders-prod".into()),
        allocated_storage_gb: Some(250),
        encrypted: Some(true),
        snapshot_time: Some("2024-03-15T10:00:00Z".into()),
        snapshot_type: Some("manual".into()),
        status: Some("available".into()),
    }
}

/// `TASK` in `status`, 12% and 3 GB through, its snapshot, and HeadBucket
/// answering `bucket_status` for `BUCKET` owned by `ACCOUNT`.
pub fn lookups(status: &str, bucket_status: u16) -> FakeLookups {
    FakeLookups::new()
        .task_in(TASK, status, 12, 3)
        .snapshot(SNAPSHOT, Behaviour::Answer(Some(snapshot_facts())))
        .bucket_status(BUCKET, ACCOUNT, bucket_status)
}

/// Every notification with the time it was published.
#[derive(Default)]
pub struct TimedSink {
    published: Mutex<Vec<(Instant, Notification)>>,
    /// Publications to refuse, from the first.
    refuse: Mutex<usize>,
}

impl TimedSink {
    pub fn notifications(&self) -> Vec<Notification> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub fn times(&self) -> Vec<Instant> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn refuse_next(&self, n: usize) {
        *self.refuse.lock().unwrap() = n;
    }
}

#[async_trait]
impl AlertSink for TimedSink {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError> {
        let mut refuse = self.refuse.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            return Err(SinkError {
                alert_id: notification.alert_id.clone(),
                cause: Cause::Throttled,
                message: "SNS throttled".into(),
            });
        }
        self.published
            .lock()
            .unwrap()
            .push((Instant::now(), notification.clone()));
        Ok(())
    }
}

/// The pipeline with fakes for AWS, configured by environment variables as the
/// function is (`TRAILWATCH_RESPONSE`, `TRAILWATCH_ENRICH_TIMEOUT_MS`, ...).
pub struct Fakes {
    pub lookups: Arc<FakeLookups>,
    pub tasks: Arc<FakeExportTasks>,
    pub sink: Arc<TimedSink>,
    pub alerter: Alerter,
}

pub fn fakes(lookups: FakeLookups, tasks: FakeExportTasks, vars: &[(&str, &str)]) -> Fakes {
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("valid configuration");
    let lookups = Arc::new(lookups);
    let tasks = Arc::new(tasks);
    let sink = Arc::new(TimedSink::default());
    let mut alerter = Alerter::new(
        Arc::new(config.rules.clone()),
        Arc::new(MemoryStore::new()),
        sink.clone(),
        config.allow.clone(),
        config.dedup_minutes,
    );
    alerter.enricher = Some(Arc::new(Enricher::new(
        Arc::clone(&lookups) as Arc<dyn Lookups>,
        config.enrich.clone(),
    )));
    alerter.responder = Some(
        Responder::new(
            config.response.clone(),
            Arc::clone(&tasks) as Arc<dyn ExportTasks>,
            Arc::new(MemoryBreaker::new()),
            config.allow.clone(),
        )
        .with_clock(Arc::new(|| NOW)),
    );
    Fakes {
        lookups,
        tasks,
        sink,
        alerter,
    }
}

impl Fakes {
    /// Runs records through the pipeline; every publication must succeed.
    pub async fn run(&self, records: Vec<Value>) -> Counters {
        let matches = records
            .into_iter()
            .map(|r| matched(&self.alerter.rules, r))
            .collect();
        let mut counters = Counters::default();
        let failures = self.alerter.process(matches, NOW, &mut counters).await;
        assert!(failures.is_empty(), "{failures:?}");
        counters
    }

    /// The documents published, in order.
    pub fn documents(&self) -> Vec<Value> {
        self.sink
            .notifications()
            .iter()
            .map(|n| serde_json::from_str(&n.document).unwrap())
            .collect()
    }
}

fn email_line<'a>(email: &'a str, label: &str) -> &'a str {
    email
        .lines()
        .find(|l| l.starts_with(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label} row in:\n{email}"))
}

#[tokio::test]
async fn a_403_from_head_bucket_makes_the_alert_critical_and_200_keeps_it_high() {
    // 403: another account owns the bucket, or it is not visible.
    let refused = fakes(
        lookups("IN_PROGRESS", 403),
        FakeExportTasks::new(),
        &[("TRAILWATCH_RESPONSE", "off")],
    );
    let counters = refused
        .run(vec![the_export("e1", "2024-03-15T10:33:41Z")])
        .await;
    let [alert] = refused.sink.notifications().try_into().unwrap();
    let doc: Value = serde_json::from_str(&alert.document).unwrap();
    assert_eq!(doc["severity"], "Critical");
    assert_eq!(alert.attributes()[0], ("severity", "CRITICAL"));
    assert!(alert.subject.starts_with("[CRITICAL]"), "{}", alert.subject);
    let reason = doc["severityReason"].as_str().unwrap();
    assert!(
        reason.contains("not confirmed as owned by the exporting account"),
        "{reason}"
    );
    assert_eq!(doc["enrichment"]["bucket"]["owner"], "unconfirmed");
    assert_eq!(doc["enrichment"]["bucket"]["status"], 403);
    assert_eq!(doc["enrichment"]["exportTask"]["status"], "in_progress");
    assert_eq!(doc["enrichment"]["source"]["allocatedStorageGB"], 250);
    assert!(doc.get("enrichmentErrors").is_none(), "{doc}");
    assert!(doc.get("response").is_none(), "off: no response");
    assert_eq!(
        email_line(&alert.email, "Status"),
        "Status:   in_progress, 12% (3 of 250 GB)"
    );
    assert!(
        email_line(&alert.email, "Bucket")
            .starts_with("Bucket:   NOT confirmed as owned by 123456789012 (HeadBucket 403"),
        "{}",
        alert.email
    );
    assert!(alert
        .email
        .contains("Raised to CRITICAL because the destination bucket"));
    assert!(alert.product_fields.contains(&(
        "trailwatch/enrichment/bucket/owner".into(),
        "unconfirmed".into()
    )));
    assert_eq!(counters.enrichment.enriched, 1);
    assert_eq!(counters.enrichment.escalations, 1);

    // 200: the exporting account owns it.
    let owned = fakes(
        lookups("IN_PROGRESS", 200),
        FakeExportTasks::new(),
        &[("TRAILWATCH_RESPONSE", "off")],
    );
    let counters = owned
        .run(vec![the_export("e1", "2024-03-15T10:33:41Z")])
        .await;
    let [doc] = owned.documents().try_into().unwrap();
    assert_eq!(doc["severity"], "High");
    assert!(doc.get("severityReason").is_none(), "{doc}");
    assert_eq!(doc["enrichment"]["bucket"]["owner"], "confirmed");
    assert_eq!(counters.enrichment.escalations, 0);
}

#[tokio::test]
async fn an_enrichment_escalation_breaks_through_an_open_window() {
    let second = "second-bucket";
    let f = fakes(
        lookups("IN_PROGRESS", 200)
            .task_in("task-2", "STARTING", 0, 0)
            .bucket_status(second, ACCOUNT, 403),
        FakeExportTasks::new(),
        &[("TRAILWATCH_RESPONSE", "off")],
    );
    let counters = f
        .run(vec![
            the_export("e1", "2024-03-15T10:33:41Z"),
            export_record(
                "e2",
                "2024-03-15T10:40:00Z",
                ACCOUNT,
                ("task-2", SNAPSHOT, second),
            ),
            // Equal to the window's worst: suppressed.
            export_record(
                "e3",
                "2024-03-15T10:45:00Z",
                ACCOUNT,
                ("task-3", SNAPSHOT, BUCKET),
            ),
        ])
        .await;
    let docs = f.documents();
    let severities: Vec<&Value> = docs.iter().map(|d| &d["severity"]).collect();
    assert_eq!(severities, [&json!("High"), &json!("Critical")]);
    assert_ne!(docs[0]["alertId"], docs[1]["alertId"]);
    assert_eq!(docs[1]["windowStart"], docs[0]["windowStart"]);
    assert_eq!(docs[1]["eventId"], "e2");
    assert_eq!((counters.alerts, counters.suppressed), (2, 1));
}

#[tokio::test]
async fn a_silent_or_denying_lookup_leaves_unknown_and_the_alert_goes_out_in_time() {
    let budget = Duration::from_millis(400);
    let f = fakes(
        FakeLookups::new()
            .task(TASK, Behaviour::Hang)
            .snapshot(
                SNAPSHOT,
                Behaviour::Fail(CallError::new(
                    Cause::AccessDenied,
                    "User is not authorized to perform: rds:DescribeDBSnapshots",
                )),
            )
            .bucket_status(BUCKET, ACCOUNT, 200),
        FakeExportTasks::new(),
        &[("TRAILWATCH_ENRICH_TIMEOUT_MS", "400")],
    );
    let started = Instant::now();
    let counters = f.run(vec![the_export("e1", "2024-03-15T10:33:41Z")]).await;
    let published = f.sink.times()[0] - started;
    assert!(
        published >= budget && published < budget + Duration::from_millis(400),
        "published after {published:?} for a budget of {budget:?}"
    );
    let [doc] = f.documents().try_into().unwrap();
    assert_eq!(doc["severity"], "High", "unknown is not evidence");
    let enrichment = &doc["enrichment"];
    assert_eq!(enrichment["exportTask"]["status"], "unknown");
    assert_eq!(enrichment["exportTask"]["percentProgress"], "unknown");
    assert_eq!(enrichment["source"]["allocatedStorageGB"], "unknown");
    assert_eq!(enrichment["bucket"]["owner"], "confirmed");
    let errors: Vec<(&str, &str)> = doc["enrichmentErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["call"].as_str().unwrap(), e["cause"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("rds:DescribeExportTasks", "timeout"),
            ("rds:DescribeDBSnapshots", "accessDenied")
        ]
    );
    // Without a known status the export is not cancelled (report decides the same).
    assert_eq!(doc["response"]["outcome"], "not-applicable");
    assert_eq!(counters.enrichment.errors, 2);
    assert_eq!(counters.errors_of(Cause::Timeout), 1);
    assert_eq!(counters.errors_of(Cause::AccessDenied), 1);
}

#[tokio::test]
async fn cancel_mode_cancels_and_says_so_first_report_mode_says_would_cancel() {
    let cancel = fakes(
        lookups("STARTING", 403),
        FakeExportTasks::new().with_task(TASK, "starting"),
        &[("TRAILWATCH_RESPONSE", "cancel")],
    );
    let counters = cancel
        .run(vec![the_export("e1", "2024-03-15T10:33:41Z")])
        .await;
    assert_eq!(cancel.tasks.status_of(TASK).as_deref(), Some("canceling"));
    let [alert] = cancel.sink.notifications().try_into().unwrap();
    let doc: Value = serde_json::from_str(&alert.document).unwrap();
    let response = &doc["response"];
    assert_eq!(response["outcome"], "canceled");
    assert_eq!(response["mode"], "cancel");
    assert_eq!(response["action"], "CancelExportTask");
    assert_eq!(response["target"], TASK);
    assert_eq!(response["at"], "2024-03-15T10:33:44Z");
    // The e-mail says it right under its heading.
    let lines: Vec<&str> = alert.email.lines().collect();
    assert!(
        lines[2]
            .starts_with("RESPONSE: export task orders-export in account 123456789012 CANCELED"),
        "{}",
        alert.email
    );
    assert!(alert
        .product_fields
        .contains(&("trailwatch/response/outcome".into(), "canceled".into())));
    assert_eq!(counters.responses.taken, 1);

    let report = fakes(
        lookups("STARTING", 403),
        FakeExportTasks::new().with_task(TASK, "starting"),
        &[],
    );
    let counters = report
        .run(vec![the_export("e1", "2024-03-15T10:33:41Z")])
        .await;
    assert!(report.tasks.cancels().is_empty(), "report calls nothing");
    let [doc] = report.documents().try_into().unwrap();
    assert_eq!(doc["response"]["outcome"], "would-cancel");
    assert_eq!(doc["response"]["mode"], "report");
    assert_eq!(counters.responses.skipped, 1);
}

#[tokio::test]
async fn a_trusted_or_confirmed_bucket_an_allow_listed_role_or_a_finished_task_is_left_alone() {
    let record = || the_export("e1", "2024-03-15T10:33:41Z");
    /// (case, what AWS answers, more variables, the reason's values)
    type Case<'a> = (&'a str, FakeLookups, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 3] = [
        (
            "trusted bucket",
            lookups("STARTING", 403),
            vec![("TRAILWATCH_TRUSTED_BUCKETS", BUCKET)],
            "enrichment.bucket.trusted = true",
        ),
        (
            "confirmed bucket",
            lookups("STARTING", 200),
            vec![],
            "enrichment.bucket.owner = \"confirmed\"",
        ),
        (
            "finished task",
            lookups("COMPLETE", 403),
            vec![],
            "enrichment.exportTask.status = \"complete\"",
        ),
    ];
    for (case, found, mut vars, why) in cases {
        vars.push(("TRAILWATCH_RESPONSE", "cancel"));
        let f = fakes(
            found,
            FakeExportTasks::new().with_task(TASK, "starting"),
            &vars,
        );
        let counters = f.run(vec![record()]).await;
        assert!(f.tasks.cancels().is_empty(), "{case}: no call");
        let [doc] = f.documents().try_into().unwrap();
        assert_eq!(doc["response"]["outcome"], "not-applicable", "{case}");
        let reason = doc["response"]["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{case}: {reason}");
        assert_eq!(counters.responses.skipped, 1, "{case}");
    }
    // An allow-listed export role: the match is allowed, so nothing is looked up,
    // decided or called, and nothing alerts.
    let f = fakes(
        lookups("STARTING", 403),
        FakeExportTasks::new().with_task(TASK, "starting"),
        &[
            ("TRAILWATCH_RESPONSE", "cancel"),
            ("TRAILWATCH_ALLOW", ROLE),
        ],
    );
    let counters = f.run(vec![record()]).await;
    assert_eq!(counters.allowed, 1);
    assert!(f.sink.notifications().is_empty());
    assert!(f.lookups.calls().is_empty(), "{:?}", f.lookups.calls());
    assert!(f.tasks.cancels().is_empty());
}

#[tokio::test]
async fn a_cancel_still_running_at_the_deadline_follows_up_with_the_same_alert_id() {
    let slow = Duration::from_millis(1200);
    let f = fakes(
        lookups("STARTING", 403),
        FakeExportTasks::new()
            .with_task(TASK, "starting")
            .slow(slow),
        &[
            ("TRAILWATCH_RESPONSE", "cancel"),
            ("TRAILWATCH_ENRICH_TIMEOUT_MS", "300"),
        ],
    );
    let started = Instant::now();
    let counters = f.run(vec![the_export("e1", "2024-03-15T10:33:41Z")]).await;
    let [alert, follow_up] = f.sink.notifications().try_into().unwrap();
    let [alert_at, follow_up_at] = f.sink.times().try_into().unwrap();
    assert!(
        alert_at - started < Duration::from_millis(800),
        "the alert waited {:?}",
        alert_at - started
    );
    assert!(
        follow_up_at - started >= slow,
        "{:?}",
        follow_up_at - started
    );
    let doc: Value = serde_json::from_str(&alert.document).unwrap();
    assert_eq!(doc["response"]["outcome"], "pending");
    assert!(alert
        .email
        .contains("its outcome follows in a separate message"));
    assert_eq!(follow_up.kind, "response");
    assert_eq!(follow_up.alert_id, alert.alert_id);
    let later: Value = serde_json::from_str(&follow_up.document).unwrap();
    assert_eq!(later["kind"], "response");
    assert_eq!(later["alertId"], doc["alertId"]);
    assert_eq!(later["response"]["outcome"], "canceled");
    assert!(
        follow_up
            .subject
            .contains("export task orders-export canceled"),
        "{}",
        follow_up.subject
    );
    assert_eq!(counters.responses.taken, 1);
    assert_eq!(counters.follow_ups, 1);
}

#[tokio::test]
async fn a_failed_cancel_never_costs_the_alert() {
    let f = fakes(
        lookups("STARTING", 403),
        FakeExportTasks::new()
            .with_task(TASK, "starting")
            .failing(CallError::new(
                Cause::AccessDenied,
                "not authorized to perform: rds:CancelExportTask",
            )),
        &[("TRAILWATCH_RESPONSE", "cancel")],
    );
    let counters = f.run(vec![the_export("e1", "2024-03-15T10:33:41Z")]).await;
    let [alert] = f.sink.notifications().try_into().unwrap();
    let doc: Value = serde_json::from_str(&alert.document).unwrap();
    assert_eq!(doc["severity"], "Critical");
    assert_eq!(doc["response"]["outcome"], "failed");
    assert!(doc["response"]["cause"]
        .as_str()
        .unwrap()
        .contains("access denied"));
    assert!(
        alert
            .email
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("RESPONSE FAILED"),
        "{}",
        alert.email
    );
    assert!(alert
        .email
        .contains("aws rds cancel-export-task --export-task-identifier orders-export"));
    assert_eq!((counters.alerts, counters.responses.failures), (1, 1));
}

#[tokio::test]
async fn a_suppressed_export_is_contained_too_and_reported_under_its_windows_alert() {
    let f = fakes(
        lookups("STARTING", 403).task_in("task-2", "STARTING", 0, 0),
        FakeExportTasks::new()
            .with_task(TASK, "starting")
            .with_task("task-2", "starting"),
        &[("TRAILWATCH_RESPONSE", "cancel")],
    );
    let counters = f
        .run(vec![
            the_export("e1", "2024-03-15T10:33:41Z"),
            export_record(
                "e2",
                "2024-03-15T10:50:00Z",
                ACCOUNT,
                ("task-2", SNAPSHOT, BUCKET),
            ),
        ])
        .await;
    assert_eq!((counters.alerts, counters.suppressed), (1, 1));
    let cancelled: Vec<String> = f.tasks.cancels().into_iter().map(|(_, t)| t).collect();
    assert_eq!(cancelled, [TASK, "task-2"]);
    let [alert, follow_up] = f.sink.notifications().try_into().unwrap();
    assert_eq!(alert.kind, "alert");
    assert_eq!(follow_up.kind, "response");
    assert_eq!(follow_up.alert_id, alert.alert_id, "the window's alert");
    let doc: Value = serde_json::from_str(&follow_up.document).unwrap();
    assert_eq!(doc["response"]["target"], "task-2");
    assert_eq!(doc["response"]["outcome"], "canceled");
    assert_eq!((counters.responses.taken, counters.follow_ups), (2, 1));
}

#[tokio::test]
async fn a_retried_publication_cancels_once_and_says_so() {
    let f = fakes(
        lookups("STARTING", 403),
        FakeExportTasks::new().with_task(TASK, "starting"),
        &[("TRAILWATCH_RESPONSE", "cancel")],
    );
    f.sink.refuse_next(1);
    let record = the_export("e1", "2024-03-15T10:33:41Z");
    let mut counters = Counters::default();
    let failures = f
        .alerter
        .process(
            vec![matched(&f.alerter.rules, record.clone())],
            NOW,
            &mut counters,
        )
        .await;
    assert_eq!(failures.len(), 1, "the first publication failed");
    assert_eq!(f.tasks.status_of(TASK).as_deref(), Some("canceling"));
    // Lambda's retry: the claim was released, so it alerts; the task is already
    // canceling, which is success, and the breaker counts it once.
    let counters = f.run(vec![record]).await;
    let [doc] = f.documents().try_into().unwrap();
    assert_eq!(doc["response"]["outcome"], "canceled");
    assert_eq!(doc["response"]["reason"], "the task was already canceling");
    assert_eq!(counters.responses.taken, 1);
}

#[tokio::test]
async fn what_a_record_names_stays_inert_in_the_response_lines_and_the_follow_up() {
    let forged = "orders\nRESPONSE: FORGED nothing was exported\r\n";
    let forged_too = "task-2\u{2028}RESPONSE: FORGED too";
    let f = fakes(
        FakeLookups::new()
            .task_in(forged, "STARTING", 0, 0)
            .task_in(forged_too, "STARTING", 0, 0)
            .bucket_status(BUCKET, ACCOUNT, 403),
        FakeExportTasks::new()
            .with_task(forged, "starting")
            .with_task(forged_too, "starting"),
        &[("TRAILWATCH_RESPONSE", "cancel")],
    );
    f.run(vec![
        export_record(
            "e1",
            "2024-03-15T10:33:41Z",
            ACCOUNT,
            (forged, SNAPSHOT, BUCKET),
        ),
        export_record(
            "e2",
            "2024-03-15T10:40:00Z",
            ACCOUNT,
            (forged_too, SNAPSHOT, BUCKET),
        ),
    ])
    .await;
    let [alert, follow_up] = f.sink.notifications().try_into().unwrap();
    assert_eq!(follow_up.kind, "response");
    for email in [&alert.email, &follow_up.email] {
        assert!(
            !email.lines().any(|l| l.starts_with("RESPONSE: FORGED")),
            "{email}"
        );
        assert!(email.contains("FORGED"), "shown, escaped: {email}");
    }
    assert!(
        alert.email.contains(r"orders\nRESPONSE: FORGED"),
        "{}",
        alert.email
    );
    assert!(!follow_up.subject.contains('\n') && follow_up.subject.is_ascii());
}

/// `scan` looks nothing up unless `--enrich`, and never decides a response. With
/// `--enrich` and an AWS endpoint that refuses connections, every lookup fails at
/// once, is named, and the alert is printed all the same.
#[test]
fn scan_enriches_only_when_asked_and_never_responds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.json.gz");
    std::fs::write(
        &file,
        crate::support::fixtures::log_file(&[the_export("e1", "2024-03-15T10:33:41Z")]),
    )
    .unwrap();
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let scan = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args(["scan", "--format", "json", "--no-progress"])
            .args(extra)
            .arg(&file)
            .env("AWS_ENDPOINT_URL", &refused)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("TRAILWATCH_RESPONSE", "cancel")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .output()
            .expect("run trailwatch scan");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let [line] = stdout.lines().collect::<Vec<_>>().try_into().unwrap();
        serde_json::from_str::<Value>(line).unwrap()
    };
    let plain = scan(&[]);
    assert!(plain.get("enrichment").is_none(), "{plain}");
    assert!(plain.get("response").is_none(), "{plain}");
    let enriched = scan(&["--enrich"]);
    assert_eq!(enriched["enrichment"]["exportTask"]["status"], "unknown");
    let causes: Vec<&str> = enriched["enrichmentErrors"]
        .as_array()
        .unwrap_or_else(|| panic!("{enriched}"))
        .iter()
        .map(|e| e["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["network", "network", "network"], "{enriched}");
    assert!(enriched.get("response").is_none(), "{enriched}");
}
