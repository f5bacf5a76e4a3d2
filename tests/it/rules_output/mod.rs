//! What rules put in front of people: alert documents, e-mails and roll-ups, rule
//! by rule, compared byte for byte with `tests/golden/` where their format is fixed.
//!
//! `TRAILWATCH_BLESS=1 cargo test --test it rules_output` rewrites the golden files
//! (review the diff: a golden file is the published format).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use trailwatch::alert::{build_alert, build_rollup, Notification, SNS_PUBLISH_LIMIT};
use trailwatch::config::AllowList;
use trailwatch::counters::Counters;
use trailwatch::dedup::{DedupKey, DedupStore, DynamoStore, MemoryStore, Rollup};
use trailwatch::detect::Match;
use trailwatch::pipeline::Alerter;
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
        crate::support::fixtures::without_latency(&n.document),
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
        raw: Some(RawValue::from_string(record.to_string()).unwrap()),
        event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
        record,
        parse_warnings: Vec::new(),
        source: SOURCE.into(),
        offset: 0,
        event_time_ms: trailwatch::time::parse_event_time(&time),
        path: trailwatch::detect::DeliveryPath::S3,
        fingerprint: None,
    }
}

fn alerter(rules: RuleSet, dedup: Arc<dyn DedupStore>) -> (Alerter, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let alerter = Alerter::new(
        Arc::new(rules),
        dedup,
        sink.clone(),
        AllowList::default(),
        None,
    );
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
    let raw = Some(RawValue::from_string(record.to_string()).unwrap());
    let m = Match {
        rule: 0,
        event_time_ms: trailwatch::time::parse_event_time("2024-01-15T10:30:00Z"),
        event_id: "f1e2d3c4-b5a6-7890-1234-567890abcdef".into(),
        record,
        raw,
        parse_warnings: Vec::new(),
        source: "s3://trail/AWSLogs/123456789012/CloudTrail/us-east-1/x.json.gz".into(),
        offset: 0,
        path: trailwatch::detect::DeliveryPath::S3,
        fingerprint: None,
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
    m.raw = Some(RawValue::from_string(m.record.to_string()).unwrap());
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
        m.raw = Some(RawValue::from_string(m.record.to_string()).unwrap());
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
            fingerprint: None,
            severity: trailwatch::rule::Severity::High,
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

mod shared_rule;

// ---- alerts with enrichment and a response -------------------------------------

mod enriched;
