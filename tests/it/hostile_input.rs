//! Input AWS should never write, written the way a caller who controls parts of its
//! own CloudTrail record (user agent, request parameters) would write it: every
//! record that another JSON parser accepts is evaluated, so no such record costs an
//! alert, and every output line is one JSON document.
//!
//! The reference is Python's `json` module (an independent full parse, lenient
//! where serde_json is strict), run over the same files; the property test's
//! reference is the generator's own knowledge of which records it made matching.
//!
//! The second pass, in submodules: bad neighbours (data after gzip members,
//! oversized records, elements that are not valid JSON) cost no good record
//! (`neighbours`), a record's size is not the process's memory (`memory`), a
//! window lets a worse match through and a redelivery is the same record
//! (`windows`), and the e-mail cannot be forged (`email`).

mod email;
mod memory;
mod neighbours;
mod windows;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig2, TestRng, TestRunner};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use trailwatch::config::Config;
use trailwatch::decode::Limits;
use trailwatch::dedup::MemoryStore;
use trailwatch::detect::Detector;
use trailwatch::handler::Handler;
use trailwatch::rule::RuleSet;
use trailwatch::sink::MemorySink;
use trailwatch::source::MemorySource;

use crate::support::fixtures::{gzip, log_file, s3_event};
use crate::support::stack;

const BUCKET: &str = "trail";

/// One successful export (`ok`) or failed one at `time`, with `extra` spliced in as
/// raw text.
fn record(id: &str, time: &str, ok: bool, extra: &str) -> String {
    let error = if ok {
        String::new()
    } else {
        r#""errorCode":"AccessDenied","#.to_owned()
    };
    format!(
        r#"{{"eventVersion":"1.08","eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventTime":"{time}","eventID":"{id}",{error}"awsRegion":"us-east-1","recipientAccountId":"123456789012","sourceIPAddress":"198.51.100.7",{extra},"requestParameters":{{"sourceArn":"arn:aws:rds:us-east-1:123456789012:snapshot:db-{id}","s3BucketName":"out"}}}}"#
    )
}

