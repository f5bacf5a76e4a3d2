//! A bad neighbour never costs a good record: each class of bad input, in a log
//! file beside good records, alerts through `scan` and `invoke` exactly as Python's
//! `json` full parse of the records that can be recovered (the gzip members before
//! data that is not a member, zero padding skipped), and the bad part is named on
//! stderr with its file.
//!
//! Every match of every file is two hours from any other of its account and
//! region, so each alerts in a window of its own: the alerts are the matches.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use crate::support::fixtures::{gzip, s3_event};

const BUCKET: &str = "trail";
const ACCOUNT: &str = "123456789012";

/// Gives each match a time of its own, two hours after the previous one.
struct Clock(u32);

impl Clock {
    fn next(&mut self) -> String {
        self.0 += 1;
        let hours = 2 * self.0;
        format!("2024-03-{:02}T{:02}:00:00Z", 1 + hours / 24, hours % 24)
    }
}

fn export(id: Option<&str>, time: &str, extra: Value) -> Value {
    let mut record = json!({
        "eventVersion": "1.09", "eventSource": "rds.amazonaws.com", "eventName": "StartExportTask",
        "eventTime": time, "awsRegion": "us-east-1", "recipientAccountId": ACCOUNT,
        "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.15.30",
        "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/DataEngineer/jdoe")},
        "requestParameters": {"sourceArn": format!("arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:orders"),
                              "s3BucketName": "exports", "exportTaskIdentifier": "orders"}
    });
    if let Some(id) = id {
        record["eventID"] = json!(id);
    }
    for (name, value) in extra.as_object().into_iter().flatten() {
        record[name] = value.clone();
    }
    record
}

fn noise(i: usize) -> Value {
    json!({"eventVersion": "1.09", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
           "eventTime": "2024-03-01T00:00:00Z", "eventID": format!("noise-{i}"), "awsRegion": "us-east-1",
           "recipientAccountId": ACCOUNT, "requestParameters": {"bucketName": "logs", "key": format!("k/{i}")}})
}

/// `{"Records":[...]}` of these record texts.
fn document(records: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}

fn text(record: &Value) -> String {
    record.to_string()
}

/// One class: its log file, and what stderr says of it (empty: nothing bad to name).
struct Case {
    name: &'static str,
    object: Vec<u8>,
    stderr: &'static str,
}

/// A good match before the bad part and one after it, with noise around.
fn around(clock: &mut Clock, name: &str, bad: &[String]) -> Vec<String> {
    let mut records = vec![
        text(&noise(0)),
        text(&export(
            Some(&format!("{name}-before")),
            &clock.next(),
            json!({}),
        )),
    ];
    records.extend(bad.iter().cloned());
    records.push(text(&export(
        Some(&format!("{name}-after")),
        &clock.next(),
        json!({}),
    )));
    records.push(text(&noise(1)));
    records
}

fn cases() -> Vec<Case> {
    let mut clock = Clock(0);
    let mut cases = Vec::new();

    let doc = document(&around(&mut clock, "trailing-data", &[]));
    let mut object = gzip(doc.as_bytes());
    object.extend(b"this is not a gzip member");
    cases.push(Case {
        name: "trailing-data",
        object,
        stderr: "is not a gzip member: ignored",
    });

    let doc = document(&around(&mut clock, "stray-byte", &[]));
    let mut object = gzip(doc.as_bytes());
    object.push(b'X');
    cases.push(Case {
        name: "stray-byte",
        object,
        stderr: "is not a gzip member: ignored",
    });

    // The document split between two members, 512 zero bytes between them.
    let doc = document(&around(&mut clock, "zero-padding", &[]));
    let cut = doc.len() / 2;
    let mut object = gzip(&doc.as_bytes()[..cut]);
    object.extend([0u8; 512]);
    object.extend(gzip(&doc.as_bytes()[cut..]));
    cases.push(Case {
        name: "zero-padding",
        object,
        stderr: "",
    });

    // A record of 16.5 MiB (over the 16 MiB limit) that is not a candidate.
    let huge = format!(
        r#"{{"eventSource":"s3.amazonaws.com","eventName":"PutObject","eventID":"huge","requestParameters":{{"blob":"{}"}}}}"#,
        "a".repeat(33 << 19)
    );
    let doc = document(&around(&mut clock, "oversized", &[huge]));
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(doc.as_bytes()).unwrap();
    cases.push(Case {
        name: "oversized",
        object: encoder.finish().unwrap(),
        stderr: "is larger than the limit of 16777216 bytes and is not a candidate: skipped",
    });

    // Elements of Records and a root-level member that are not valid JSON.
    let records = around(
        &mut clock,
        "bad-elements",
        &[
            "NaN".to_owned(),
            r#""\udc00 lone""#.to_owned(),
            "\"raw\ttab\"".to_owned(),
            "-Infinity".to_owned(),
        ],
    );
    let doc = format!(r#"{{"Other":NaN,"Records":[{}]}}"#, records.join(","));
    cases.push(Case {
        name: "bad-elements",
        object: gzip(doc.as_bytes()),
        stderr: "is not valid JSON",
    });

    // A matching record with bare non-finite numbers.
    let non_finite = export(Some("non-finite-itself"), &clock.next(), json!({"x": 0}))
        .to_string()
        .replace(
            r#""x":0"#,
            r#""additionalEventData":{"ratio":NaN,"max":Infinity,"min":-Infinity}"#,
        );
    let doc = document(&around(&mut clock, "non-finite", &[non_finite]));
    cases.push(Case {
        name: "non-finite",
        object: gzip(doc.as_bytes()),
        stderr: "non-standard number NaN kept as text",
    });

    // The same eventID on two different records, hours apart; two without eventID.
    let reused = [
        text(&export(
            Some("reused"),
            &clock.next(),
            json!({"userAgent": "first"}),
        )),
        text(&export(
            Some("reused"),
            &clock.next(),
            json!({"userAgent": "second"}),
        )),
        text(&export(
            None,
            &clock.next(),
            json!({"userAgent": "anonymous-1"}),
        )),
        text(&export(
            None,
            &clock.next(),
            json!({"userAgent": "anonymous-2"}),
        )),
    ];
    let doc = document(&around(&mut clock, "event-ids", &reused));
    cases.push(Case {
        name: "event-ids",
        object: gzip(doc.as_bytes()),
        stderr: "",
    });

    // The memory case: 1.5 million small values in a field the caller fills.
    cases.push(Case {
        name: "memory",
        object: super::memory::object(&clock.next(), &clock.next()),
        stderr: "requestParameters.exportOnly: 1499000 more values",
    });
    cases
}

fn key(name: &str) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/03/15/{ACCOUNT}_CloudTrail_us-east-1_20240315T1000Z_{name}.json.gz")
}

