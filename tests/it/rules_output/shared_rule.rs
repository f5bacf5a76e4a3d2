//! The companion rule `AWS.RDS.SnapshotShared` on real samples, its own e-mail and
//! roll-up, and alerts as Security Hub findings against the AWS emulator.

use super::*;

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

/// The alert documents (Panther's two export cases share an eventID but not their
/// content: the second is counted in its window and rolled up).
fn alerts_only(documents: Vec<Value>) -> Vec<Value> {
    documents
        .into_iter()
        .filter(|d| d["kind"] == "alert")
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
    let alerts = alerts_only(scan(&["--rules", SHARED, &panther], &[]));
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
    let alerts = alerts_only(scan(
        &[
            &data("panther/all_cloudtrail_test_logs.json.gz"),
            &data("stratus-red-team"),
        ],
        &[],
    ));
    assert_eq!(
        summary(&alerts),
        [(
            "AWS.RDS.SnapshotExport".to_owned(),
            PANTHER_EXPORT.to_owned()
        )]
    );
}

/// The detonation record, and more shares in its window for a roll-up (no worse
/// than it: a worse one would alert).
fn shared_matches(rules: &RuleSet) -> Vec<Match> {
    let rule = rules.get(SHARED).unwrap();
    let first = rule.tests[0].log.clone();
    let mut out = vec![matched(rules, SHARED, first.clone())];
    for (i, (snapshot, to)) in [
        ("other-db", json!(["444455556666"])),
        ("prod-db-snapshot", json!(["555566667777"])),
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
    assert_eq!(
        rollup["sharedWith"],
        json!(["444455556666", "555566667777"])
    );
    assert!(rollup.get("buckets").is_none());
    assert_eq!(
        published[2].subject,
        "[HIGH] 2 more RDS snapshot share(s) in 123456789012/us-east-1 (roll-up)"
    );
}

// ---- Security Hub findings, against the AWS emulator -------------------------

use crate::support::moto;

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
