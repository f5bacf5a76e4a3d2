//! The command line as a user runs it: `scan`, `test`, `invoke`, exit codes.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A file or folder of the real samples in `tests/data` (see its README).
fn sample(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn trailwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

fn ndjson(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn real_samples_give_exactly_one_alert() {
    let panther = sample("panther/all_cloudtrail_test_logs.json.gz");
    let stratus = sample("stratus-red-team/_all_detonations.json.gz");
    let out = trailwatch(&[
        "scan",
        "--format",
        "json",
        panther.to_str().unwrap(),
        stratus.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Panther's two export cases share an eventID but not their content: one
    // alert, the other counted in its window and rolled up.
    let alerts = ndjson(&out);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[0]["eventId"], "f1e2d3c4-b5a6-7890-1234-567890abcdef");
    assert_eq!(alerts[0]["kind"], "alert");
    assert_eq!(alerts[1]["kind"], "rollup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("matches=2 alerts=1 suppressed=1 redeliveries=0"),
        "{stderr}"
    );
    assert!(stderr.contains("records=780"), "{stderr}");
}

/// Records in the `{"Records":[...]}` files under `dir`, by an ordinary full parse.
fn records_in(dir: &Path) -> usize {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".json.gz") {
            continue;
        }
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        total += doc["Records"].as_array().unwrap().len();
    }
    total
}

/// The summary's `name=value` on stderr.
fn summary(stderr: &str, name: &str) -> u64 {
    let field = format!("{name}=");
    stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&field))
        .unwrap_or_else(|| panic!("no {name} in {stderr}"))
        .parse()
        .unwrap()
}

