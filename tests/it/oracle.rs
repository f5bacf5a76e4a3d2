//! The alerts of `trailwatch scan` on generated CloudTrail corpora equal what SPEC §4
//! prescribes, computed here independently of the code under test: the expected
//! exports come from the generator's manifest (`support::corpus`), their times and
//! severities (SPEC §2) from a plain `serde_json::Value` parse of the files, and the
//! dedup table is re-implemented in a dozen lines below.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::corpus::{self, Manifest, Options};

const WINDOW_MS: i64 = 60 * 60 * 1000;

/// SPEC §2: a root caller, or a KMS key or role ARN of another account, is Critical.
fn is_critical(record: &Value) -> bool {
    let account = record["recipientAccountId"].as_str();
    let foreign = |field: &str| {
        record["requestParameters"][field]
            .as_str()
            .and_then(|arn| arn.strip_prefix("arn:"))
            .and_then(|rest| rest.split(':').nth(3))
            .is_some_and(|owner| !owner.is_empty() && Some(owner) != account)
    };
    record["userIdentity"]["type"] == "Root" || foreign("kmsKeyId") || foreign("iamRoleArn")
}

/// eventID -> (eventTime (ms), Critical), read with an ordinary full parse of every file.
fn event_times(dir: &Path, manifest: &Manifest) -> HashMap<String, (i64, bool)> {
    let mut times = HashMap::new();
    for file in &manifest.files {
        let path = dir.join(&file.file);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        for record in doc["Records"].as_array().unwrap() {
            let time = record["eventTime"].as_str().unwrap();
            times.insert(
                record["eventID"].as_str().unwrap().to_owned(),
                (parse_utc(time), is_critical(record)),
            );
        }
    }
    times
}

/// `YYYY-MM-DDTHH:MM:SSZ` to epoch milliseconds (days-from-civil, no library).
fn parse_utc(text: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000
}

/// SPEC §4 over matches sorted by (eventTime, eventID): returns the eventIDs that
/// alert and the suppressed count per opened window. (The generator's duplicates
/// are copies of their record: a redelivery is a seen eventID.) A Critical match
/// in a window that has sent only High alerts alerts too.
fn expected_alerts(
    manifest: &Manifest,
    times: &HashMap<String, (i64, bool)>,
) -> (BTreeSet<String>, u64, u64) {
    let mut matches: Vec<(i64, String, String, bool)> = manifest
        .alerts
        .iter()
        .map(|e| {
            let key = format!("{}:{}", e.aws_region, e.recipient_account_id);
            let (time, critical) = times[&e.event_id];
            (time, e.event_id.clone(), key, critical)
        })
        .collect();
    matches.sort();
    // key -> (window start, a Critical alert was sent)
    let mut open: BTreeMap<String, (i64, bool)> = BTreeMap::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let (mut alerts, mut suppressed, mut redeliveries) = (BTreeSet::new(), 0, 0);
    for (t, id, key, critical) in matches {
        if !seen.insert((key.clone(), id.clone())) {
            redeliveries += 1;
            continue;
        }
        match open.get_mut(&key) {
            Some((start, critical_sent)) if t >= *start && t < *start + WINDOW_MS => {
                if critical && !*critical_sent {
                    *critical_sent = true;
                    alerts.insert(id);
                } else {
                    suppressed += 1;
                }
            }
            _ => {
                open.insert(key, (t, critical));
                alerts.insert(id);
            }
        }
    }
    (alerts, suppressed, redeliveries)
}

fn scan(paths: &[PathBuf], extra: &[&str]) -> (Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(["scan", "--format", "json", "--no-progress"])
        .args(extra)
        .args(paths)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "scan failed: {stderr}");
    let docs = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut doc: Value = serde_json::from_str(l).unwrap();
            // The time of printing, the one member two scans differ in.
            doc.as_object_mut().map(|d| d.remove("alertLatencyMs"));
            doc
        })
        .collect();
    (docs, stderr)
}

fn summary_value(stderr: &str, name: &str) -> u64 {
    let field = format!("{name}=");
    stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&field))
        .unwrap_or_else(|| panic!("no {name} in {stderr}"))
        .parse()
        .unwrap()
}

fn check_corpus(seed: u64, dup_rate: f64) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        events: 12_000,
        files: 36,
        seed,
        export_rate: 0.003,
        dup_rate,
        ..Options::default()
    };
    let manifest = corpus::generate(dir.path(), &options).expect("generate the corpus");
    let times = event_times(dir.path(), &manifest);
    let (expected, suppressed, redeliveries) = expected_alerts(&manifest, &times);
    assert!(
        expected.len() >= 3,
        "the corpus should plant several windows"
    );

    let (docs, stderr) = scan(&[dir.path().to_path_buf()], &[]);
    let alerts: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "alert").collect();
    let got: BTreeSet<String> = alerts
        .iter()
        .map(|d| d["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expected, "alerting eventIDs differ from SPEC §4");
    assert_eq!(alerts.len(), expected.len(), "one alert per window");
    assert_eq!(summary_value(&stderr, "suppressed"), suppressed);
    assert_eq!(summary_value(&stderr, "redeliveries"), redeliveries);
    let rollups: u64 = docs
        .iter()
        .filter(|d| d["kind"] == "rollup")
        .map(|d| d["suppressed"].as_u64().unwrap())
        .sum();
    assert_eq!(rollups, suppressed, "roll-ups list every suppressed match");

    // No failed export, decoy or ordinary event alerts.
    let planted = manifest.distinct_alerts();
    assert!(got.is_subset(&planted));

    // Without dedup every distinct successful export alerts once per delivery.
    let (all, _) = scan(&[dir.path().to_path_buf()], &["--no-dedup"]);
    assert_eq!(all.len(), manifest.alerts.len());

    // The same alerts whatever the number of jobs and the order of the paths.
    let mut files: Vec<PathBuf> = manifest
        .files
        .iter()
        .map(|f| dir.path().join(&f.file))
        .collect();
    files.reverse();
    let (one_job, _) = scan(&files, &["--jobs", "1"]);
    files.rotate_left(7);
    let (four_jobs, _) = scan(&files, &["--jobs", "4"]);
    assert_eq!(one_job, docs);
    assert_eq!(four_jobs, docs);
}

#[test]
fn generated_corpus_alerts_as_the_spec_prescribes() {
    check_corpus(11, 0.0);
}

#[test]
fn generated_corpus_with_redeliveries_alerts_as_the_spec_prescribes() {
    check_corpus(12, 0.5);
}

#[test]
fn utc_parser_used_by_the_oracle() {
    assert_eq!(parse_utc("1970-01-01T00:00:00Z"), 0);
    assert_eq!(parse_utc("2024-01-15T10:30:00Z"), 1_705_314_600_000);
    assert_eq!(
        parse_utc("2024-03-01T00:00:01Z") - parse_utc("2024-02-29T00:00:01Z"),
        86_400_000
    );
}