/// Every defect class, each in a matching record and in a failed (non-matching) one,
/// for log file `file`. Matching records are two hours apart, so each opens its own
/// dedup window and every one alerts.
fn defective_records(file: u32) -> Vec<String> {
    let deep = format!("{}0{}", "[".repeat(300), "]".repeat(300));
    let classes = [
        ("trailing-surrogate", r#""userAgent":"\udc00x""#.to_owned()),
        ("leading-surrogate", r#""userAgent":"\ud800""#.to_owned()),
        (
            "out-of-range",
            r#""userAgent":"a","additionalEventData":{"n":1e400}"#.to_owned(),
        ),
        (
            "deep",
            format!(r#""userAgent":"a","additionalEventData":{deep}"#),
        ),
        ("plain", r#""userAgent":"aws-cli/2""#.to_owned()),
    ];
    classes
        .iter()
        .enumerate()
        .flat_map(|(i, (name, extra))| {
            let time = format!("2024-03-{:02}T{:02}:00:00Z", 10 + file, 2 * i);
            [
                record(&format!("f{file}-{name}-ok"), &time, true, extra),
                record(&format!("f{file}-{name}-failed"), &time, false, extra),
            ]
        })
        .collect()
}

/// Re-lays valid-or-defective JSON text out with CRLF line breaks and indentation
/// between tokens (strings untouched), as an editor or `jq` would.
fn pretty_crlf(text: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        out.push(c);
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' | ',' => out.push_str("\r\n  "),
            ':' => out.push(' '),
            _ => {}
        }
    }
    out
}

/// The log files of the test: the defective records compact and gzipped, as plain
/// JSON after a UTF-8 byte-order mark, and pretty-printed with CRLF line endings.
fn log_files() -> Vec<(String, Vec<u8>)> {
    let document = |file| format!(r#"{{"Records":[{}]}}"#, defective_records(file).join(","));
    let key = |n: u32| {
        format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1000Z_hostile{n:09}.json.gz")
    };
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(document(2).as_bytes());
    vec![
        (key(1), gzip(document(1).as_bytes())),
        (key(2).replace(".json.gz", ".json"), bom),
        (key(3), gzip(pretty_crlf(&document(3)).as_bytes())),
    ]
}

/// The eventIDs Python's `json` module finds matching, per file (in file order).
fn python_matches(dir: &Path, names: &[String]) -> Vec<BTreeSet<String>> {
    let script = r#"
import gzip, json, sys
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    records = json.loads(data.decode("utf-8-sig"), strict=False)["Records"]
    ids = [r["eventID"] for r in records
           if r.get("eventSource") == "rds.amazonaws.com"
           and r.get("eventName") == "StartExportTask" and r.get("errorCode") is None]
    print(json.dumps(ids))
"#;
    python_json_lines::<Vec<String>>(script, dir, names)
        .into_iter()
        .map(|ids| ids.into_iter().collect())
        .collect()
}

/// Runs the Python `script` on the files `names` in `dir`: one JSON document per
/// line of its output (the oracles print one per file).
fn python_json_lines<T: serde::de::DeserializeOwned>(
    script: &str,
    dir: &Path,
    names: &[String],
) -> Vec<T> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(names.iter().map(|n| dir.join(n)))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The fields of an output line this test reads; parsing into it checks that the line
/// is exactly one JSON document (at any depth: `event` is kept raw).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    kind: String,
    event_id: String,
    #[serde(default)]
    parse_warnings: Vec<String>,
    event: Box<RawValue>,
}

fn parse_lines(stdout: &[u8]) -> Vec<Line> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one document ({e}): {l}")))
        .collect()
}

/// The expected alerts: every `-ok` record of every file, which Python's full parse
/// also finds matching.
fn expected(dir: &Path, names: &[String]) -> BTreeSet<String> {
    let python: BTreeSet<String> = python_matches(dir, names).into_iter().flatten().collect();
    let mine: BTreeSet<String> = (1..=3)
        .flat_map(defective_records)
        .filter_map(|r| {
            let id = r.split(r#""eventID":""#).nth(1)?.split('"').next()?;
            id.ends_with("-ok").then(|| id.to_owned())
        })
        .collect();
    assert_eq!(python, mine, "Python's full parse agrees");
    assert_eq!(mine.len(), 15);
    mine
}

/// Every line is one alert of an expected record, each expected record alerts once,
/// and exactly the defective ones carry `parseWarnings`.
fn check_lines(lines: &[Line], expected: &BTreeSet<String>) {
    let alerted: Vec<&str> = lines.iter().map(|l| l.event_id.as_str()).collect();
    assert_eq!(alerted.len(), expected.len(), "{alerted:?}");
    assert_eq!(
        alerted
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        *expected
    );
    for line in lines {
        assert_eq!(line.kind, "alert");
        let lenient = !line.event_id.contains("-plain-");
        assert_eq!(
            !line.parse_warnings.is_empty(),
            lenient,
            "{}",
            line.event_id
        );
        assert!(!line.event.get().contains('\n'), "event on one line");
    }
}

#[test]
fn scan_alerts_on_every_record_a_lenient_parser_matches() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for (key, bytes) in log_files() {
        let path = dir.path().join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        names.push(key);
    }
    let expected = expected(dir.path(), &names);
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["scan", "--format", "json", "--no-dedup", "--no-progress"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    check_lines(&parse_lines(&out.stdout), &expected);
    assert!(
        stderr.contains("lenient=18 "),
        "the 4 defective matches, and the 2 failed calls whose defect is in a field the rule reads (userAgent), x 3 files: {stderr}"
    );
    assert!(stderr.contains("errors=0 "), "{stderr}");
}

#[test]
fn invoke_alerts_on_every_record_a_lenient_parser_matches() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for (key, bytes) in log_files() {
        let path = dir.path().join(BUCKET).join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        names.push(key);
    }
    let expected = expected(&dir.path().join(BUCKET), &names);
    let event = dir.path().join("event.json");
    std::fs::write(&event, s3_event(BUCKET, &names).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["invoke", "--format", "json", "--objects"])
        .arg(dir.path())
        .arg(&event)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_lines(&parse_lines(&out.stdout), &expected);
}

#[tokio::test]
async fn the_handler_alerts_on_every_record_a_lenient_parser_matches() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = MemorySource::default();
    let mut names = Vec::new();
    for (key, bytes) in log_files() {
        let path = dir.path().join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        source = source.with(BUCKET, &key, bytes);
        names.push(key);
    }
    let expected = expected(dir.path(), &names);
    let sink = Arc::new(MemorySink::new());
    let handler = Handler::assemble(
        &Config::default(),
        RuleSet::embedded(),
        Arc::new(source),
        Arc::new(MemoryStore::new()),
        sink.clone(),
    );
    handler
        .handle(s3_event(BUCKET, &names))
        .await
        .expect("lenient records do not fail the invocation");
    let lines: Vec<Line> = sink
        .notifications()
        .iter()
        .map(|n| {
            assert!(!n.document.contains('\n'), "document on one line");
            serde_json::from_str(&n.document).expect("one document")
        })
        .collect();
    check_lines(&lines, &expected);
}

/// A string value with random defects: lone surrogates, escapes, control characters.
fn defective_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 /._-]{0,8}",
        Just(r"\udc00".to_owned()),
        Just(r"\ud800".to_owned()),
        Just(r"\ud83d\ude80".to_owned()),
        Just(r"\ud800\u0041".to_owned()),
        Just(r#"\""#.to_owned()),
        Just(r"\\".to_owned()),
        Just("\t".to_owned()),
        Just("é".to_owned()),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|p| format!("\"{}\"", p.concat()))
}

/// A number that may be out of `f64` range.
fn defective_number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..10_000).prop_map(|n| n.to_string()),
        (300u32..2000).prop_map(|e| format!("1e{e}")),
        (300u32..2000).prop_map(|e| format!("-2.5E+{e}")),
        (300u32..2000).prop_map(|e| format!("1e-{e}")),
    ]
}

