//! What rules put in front of people: alert documents, e-mails and roll-ups, rule
//! by rule, compared byte for byte with `tests/golden/` where their format is fixed.
//!
//! `TRAILWATCH_BLESS=1 cargo test --test rules_output` rewrites the golden files
//! (review the diff: a golden file is the published format).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use trailwatch::alert::Notification;
use trailwatch::config::AllowList;
use trailwatch::dedup::MemoryStore;
use trailwatch::detect::Match;
use trailwatch::pipeline::{Alerter, Counters};
use trailwatch::rule::RuleSet;
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

/// Runs matches through dedup and alerting, then flushes every window's roll-up.
async fn publish(rules: RuleSet, matches: Vec<Match>) -> Vec<Notification> {
    let sink = Arc::new(MemorySink::new());
    let alerter = Alerter {
        rules: Arc::new(rules),
        dedup: Arc::new(MemoryStore::new()),
        sink: sink.clone(),
        allow: AllowList::default(),
        window_minutes: None,
    };
    let mut counters = Counters::default();
    let now = trailwatch::time::parse_event_time("2024-01-15T12:00:00Z").unwrap();
    let failures = alerter.process(matches, now, &mut counters).await;
    assert!(failures.is_empty(), "{failures:?}");
    let failures = alerter.flush_rollups(now, true, &mut counters).await;
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