#[test]
fn nothing_alerts_on_real_attack_detonations_and_the_real_log_file() {
    let (stratus, trailscraper) = (sample("stratus-red-team"), sample("trailscraper"));
    let out = trailwatch(&[
        "scan",
        "--format",
        "json",
        "--no-progress",
        stratus.to_str().unwrap(),
        trailscraper.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(ndjson(&out).is_empty(), "{stderr}");
    // Every record was read: the 310 detonation events twice (one file per technique
    // and all of them in one file) and the 2 of the real log file.
    let expected = records_in(&stratus) + records_in(&trailscraper);
    assert_eq!(expected, 2 * 310 + 2);
    assert_eq!(summary(&stderr, "records"), expected as u64, "{stderr}");
    assert_eq!(summary(&stderr, "files"), 37, "{stderr}");
    assert_eq!(summary(&stderr, "matches"), 0, "{stderr}");
    assert_eq!(summary(&stderr, "errors"), 0, "{stderr}");
}

#[test]
fn the_rules_own_panther_cases_alert_as_labelled() {
    // One file per case of AWS.RDS.SnapshotExport: exactly the `true` ones alert.
    let cases = std::fs::read_to_string(sample("panther/rds_snapshot_export_cases.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut expected = BTreeSet::new();
    for (index, line) in cases.lines().enumerate() {
        let case: Value = serde_json::from_str(line).unwrap();
        let path = dir.path().join(format!("case-{index}.json"));
        std::fs::write(&path, format!("{{\"Records\":[{}]}}", case["log"])).unwrap();
        if case["expected"] == true {
            expected.insert(path.display().to_string());
        }
    }
    assert_eq!(expected.len(), 2, "the rule has two positive cases");
    let out = trailwatch(&[
        "scan",
        "--format",
        "json",
        "--no-dedup",
        "--no-progress",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let alerted: BTreeSet<String> = ndjson(&out)
        .iter()
        .map(|a| a["source"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(alerted, expected);
}

#[test]
fn every_panther_case_agrees_with_the_rule() {
    // The 537 labelled Panther logs: exactly the two `true` cases of our rule match.
    let cases = std::fs::read_to_string(sample("panther/cases.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    for line in cases.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        if case["log"].is_object() {
            records.push(case["log"].to_string());
        }
    }
    let path = dir.path().join("cases.json");
    std::fs::write(&path, format!("{{\"Records\":[{}]}}", records.join(","))).unwrap();
    let out = trailwatch(&[
        "scan",
        "--format",
        "json",
        "--no-dedup",
        path.to_str().unwrap(),
    ]);
    let alerts = ndjson(&out);
    assert_eq!(alerts.len(), 2);
    assert!(alerts
        .iter()
        .all(|a| a["eventId"] == "f1e2d3c4-b5a6-7890-1234-567890abcdef"));
}

#[test]
fn rule_tests_pass_and_a_failing_rule_file_exits_1() {
    let out = trailwatch(&["test"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // Every embedded rule's tests, the disabled AWS.RDS.SnapshotShared's too.
    assert_eq!(text.matches("PASS").count(), 10, "{text}");
    assert!(text.contains("10 passed, 0 failed"));
    assert!(text.contains("PASS AWS.RDS.SnapshotShared: Removal of a share only"));

    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("wrong.yml");
    std::fs::write(
        &rule,
        "RuleID: Wrong\nSeverity: Low\nDetection:\n  - Key: eventName\n    Condition: Equals\n    Value: X\nTests:\n  - Name: says true but is false\n    ExpectedResult: true\n    Log: {eventName: Y}\n",
    )
    .unwrap();
    let out = trailwatch(&["test", rule.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL Wrong: says true but is false"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(trailwatch(&["scan"]).status.code(), Some(2));
    assert_eq!(
        trailwatch(&["scan", "--format", "xml", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(
        trailwatch(&["scan", "--jobs", "0", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(trailwatch(&[]).status.code(), Some(2));
    assert_eq!(
        trailwatch(&["scan", "--rules", "/nonexistent.yml", "x"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn missing_files_are_reported_and_exit_1() {
    let out = trailwatch(&[
        "scan",
        "--format",
        "json",
        "/nonexistent/file.json.gz",
        "events/objects",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/file.json.gz"), "{stderr}");
    // The good files were still read: two sample objects hold the same export, a
    // third the export of Panther's test record (another day: its own window).
    assert_eq!(ndjson(&out).len(), 2);
}

#[test]
fn stdin_is_read_with_a_dash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["scan", "--format", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let record = r#"{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventID":"x","eventTime":"2024-01-01T00:00:00Z"}"#;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{{\"Records\":[{record}]}}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(ndjson(&out)[0]["eventId"], "x");
}

#[test]
fn dedup_window_and_no_dedup_flags() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |id: &str, t: &str| {
        format!(
            r#"{{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventID":"{id}","eventTime":"{t}","awsRegion":"us-east-1","recipientAccountId":"1"}}"#
        )
    };
    let doc = format!(
        "{{\"Records\":[{},{},{}]}}",
        rec("a", "2024-01-01T00:00:00Z"),
        rec("b", "2024-01-01T00:20:00Z"),
        rec("c", "2024-01-01T00:40:00Z")
    );
    let path = dir.path().join("x.json");
    std::fs::write(&path, doc).unwrap();
    let p = path.to_str().unwrap();
    let kinds = |out: &Output| {
        ndjson(out)
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(&trailwatch(&["scan", "--format", "json", p])),
        ["alert", "rollup"]
    );
    assert_eq!(
        kinds(&trailwatch(&[
            "scan",
            "--format",
            "json",
            "--dedup-window",
            "15",
            p
        ])),
        ["alert", "alert", "alert"]
    );
    assert_eq!(
        kinds(&trailwatch(&[
            "scan",
            "--format",
            "json",
            "--dedup-window",
            "30",
            p
        ])),
        ["alert", "alert", "rollup"]
    );
    assert_eq!(
        kinds(&trailwatch(&["scan", "--format", "json", "--no-dedup", p])),
        ["alert", "alert", "alert"]
    );
}

#[test]
fn invoke_prints_the_alert_as_sns_receives_it() {
    let out = trailwatch(&[
        "invoke",
        "events/s3-put.json",
        "--objects",
        "events/objects",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Subject: [HIGH] RDS snapshot orders-prod-2024-03-15 exported to S3 in 123456789012/us-east-1"));
    assert!(text.contains("\"StringValue\":\"AWS.RDS.SnapshotExport\""));
    assert!(text.contains("Triage checklist"));
    assert!(text.contains("\"eventName\": \"StartExportTask\""));

    let json = trailwatch(&["invoke", "events/s3-put.json", "--format", "json"]);
    let docs = ndjson(&json);
    assert_eq!(docs.len(), 1, "objects default to events/objects");
    assert_eq!(docs[0]["eventId"], "c0ffee00-5e1f-4b2a-9d3c-7a8b9c0d1e2f");
    assert_eq!(docs[0]["source"], "s3://trailwatch-demo-cloudtrail/AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz");
}

#[test]
fn invoke_decodes_keys_and_skips_digests() {
    let encoded = trailwatch(&[
        "invoke",
        "events/s3-url-encoded-key.json",
        "--format",
        "json",
    ]);
    assert_eq!(
        encoded.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&encoded.stderr)
    );
    let docs = ndjson(&encoded);
    assert_eq!(docs.len(), 1);
    assert!(docs[0]["source"]
        .as_str()
        .unwrap()
        .contains("/audit logs/AWSLogs/o-a1b2c3d4e5/"));

    let digest = trailwatch(&["invoke", "events/s3-digest.json", "--format", "json"]);
    assert_eq!(digest.status.code(), Some(0));
    assert!(ndjson(&digest).is_empty());
}