/// Python's `json` over the recoverable records of each file: gzip members one
/// after another, zero padding skipped, up to data that is not a member; the
/// eventIDs (`unknown` when absent) of the successful exports.
fn python_matches(dir: &Path, names: &[String]) -> Vec<Vec<String>> {
    let script = r#"
import json, sys, zlib
def members(data):
    out, rest, first = b"", data, True
    while True:
        if not first:
            rest = rest.lstrip(b"\0")
            if rest[:2] != b"\x1f\x8b":
                return out
        first = False
        member = zlib.decompressobj(31)
        out += member.decompress(rest)
        if not member.eof:
            raise ValueError("truncated member")
        rest = member.unused_data
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = members(data)
    records = json.loads(data.decode("utf-8"), strict=False)["Records"]
    print(json.dumps([r.get("eventID", "unknown") for r in records if isinstance(r, dict)
        and r.get("eventSource") == "rds.amazonaws.com"
        and r.get("eventName") == "StartExportTask" and r.get("errorCode") is None]))
"#;
    super::python_json_lines(script, dir, names)
}

/// The eventIDs of the alerts on stdout, by the file (`source`) they came from;
/// every line is one alert document.
fn alerts_by_file(stdout: &[u8]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(stdout.to_vec()).unwrap().lines() {
        let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(doc["kind"], "alert", "nothing is suppressed: {line}");
        let source = doc["source"].as_str().unwrap();
        let file = source.rsplit('/').next().unwrap().to_owned();
        out.entry(file)
            .or_default()
            .push(doc["eventId"].as_str().unwrap().to_owned());
    }
    out
}

fn check(cases: &[Case], expected: &[Vec<String>], stdout: &[u8], stderr: &str) {
    let got = alerts_by_file(stdout);
    for (case, expected) in cases.iter().zip(expected) {
        let file = key(case.name).rsplit('/').next().unwrap().to_owned();
        let mut expected = expected.clone();
        expected.sort();
        let mut alerted = got.get(&file).cloned().unwrap_or_default();
        alerted.sort();
        assert_eq!(
            alerted, expected,
            "{}: alerts as Python's full parse",
            case.name
        );
        assert!(
            expected.contains(&format!("{}-after", case.name)),
            "{}: the record after the bad part is among them",
            case.name
        );
        if !case.stderr.is_empty() {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.contains(&file) && l.contains(case.stderr)),
                "{}: stderr names the file and says {:?}:\n{stderr}",
                case.name,
                case.stderr
            );
        }
    }
}

#[test]
fn every_class_beside_good_records_alerts_as_pythons_full_parse_through_scan_and_invoke() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let mut names = Vec::new();
    for case in &cases {
        let path = dir.path().join(BUCKET).join(key(case.name));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &case.object).unwrap();
        names.push(key(case.name));
    }
    let expected = python_matches(&dir.path().join(BUCKET), &names);
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(
        total,
        2 * cases.len() + 5,
        "Python finds the planted matches"
    );

    let scan = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["scan", "--format", "json", "--no-progress"])
        .arg(dir.path().join(BUCKET))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&scan.stderr);
    assert_eq!(scan.status.code(), Some(0), "no object fails: {stderr}");
    check(&cases, &expected, &scan.stdout, &stderr);
    assert!(stderr.contains(" redeliveries=0 "), "{stderr}");
    assert!(stderr.contains(" suppressed=0 "), "{stderr}");

    let event = dir.path().join("event.json");
    std::fs::write(&event, s3_event(BUCKET, &names).to_string()).unwrap();
    let invoke = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["invoke", "--format", "json", "--objects"])
        .arg(dir.path())
        .arg(&event)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&invoke.stderr);
    assert_eq!(invoke.status.code(), Some(0), "no object fails: {stderr}");
    check(&cases, &expected, &invoke.stdout, &stderr);
}
