//! The rule loader and the export rule's behaviour, through the public `Rule` API.

use super::*;
use serde_json::json;

fn rds_rule() -> Rule {
    RuleSet::embedded()
        .get("AWS.RDS.SnapshotExport")
        .unwrap()
        .clone()
}

#[test]
fn the_seed_tests_pass() {
    let rule = rds_rule();
    assert_eq!(rule.tests.len(), 4, "the seed has four test cases");
    let outcomes = run_rule_tests(std::slice::from_ref(&rule));
    for o in &outcomes {
        assert!(
            o.passed(),
            "{}: expected {} got {}",
            o.name,
            o.expected,
            o.actual
        );
    }
    assert_eq!(outcomes.iter().filter(|o| o.expected).count(), 2);
}

#[test]
fn metadata_follows_the_seed() {
    let rule = rds_rule();
    assert_eq!(rule.severity, Severity::High);
    assert_eq!(rule.dedup_minutes, 60);
    assert_eq!(rule.mitre, vec!["TA0010:T1537".to_owned()]);
    assert_eq!(
        rule.group_by,
        vec![
            vec!["awsRegion".to_owned()],
            vec!["recipientAccountId".to_owned()]
        ]
    );
    assert_eq!(rule.needles()[0], "StartExportTask");
    assert!(rule.runbook.starts_with("1. Find all API calls"));
}

fn export(extra: Value) -> Value {
    let mut base = json!({"eventSource": "rds.amazonaws.com", "eventName": "StartExportTask"});
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    base
}

#[test]
fn error_code_absent_or_null_matches_any_other_value_does_not() {
    let rule = rds_rule();
    assert!(rule.matches(&export(json!({}))));
    assert!(rule.matches(&export(json!({"errorCode": null}))));
    assert!(!rule.matches(&export(json!({"errorCode": ""}))));
    assert!(!rule.matches(&export(json!({"errorCode": "AccessDenied"}))));
    assert!(!rule.matches(&export(json!({"errorCode": 0}))));
    assert!(!rule.matches(&export(json!({"errorCode": false}))));
}

#[test]
fn look_alike_services_and_values_do_not_match() {
    let rule = rds_rule();
    for source in [
        "discovery.amazonaws.com",
        "neptune-graph.amazonaws.com",
        "RDS.amazonaws.com",
        "rds.amazonaws.com ",
        "",
    ] {
        assert!(
            !rule.matches(&json!({"eventSource": source, "eventName": "StartExportTask"})),
            "{source}"
        );
    }
    for name in [
        "startExportTask",
        "StartExportTask ",
        "StartExportTasks",
        "CancelExportTask",
    ] {
        assert!(
            !rule.matches(&json!({"eventSource": "rds.amazonaws.com", "eventName": name})),
            "{name}"
        );
    }
    assert!(!rule
        .matches(&json!({"eventSource": "rds.amazonaws.com", "eventName": ["StartExportTask"]})));
    assert!(!rule.matches(&json!({"eventSource": "rds.amazonaws.com"})));
}

#[test]
fn title_follows_panthers_shape_and_tolerates_missing_fields() {
    let rule = rds_rule();
    let record = &rule.tests[0].log;
    assert_eq!(
        rule.title_for(record),
        "RDS Snapshot Export: [my-db-snapshot] exported to S3 bucket [my-export-bucket] by [arn:aws:sts::123456789012:assumed-role/Admin/user]"
    );
    assert_eq!(
        rule.title_for(&export(json!({}))),
        "RDS Snapshot Export: [unknown] exported to S3 bucket [unknown] by [unknown]"
    );
}

#[test]
fn escalates_on_foreign_key_or_role_and_on_root() {
    let rule = rds_rule();
    let base = rule.tests[0].log.clone();
    assert_eq!(rule.severity_for(&base).0, Severity::High);
    let mut foreign_key = base.clone();
    foreign_key["requestParameters"]["kmsKeyId"] =
        json!("arn:aws:kms:us-east-1:999999999999:key/abc");
    assert_eq!(rule.severity_for(&foreign_key).0, Severity::Critical);
    let mut foreign_role = base.clone();
    foreign_role["requestParameters"]["iamRoleArn"] = json!("arn:aws:iam::999999999999:role/x");
    assert_eq!(rule.severity_for(&foreign_role).0, Severity::Critical);
    let mut root = base.clone();
    root["userIdentity"]["type"] = json!("Root");
    let (severity, reason) = rule.severity_for(&root);
    assert_eq!(severity, Severity::Critical);
    assert!(reason.unwrap().contains("root"));
    let mut key_id_only = base;
    key_id_only["requestParameters"]["kmsKeyId"] = json!("1234abcd-12ab-34cd-56ef-1234567890ab");
    assert_eq!(rule.severity_for(&key_id_only).0, Severity::High);
}

#[test]
fn conditions_cover_the_panther_vocabulary() {
    let yaml = r#"
RuleID: Test.Rule
Severity: Low
Detection:
  - Any:
      - Key: a
        Condition: IsIn
        Values: [x, y]
      - DeepKey: [b, c]
        Condition: StartsWith
        Value: pre
  - Key: d
    Condition: IsNotNull
  - Key: e
    Condition: DoesNotEqual
    Value: 3
"#;
    let rule = Rule::from_yaml("t.yml", yaml).unwrap();
    assert!(rule.needles().is_empty(), "an Any proves no literal");
    assert!(rule.matches(&json!({"a": "y", "d": 1})));
    assert!(rule.matches(&json!({"b": {"c": "prefix"}, "d": "z", "e": 4})));
    assert!(!rule.matches(&json!({"a": "y", "d": 1, "e": 3})));
    assert!(!rule.matches(&json!({"a": "z", "d": 1})));
    assert!(!rule.matches(&json!({"a": "x", "d": null})));
}

#[test]
fn invalid_rules_are_rejected_with_the_file_named() {
    let bad = "RuleID: X\nSeverity: High\nDetection:\n  - Key: a\n    Condition: Frobnicates\n    Value: 1\n";
    let err = Rule::from_yaml("bad.yml", bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.yml") && err.contains("Frobnicates"),
        "{err}"
    );
    let python = "RuleID: X\nSeverity: High\n";
    assert!(Rule::from_yaml("py.yml", python)
        .unwrap_err()
        .to_string()
        .contains("Detection"));
    let threshold = "RuleID: X\nSeverity: High\nThreshold: 5\nDetection: []\n";
    assert!(Rule::from_yaml("t.yml", threshold)
        .unwrap_err()
        .to_string()
        .contains("Threshold"));
}