/// A nested value of random depth around an inner value.
fn deep(inner: String, depth: usize, object: bool) -> String {
    if object {
        format!("{}{inner}{}", r#"{"k":"#.repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Records carrying the needle with random invalid escapes, numbers and depths:
    /// every one built to match alerts, every one built not to does not, and the
    /// neighbours are unaffected.
    #[test]
    fn no_defect_costs_an_alert(
        agent in defective_string(),
        number in defective_number(),
        depth in 0usize..400,
        object in any::<bool>(),
        ok in any::<bool>(),
    ) {
        let extra = format!(
            r#""userAgent":{agent},"additionalEventData":{}"#,
            deep(number, depth, object)
        );
        let time = "2024-03-15T10:00:00Z";
        let defective = record("d", time, ok, &extra);
        let good = record("g", time, true, r#""userAgent":"x""#);
        let doc = format!(r#"{{"Records":[{good},{defective},{good}]}}"#);
        let detector = Detector::new(RuleSet::embedded(), Limits::default());
        let report = detector.detect(doc.as_bytes(), "s3://trail/k");
        prop_assert!(report.error.is_none(), "{:?}", report.error);
        let ids: Vec<&str> = report.matches.iter().map(|m| m.event_id.as_str()).collect();
        let expected: Vec<&str> = if ok { vec!["g", "d", "g"] } else { vec!["g", "g"] };
        prop_assert_eq!(ids, expected);
        for m in &report.matches {
            let raw = m.raw.as_ref().map(|r| r.get()).unwrap_or_default();
            prop_assert!(serde_json::from_str::<&RawValue>(raw).is_ok());
            prop_assert!(!raw.contains('\n'));
        }
    }
}

/// A defective record as the property generates it: (must alert, text).
fn defective_record() -> impl Strategy<Value = (bool, String)> {
    (
        defective_string(),
        defective_number(),
        0usize..400,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(agent, number, depth, object, ok)| {
            let extra = format!(
                r#""userAgent":{agent},"additionalEventData":{}"#,
                deep(number, depth, object)
            );
            (ok, extra)
        })
}

/// Many random defective records in one file: the fast path, the path that parses
/// every record, and Python's lenient full parse find the same matches.
#[test]
fn fast_path_slow_path_and_python_agree_on_random_defects() {
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig2::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = defective_record();
    let mut records = Vec::new();
    let mut built_to_match = BTreeSet::new();
    for i in 0..300 {
        let (ok, extra) = strategy.new_tree(&mut runner).unwrap().current();
        let id = format!("r{i}");
        if ok {
            built_to_match.insert(id.clone());
        }
        records.push(record(&id, "2024-03-15T10:00:00Z", ok, &extra));
    }
    let document = format!(r#"{{"Records":[{}]}}"#, records.join(","));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("random.json.gz"), gzip(document.as_bytes())).unwrap();
    let python = python_matches(dir.path(), &["random.json.gz".to_owned()]).remove(0);
    assert_eq!(
        python, built_to_match,
        "Python's lenient parse matches what was built to"
    );
    let ids = |detector: Detector| -> BTreeSet<String> {
        let report = detector.detect(gzip(document.as_bytes()).as_slice(), "s3://trail/k");
        assert!(report.error.is_none(), "{:?}", report.error);
        assert!(
            report.lenient_records > 150,
            "mostly defective: {}",
            report.lenient_records
        );
        report.matches.into_iter().map(|m| m.event_id).collect()
    };
    let fast = Detector::new(RuleSet::embedded(), Limits::default());
    assert_eq!(ids(fast.clone()), python, "fast path");
    assert_eq!(ids(fast.without_prefilter()), python, "every record parsed");
}

/// Through SNS as AWS enforces it: a record with 300 kB fields still alerts, and
/// the server accepts the publish request (it refuses requests over 256 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_fields_still_alert_through_sns() {
    let stack = stack::Stack::start().await;
    let huge = "p".repeat(300_000);
    let mut export = stack::export_record("huge-1", "2024-05-01T10:00:00Z", "123456789012", "db");
    export["userAgent"] = json!(huge);
    export["requestParameters"]["s3Prefix"] = json!(huge);
    let key = stack::log_key("123456789012", "huge");
    stack.put_object(&key, log_file(&[export])).await;
    let handler: Handler = stack.handler(None);
    handler
        .handle(stack.s3_event(&[key]))
        .await
        .expect("the alert is published");
    let delivered = stack.drain().await;
    assert_eq!(delivered.len(), 1);
    let document = &delivered[0].document;
    assert_eq!(document["eventId"], "huge-1");
    assert_eq!(document["eventOmitted"], true);
    let cut = document["truncatedFields"].as_array().unwrap();
    assert!(
        cut.contains(&json!("userAgent")) && cut.contains(&json!("s3Prefix")),
        "{cut:?}"
    );
    for message in stack.published().await {
        let size = message.to_string().len();
        assert!(size <= 262_144, "published message of {size} bytes");
    }
}
