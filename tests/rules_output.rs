//! What rules put in front of people: alert documents, e-mails and roll-ups, rule
//! by rule, compared byte for byte with `tests/golden/` where their format is fixed.
//!
//! `TRAILWATCH_BLESS=1 cargo test --test rules_output` rewrites the golden files
//! (review the diff: a golden file is the published format).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use trailwatch::alert::{build_alert, build_rollup, Notification, SNS_PUBLISH_LIMIT};
use trailwatch::config::AllowList;
use trailwatch::dedup::{DedupKey, DedupStore, DynamoStore, MemoryStore, Rollup};
use trailwatch::detect::Match;
use trailwatch::pipeline::{Alerter, Counters};
use trailwatch::rule::{Rule, RuleSet};
use trailwatch::sink::MemorySink;

const SOURCE: &str = "s3://trail/AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/x.json.gz";

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Every byte a sink is given, in one reviewable text.
fn rendered(n: &Notification) -> String {
    let attributes: Vec<String> = n
        .attributes()
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    format!(
        "kind: {}\nalertId: {}\nsubject: {}\nattributes: {}\n--- document\n{}\n--- email\n{}",
        n.kind,
        n.alert_id,
        n.subject,
        attributes.join(" "),
        n.document,
        n.email
    )
}

fn assert_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("TRAILWATCH_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (TRAILWATCH_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\nexpected: {:?}\nactual:   {:?}",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

fn matched(rules: &RuleSet, rule_id: &str, record: Value) -> Match {
    let rule = rules
        .rules
        .iter()
        .position(|r| r.id == rule_id)
        .unwrap_or_else(|| panic!("rule {rule_id} not loaded"));
    let time = record["eventTime"].as_str().unwrap_or_default().to_owned();
    Match {
        rule,
        raw: RawValue::from_string(record.to_string()).unwrap(),
        event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
        record,
        parse_warnings: Vec::new(),
        source: SOURCE.into(),
        offset: 0,
        event_time_ms: trailwatch::time::parse_event_time(&time),
    }
}

fn alerter(rules: RuleSet, dedup: Arc<dyn DedupStore>) -> (Alerter, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let alerter = Alerter {
        rules: Arc::new(rules),
        dedup,
        sink: sink.clone(),
        allow: AllowList::default(),
        window_minutes: None,
    };
    (alerter, sink)
}

fn noon() -> i64 {
    trailwatch::time::parse_event_time("2024-01-15T12:00:00Z").unwrap()
}

/// Runs matches through dedup and alerting, then flushes every window's roll-up.
async fn publish(rules: RuleSet, matches: Vec<Match>) -> Vec<Notification> {
    let (alerter, sink) = alerter(rules, Arc::new(MemoryStore::new()));
    let mut counters = Counters::default();
    let failures = alerter.process(matches, noon(), &mut counters).await;
    assert!(failures.is_empty(), "{failures:?}");
    let failures = alerter.flush_rollups(noon(), true, &mut counters).await;
    assert!(failures.is_empty(), "{failures:?}");
    sink.notifications()
}

/// The export rule's seed records: the first alerts, three more in its window are
/// rolled up; the second (no `exportOnly`) and a root-user export alert on their own
/// accounts.
fn export_matches(rules: &RuleSet) -> Vec<Match> {
    let rule = rules.get("AWS.RDS.SnapshotExport").unwrap();
    let first = rule.tests[0].log.clone();
    let second = rule.tests[1].log.clone();
    let mut out = vec![matched(rules, &rule.id, first.clone())];
    for (i, (snapshot, bucket, who)) in [
        (
            "other-snapshot",
            "my-export-bucket",
            "arn:aws:iam::123456789012:user/a",
        ),
        (
            "my-db-snapshot",
            "second-bucket",
            "arn:aws:iam::123456789012:user/b",
        ),
        (
            "third-snapshot",
            "second-bucket",
            "arn:aws:iam::123456789012:user/a",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = first.clone();
        r["eventID"] = json!(format!("suppressed-{i}"));
        r["eventTime"] = json!(format!("2024-01-15T10:4{i}:00Z"));
        r["requestParameters"]["sourceArn"] = json!(format!(
            "arn:aws:rds:us-east-1:123456789012:snapshot:{snapshot}"
        ));
        r["requestParameters"]["s3BucketName"] = json!(bucket);
        r["userIdentity"]["arn"] = json!(who);
        out.push(matched(rules, &rule.id, r));
    }
    let mut whole = second;
    whole["recipientAccountId"] = json!("210987654321");
    whole["eventID"] = json!("whole-snapshot");
    out.push(matched(rules, &rule.id, whole));
    let mut root = first;
    root["recipientAccountId"] = json!("111122223333");
    root["eventID"] = json!("root-export");
    root["userIdentity"] = json!({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "principalId": "111122223333"});
    out.push(matched(rules, &rule.id, root));
    out
}

#[tokio::test]
async fn the_export_rule_renders_exactly_as_published() {
    let rules = RuleSet::embedded();
    let matches = export_matches(&rules);
    let published = publish(rules, matches).await;
    let kinds: Vec<&str> = published.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        ["alert", "alert", "alert", "rollup"],
        "{published:#?}"
    );
    for (n, name) in published.iter().zip([
        "export_alert.txt",
        "export_alert_root.txt",
        "export_alert_whole_snapshot.txt",
        "export_rollup.txt",
    ]) {
        assert_golden(name, &rendered(n));
    }
}

#[tokio::test]
async fn a_rollup_whose_rule_is_no_longer_loaded_is_published_as_its_window_kept_it() {
    let rules = RuleSet::embedded();
    let matches = export_matches(&rules);
    let store = Arc::new(MemoryStore::new());
    let (before, _) = alerter(rules, store.clone());
    let mut counters = Counters::default();
    assert!(before
        .process(matches, noon(), &mut counters)
        .await
        .is_empty());
    // The rule is gone (a deployment without it); its window still closes.
    let (after, sink) = alerter(RuleSet { rules: Vec::new() }, store);
    let failures = after.flush_rollups(noon(), true, &mut counters).await;
    assert!(failures.is_empty(), "{failures:?}");
    let published = sink.notifications();
    assert_eq!(published.len(), 1, "{published:#?}");
    assert_golden("export_rollup.txt", &rendered(&published[0]));
}

// ---- the export rule's documents under hostile input (SNS size limits) ------

fn seed_match() -> (Rule, Match) {
    let rule = RuleSet::embedded().rules[0].clone();
    let record = rule.tests[0].log.clone();
    let raw = RawValue::from_string(record.to_string()).unwrap();
    let m = Match {
        rule: 0,
        event_time_ms: trailwatch::time::parse_event_time("2024-01-15T10:30:00Z"),
        event_id: "f1e2d3c4-b5a6-7890-1234-567890abcdef".into(),
        record,
        raw,
        parse_warnings: Vec::new(),
        source: "s3://trail/AWSLogs/123456789012/CloudTrail/us-east-1/x.json.gz".into(),
        offset: 0,
    };
    (rule, m)
}

#[test]
fn document_has_the_spec_fields() {
    let (rule, m) = seed_match();
    let n = build_alert(
        &rule,
        &m,
        "AWS.RDS.SnapshotExport:us-east-1:123456789012",
        m.event_time_ms.unwrap(),
        3_600_000,
    );
    let doc: Value = serde_json::from_str(&n.document).unwrap();
    for field in [
        "kind",
        "alertId",
        "ruleId",
        "title",
        "severity",
        "description",
        "runbook",
        "reference",
        "mitre",
        "dedupKey",
        "windowStart",
        "eventTime",
        "eventId",
        "account",
        "region",
        "principal",
        "sourceIPAddress",
        "userAgent",
        "snapshotArn",
        "exportTaskIdentifier",
        "s3Bucket",
        "s3Prefix",
        "kmsKeyId",
        "iamRoleArn",
        "exportOnly",
        "source",
        "event",
    ] {
        assert!(doc.get(field).is_some(), "missing {field}");
    }
    assert_eq!(doc["kind"], "alert");
    assert_eq!(doc["severity"], "High");
    assert_eq!(doc["mitre"][0], "TA0010:T1537");
    assert_eq!(
        doc["snapshotArn"],
        "arn:aws:rds:us-east-1:123456789012:snapshot:my-db-snapshot"
    );
    assert_eq!(doc["exportOnly"][1], "schema1.table2");
    assert_eq!(
        doc["principal"]["arn"],
        "arn:aws:sts::123456789012:assumed-role/Admin/user"
    );
    assert_eq!(doc["event"], m.record);
    assert_eq!(
        n.subject,
        "[HIGH] RDS snapshot my-db-snapshot exported to S3 in 123456789012/us-east-1"
    );
    assert_eq!(n.attributes()[0], ("severity", "HIGH"));
}

#[test]
fn email_names_what_who_where_and_the_triage() {
    let (rule, m) = seed_match();
    let n = build_alert(&rule, &m, "k", 0, 3_600_000);
    for needle in [
        "my-db-snapshot",
        "s3://my-export-bucket/exports/2024-01-15/",
        "1.2.3.4",
        "Triage checklist",
        "schema1.table1",
        "Runbook",
    ] {
        assert!(
            n.email.contains(needle),
            "e-mail lacks {needle}:\n{}",
            n.email
        );
    }
    let msg: Value = serde_json::from_str(&n.sns_message()).unwrap();
    assert_eq!(msg["email"], n.email);
    assert_eq!(msg["default"], n.document);
}

/// The request size counted from what SnsSink sends, independently of
/// `publish_bytes`: the message JSON, the subject, each attribute.
fn request_bytes(n: &Notification) -> usize {
    let message = serde_json::json!({"default": n.document, "email": n.email}).to_string();
    let attributes: usize = [
        ("severity", n.severity.label()),
        ("rule_id", n.rule_id.as_str()),
        ("account", n.account.as_str()),
        ("region", n.region.as_str()),
    ]
    .iter()
    .map(|(name, value)| name.len() + 6 + value.len())
    .sum();
    message.len() + n.subject.len() + attributes
}

#[test]
fn a_large_event_is_kept_when_it_fits() {
    let (rule, mut m) = seed_match();
    m.record["requestParameters"]["s3Prefix"] = Value::String("p".repeat(60_000));
    m.raw = RawValue::from_string(m.record.to_string()).unwrap();
    let n = build_alert(&rule, &m, "k", 0, 3_600_000);
    let doc: Value = serde_json::from_str(&n.document).unwrap();
    assert_eq!(doc["event"], m.record);
    assert!(doc.get("eventOmitted").is_none());
    assert!(doc.get("truncatedFields").is_none());
    assert!(request_bytes(&n) <= SNS_PUBLISH_LIMIT);
}

#[test]
fn huge_events_are_left_out_and_huge_fields_cut_to_fit_sns() {
    let (rule, mut m) = seed_match();
    // Control characters escape to six bytes, twice over (document, message).
    let hostile = "\u{1}".repeat(300_000);
    for (field, value) in [
        ("s3Prefix", "p".repeat(300_000)),
        ("s3Prefix", hostile.clone()),
        ("kmsKeyId", hostile.clone()),
    ] {
        m.record["requestParameters"][field] = Value::String(value.clone());
        m.record["userAgent"] = Value::String(value);
        m.record["awsRegion"] = Value::String(hostile.clone());
        m.raw = RawValue::from_string(m.record.to_string()).unwrap();
        let n = build_alert(&rule, &m, "k", 0, 3_600_000);
        let size = request_bytes(&n);
        assert!(size <= SNS_PUBLISH_LIMIT, "{field}: {size} bytes");
        assert_eq!(size, n.publish_bytes());
        let doc: Value = serde_json::from_str(&n.document).unwrap();
        assert!(doc.get("event").is_none());
        assert_eq!(doc["eventOmitted"], true);
        let cut: Vec<&str> = doc["truncatedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for name in [field, "userAgent", "region"] {
            assert!(cut.contains(&name), "{name} not in {cut:?}");
        }
        assert!(doc["userAgent"]
            .as_str()
            .unwrap()
            .ends_with("...[truncated from 300000 bytes]"));
        assert!(n.email.contains("[truncated from 300000 bytes]"));
    }
}

#[test]
fn rollups_of_huge_values_fit_sns() {
    let (rule, _) = seed_match();
    let hostile = "\u{1}".repeat(300_000);
    let mut window = trailwatch::dedup::Window::default();
    let key = DedupKey::new(rule.id.clone(), vec![hostile.clone(), hostile.clone()]);
    for i in 0..trailwatch::dedup::MAX_DISTINCT {
        let value = format!("{i}{hostile}");
        window.absorb(&trailwatch::dedup::Claim {
            key: key.clone(),
            event_time_ms: 0,
            event_id: String::new(),
            window_ms: 0,
            distinct: ["snapshots", "buckets", "principals"]
                .map(|name| (name.to_owned(), value.clone()))
                .to_vec(),
            spec: rule.rollup_spec(),
        });
    }
    let stored = window.distinct["snapshots"].iter().next().unwrap();
    assert_eq!(
        stored.len(),
        trailwatch::dedup::MAX_DISTINCT_BYTES,
        "capped when stored"
    );
    let rollup = Rollup { key, window };
    let n = build_rollup(&rule.rollup_spec(), &rollup);
    assert!(
        request_bytes(&n) <= SNS_PUBLISH_LIMIT,
        "{}",
        request_bytes(&n)
    );
    let doc: Value = serde_json::from_str(&n.document).unwrap();
    assert_eq!(
        doc["snapshots"].as_array().unwrap().len(),
        trailwatch::dedup::MAX_DISTINCT
    );
    assert!(doc["truncatedFields"]
        .as_array()
        .unwrap()
        .contains(&Value::from("snapshots")));
}

#[test]
fn missing_fields_read_unknown() {
    let (rule, mut m) = seed_match();
    m.record =
        serde_json::json!({"eventSource": "rds.amazonaws.com", "eventName": "StartExportTask"});
    let n = build_alert(&rule, &m, "k", 0, 3_600_000);
    let doc: Value = serde_json::from_str(&n.document).unwrap();
    assert_eq!(doc["account"], "unknown");
    assert_eq!(doc["principal"]["arn"], "unknown");
    assert_eq!(doc["s3Bucket"], "unknown");
    assert_eq!(doc["exportOnly"], Value::Null);
}

// ---- the companion rule: AWS.RDS.SnapshotShared ------------------------------

const SHARED: &str = "AWS.RDS.SnapshotShared";

fn data(path: &str) -> String {
    format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// `trailwatch scan --format json` with `extra` arguments and environment; the
/// alerts it printed.
fn scan(extra: &[&str], env: &[(&str, &str)]) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TRAILWATCH_RULES")
        .envs(env.iter().copied())
        .args(["scan", "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(alerts: &[Value]) -> Vec<(String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["ruleId"].as_str().unwrap_or_default().to_owned(),
                a["eventId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The one event of Stratus Red Team's `aws.exfiltration.rds-share-snapshot`.
const STRATUS_SHARE: &str = "fef2bf02-bbea-4d0f-a91c-e6ccfe3fba46";
/// Panther's own positive case for `AWS.RDS.SnapshotShared`.
const PANTHER_SHARE: &str = "86581591-0f39-4eae-9a8d-b2224a3c91fa";
/// Panther's positive cases for `AWS.RDS.SnapshotExport` (one alert: same key, time).
const PANTHER_EXPORT: &str = "f1e2d3c4-b5a6-7890-1234-567890abcdef";

#[test]
fn the_shared_rule_is_embedded_disabled_and_its_tests_pass() {
    assert!(RuleSet::embedded().get(SHARED).is_none(), "off by default");
    let every = RuleSet::every_embedded();
    let rule = every.get(SHARED).expect("embedded");
    assert!(!rule.enabled);
    let outcomes = trailwatch::rule::run_rule_tests(std::slice::from_ref(rule));
    assert!(outcomes.len() >= 5, "positive and three kinds of negative");
    for o in &outcomes {
        assert!(o.passed(), "{}: expected {}", o.name, o.expected);
    }
    for name in [
        SHARED,
        "aws_rds_snapshot_shared.yml",
        "aws_rds_snapshot_shared",
    ] {
        let set = RuleSet::load(&[name]).unwrap();
        assert!(set.get(SHARED).is_some(), "{name} enables it");
        assert!(set.get("AWS.RDS.SnapshotExport").is_some());
    }
}

#[test]
fn the_shared_rule_alerts_on_the_stratus_detonation_and_nothing_else() {
    let stratus = data("stratus-red-team");
    // The folder holds the detonation twice (its own file and the all-detonations
    // file): the same event, recognised as a redelivery.
    for rules in [SHARED, "rules/aws_rds_snapshot_shared.yml"] {
        let alerts = scan(&["--rules", rules, &stratus], &[]);
        assert_eq!(
            summary(&alerts),
            [(SHARED.to_owned(), STRATUS_SHARE.to_owned())],
            "--rules {rules}"
        );
        let alert = &alerts[0];
        assert_eq!(alert["snapshotIdentifier"], "exfiltration");
        assert_eq!(alert["sharedWith"], json!(["503161813013"]));
        assert_eq!(alert["account"], "171471557522");
    }
    let alerts = scan(&[&stratus], &[("TRAILWATCH_RULES", SHARED)]);
    assert_eq!(
        summary(&alerts),
        [(SHARED.to_owned(), STRATUS_SHARE.to_owned())]
    );
}

#[test]
fn over_the_panther_logs_the_shared_rule_agrees_with_panthers_own_cases() {
    let panther = data("panther/all_cloudtrail_test_logs.json.gz");
    let alerts = scan(&["--rules", SHARED, &panther], &[]);
    let mut got = summary(&alerts);
    got.sort();
    assert_eq!(
        got,
        [
            (
                "AWS.RDS.SnapshotExport".to_owned(),
                PANTHER_EXPORT.to_owned()
            ),
            (SHARED.to_owned(), PANTHER_SHARE.to_owned()),
        ],
        "the share case with an empty valuesToAdd and every other log stay quiet"
    );
}

#[test]
fn the_default_rules_give_exactly_one_alert_over_the_public_samples() {
    let alerts = scan(
        &[
            &data("panther/all_cloudtrail_test_logs.json.gz"),
            &data("stratus-red-team"),
        ],
        &[],
    );
    assert_eq!(
        summary(&alerts),
        [(
            "AWS.RDS.SnapshotExport".to_owned(),
            PANTHER_EXPORT.to_owned()
        )]
    );
}

/// The detonation record, and more shares in its window for a roll-up.
fn shared_matches(rules: &RuleSet) -> Vec<Match> {
    let rule = rules.get(SHARED).unwrap();
    let first = rule.tests[0].log.clone();
    let mut out = vec![matched(rules, SHARED, first.clone())];
    for (i, (snapshot, to)) in [
        ("other-db", json!(["444455556666"])),
        ("prod-db-snapshot", json!(["all"])),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = first.clone();
        r["eventID"] = json!(format!("share-{i}"));
        r["eventTime"] = json!(format!("2024-08-01T12:4{i}:00Z"));
        r["requestParameters"]["dBSnapshotIdentifier"] = json!(snapshot);
        r["requestParameters"]["valuesToAdd"] = to;
        out.push(matched(rules, SHARED, r));
    }
    let mut cluster = rule.tests[1].log.clone();
    cluster["recipientAccountId"] = json!("210987654321");
    out.push(matched(rules, SHARED, cluster));
    out
}

#[tokio::test]
async fn the_shared_rule_mails_and_rolls_up_only_its_own_fields() {
    let rules = RuleSet::load(&[SHARED]).unwrap();
    let matches = shared_matches(&rules);
    let published = publish(rules, matches).await;
    let kinds: Vec<&str> = published.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, ["alert", "alert", "rollup"], "{published:#?}");
    for (n, name) in published.iter().zip([
        "shared_alert.txt",
        "shared_alert_public_cluster.txt",
        "shared_rollup.txt",
    ]) {
        let text = rendered(n);
        for foreign in ["export", "Export", "Bucket", "bucket", "KMS", "Tables"] {
            assert!(
                !text.contains(foreign),
                "{name} mentions {foreign}:\n{text}"
            );
        }
        assert_golden(name, &text);
    }
    let alert = &published[0].email;
    assert!(
        alert.contains("What:     rds:ModifyDBSnapshotAttribute succeeded at 2024-08-01T12:38:06Z")
    );
    assert!(alert.contains("Shared with: 999988887777"), "{alert}");
    assert!(alert.contains("Removed:  none"), "{alert}");
    assert!(alert.contains("further shares for AWS.RDS.SnapshotShared:us-east-1:123456789012"));
    assert!(published[1]
        .subject
        .starts_with("[CRITICAL] RDS snapshot aurora-snapshot shared"));
    let rollup: Value = serde_json::from_str(&published[2].document).unwrap();
    assert_eq!(rollup["snapshots"], json!(["other-db", "prod-db-snapshot"]));
    assert_eq!(rollup["sharedWith"], json!(["444455556666", "all"]));
    assert!(rollup.get("buckets").is_none());
    assert_eq!(
        published[2].subject,
        "[HIGH] 2 more RDS snapshot share(s) in 123456789012/us-east-1 (roll-up)"
    );
}

// ---- Security Hub findings, against the AWS emulator -------------------------

#[path = "support/moto.rs"]
mod moto;

/// An alert of `rule_id` for `record`, as the pipeline builds it.
fn alert_of(rules: &RuleSet, rule_id: &str, record: Value) -> Notification {
    let m = matched(rules, rule_id, record);
    let rule = &rules.rules[m.rule];
    let key = Alerter::dedup_key(rule, &m.record).to_string();
    build_alert(rule, &m, &key, m.event_time_ms.unwrap(), 3_600_000)
}

#[cfg(feature = "securityhub")]
#[tokio::test]
async fn alerts_become_security_hub_findings_and_a_retry_updates_the_same_one() {
    use trailwatch::sink::securityhub::{finding_id, product_arn, SecurityHubSink};
    use trailwatch::sink::AlertSink;

    let server = moto::MotoServer::start();
    let conf = server.sdk_config().await;
    let hub = aws_sdk_securityhub::Client::new(&conf);
    let product = product_arn("aws", moto::REGION, "123456789012");
    let sink = SecurityHubSink::new(hub.clone(), &product);

    let rules = RuleSet::load(&[SHARED]).unwrap();
    let export = rules.get("AWS.RDS.SnapshotExport").unwrap();
    let export_alert = alert_of(&rules, &export.id, export.tests[0].log.clone());
    let public = rules.get(SHARED).unwrap().tests[1].log.clone();
    let share_alert = alert_of(&rules, SHARED, public);
    sink.publish(&export_alert).await.expect("imported");
    sink.publish(&share_alert).await.expect("imported");
    // A retried publication (same alert) and a roll-up add no finding.
    sink.publish(&export_alert).await.expect("re-imported");
    let matches = export_matches(&rules);
    let rollup = publish(rules.clone(), matches)
        .await
        .into_iter()
        .find(|n| n.kind == "rollup")
        .unwrap();
    sink.publish(&rollup).await.expect("nothing to import");

    let findings = hub
        .get_findings()
        .send()
        .await
        .expect("GetFindings")
        .findings
        .unwrap_or_default();
    let ids: Vec<&str> = findings.iter().filter_map(|f| f.id()).collect();
    assert_eq!(
        ids,
        [
            finding_id(&export_alert.alert_id),
            finding_id(&share_alert.alert_id)
        ],
        "one finding per alert"
    );
    let f = &findings[0];
    assert_eq!(f.product_arn(), Some(product.as_str()));
    assert_eq!(f.aws_account_id(), Some("123456789012"));
    assert_eq!(f.region(), Some("us-east-1"));
    assert_eq!(f.types(), ["TTPs/Exfiltration/T1537"]);
    assert_eq!(
        f.severity().and_then(|s| s.label()).map(|l| l.as_str()),
        Some("HIGH")
    );
    assert_eq!(f.generator_id(), Some("trailwatch/AWS.RDS.SnapshotExport"));
    assert_eq!(f.created_at(), Some("2024-01-15T10:30:00Z"));
    assert!(f
        .title()
        .unwrap()
        .starts_with("RDS Snapshot Export: [my-db-snapshot]"));
    let resources: Vec<(&str, &str)> = f
        .resources()
        .iter()
        .map(|r| (r.r#type().unwrap_or_default(), r.id().unwrap_or_default()))
        .collect();
    assert_eq!(
        resources,
        [
            ("AwsAccount", "AWS::::Account:123456789012"),
            (
                "AwsRdsDbSnapshot",
                "arn:aws:rds:us-east-1:123456789012:snapshot:my-db-snapshot"
            ),
            ("AwsS3Bucket", "my-export-bucket"),
            (
                "AwsKmsKey",
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
            ("AwsIamRole", "arn:aws:iam::123456789012:role/RDSExportRole"),
        ]
    );
    let fields = f.product_fields().unwrap();
    assert_eq!(
        fields["trailwatch/principalArn"],
        "arn:aws:sts::123456789012:assumed-role/Admin/user"
    );
    assert_eq!(fields["trailwatch/sourceIPAddress"], "1.2.3.4");
    assert_eq!(fields["trailwatch/alertId"], export_alert.alert_id);
    let s = &findings[1];
    assert_eq!(
        s.severity().and_then(|s| s.label()).map(|l| l.as_str()),
        Some("CRITICAL"),
        "a public share is raised"
    );
    assert_eq!(
        s.resources()
            .iter()
            .filter_map(|r| r.r#type())
            .collect::<Vec<_>>(),
        ["AwsAccount", "AwsRdsDbClusterSnapshot"]
    );
    assert!(s.description().unwrap().contains("made public"));
}

#[tokio::test]
async fn in_dynamodb_the_key_is_stored_as_its_parts_and_an_orphan_rollup_is_published_from_the_item(
) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    let server = moto::MotoServer::start();
    let conf = server.sdk_config().await;
    let db = aws_sdk_dynamodb::Client::new(&conf);
    let table = moto::unique("windows");
    db.create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
    let store: Arc<dyn DedupStore> = Arc::new(DynamoStore::new(db.clone(), &table));
    let rules = RuleSet::embedded();
    let matches = export_matches(&rules);
    let (before, sink) = alerter(rules, store.clone());
    let mut counters = Counters::default();
    assert!(before
        .process(matches, noon(), &mut counters)
        .await
        .is_empty());
    assert_eq!((counters.alerts, counters.suppressed), (3, 3));
    assert_golden("export_alert.txt", &rendered(&sink.notifications()[0]));

    let item = db
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            AttributeValue::S("AWS.RDS.SnapshotExport:us-east-1:123456789012".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the window item, under the key's display form");
    assert_eq!(
        item["rule_id"],
        AttributeValue::S("AWS.RDS.SnapshotExport".into())
    );
    assert_eq!(
        item["group_values"],
        AttributeValue::L(vec![
            AttributeValue::S("us-east-1".into()),
            AttributeValue::S("123456789012".into())
        ])
    );
    assert_eq!(
        item["rule_name"],
        AttributeValue::S("AWS RDS Snapshot Exported to S3".into())
    );
    let distinct = item["distinct"].as_m().unwrap();
    assert_eq!(distinct["snapshots"].as_ss().unwrap().len(), 3);

    // A deployment without the rule still reports the window, from the item alone.
    let (after, sink) = alerter(RuleSet { rules: Vec::new() }, store);
    let failures = after.flush_rollups(noon(), true, &mut counters).await;
    assert!(failures.is_empty(), "{failures:?}");
    let published = sink.notifications();
    assert_eq!(published.len(), 1, "{published:#?}");
    assert_golden("export_rollup.txt", &rendered(&published[0]));
}
