//! The seeded corpus generator (`support::corpus`) is what the oracle tests and the
//! benchmarks trust: its manifest must say exactly what its files hold.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::support::corpus::{self, Manifest, Options};

fn options(seed: u64) -> Options {
    Options {
        events: 6000,
        files: 24,
        seed,
        export_rate: 0.01,
        dup_rate: 0.5,
        ..Options::default()
    }
}

fn text_of(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Every file of the corpus, relative path -> bytes, manifest included.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn one_seed_gives_byte_identical_output_and_another_seed_does_not() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let first = corpus::generate(a.path(), &options(3)).unwrap();
    let second = corpus::generate(b.path(), &options(3)).unwrap();
    let other = corpus::generate(c.path(), &options(4)).unwrap();
    assert_eq!(first, second);
    let (tree_a, tree_b) = (tree(a.path()), tree(b.path()));
    assert_eq!(tree_a.len(), 25, "24 files and the manifest");
    assert!(tree_a == tree_b, "same seed, different bytes");
    assert_ne!(first.files, other.files);
    assert_ne!(tree_a, tree(c.path()));
}

/// Classifies every record of the corpus the way the rule sees it, with a full parse.
#[test]
fn the_manifest_lists_exactly_the_planted_records() {
    let dir = tempfile::tempdir().unwrap();
    let manifest: Manifest = corpus::generate(dir.path(), &options(5)).unwrap();
    let written: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(written, serde_json::to_value(&manifest).unwrap());

    let (mut alerts, mut failed, mut decoys) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    // Index of the latest file of each (account, region).
    let mut latest: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    for (index, file) in manifest.files.iter().enumerate() {
        let text = text_of(&dir.path().join(&file.file));
        assert_eq!(text.len() as u64, file.bytes_uncompressed, "{}", file.file);
        let records = serde_json::from_str::<Value>(&text).unwrap()["Records"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(records.len(), file.events, "{}", file.file);
        // AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<time>_<16>.json.gz
        let parts: Vec<&str> = file.file.split('/').collect();
        assert_eq!(parts.len(), 8, "{}", file.file);
        assert_eq!((parts[0], parts[2]), ("AWSLogs", "CloudTrail"));
        let (account, region) = (parts[1], parts[3]);
        let previous = latest.insert((account.to_owned(), region.to_owned()), index);
        let name = format!(
            "{account}_CloudTrail_{region}_{}{}{}T",
            parts[4], parts[5], parts[6]
        );
        assert!(parts[7].starts_with(&name), "{}", file.file);
        assert!(parts[7].ends_with(".json.gz") && parts[7].len() == name.len() + 5 + 1 + 16 + 8);

        for record in &records {
            assert_eq!(record["recipientAccountId"], account);
            let global = matches!(
                record["eventSource"].as_str(),
                Some("iam.amazonaws.com" | "signin.amazonaws.com")
            );
            assert_eq!(
                record["awsRegion"],
                if global { "us-east-1" } else { region }
            );
            sources.insert(record["eventSource"].as_str().unwrap().to_owned());
            let id = record["eventID"].as_str().unwrap().to_owned();
            let compact = record.to_string();
            if let Some((earlier, text)) = first_seen.get(&id) {
                // A redelivery: the identical record, in the next file of its trail prefix.
                assert_eq!(Some(*earlier), previous, "{id}");
                assert_eq!(*text, compact, "{id}");
            } else {
                first_seen.insert(id.clone(), (index, compact.clone()));
            }
            let export = record["eventSource"] == "rds.amazonaws.com"
                && record["eventName"] == "StartExportTask";
            if export && record["errorCode"].is_null() {
                alerts.push(id);
            } else if export {
                failed.push(id);
            } else if compact.contains("StartExportTask") {
                decoys.push(id);
            }
        }
    }
    let ids = |entries: &[corpus::Planted]| -> Vec<String> {
        entries.iter().map(|e| e.event_id.clone()).collect()
    };
    assert_eq!(alerts, ids(&manifest.alerts), "successful exports");
    assert_eq!(failed, ids(&manifest.failed), "failed exports");
    assert_eq!(decoys, ids(&manifest.decoys), "decoys");
    assert!(manifest.failed.iter().all(|e| e.error_code.is_some()));
    assert!(manifest.alerts.iter().any(|e| e.duplicate), "dup-rate 0.5");
    let decoy_sources: BTreeSet<&str> = manifest
        .decoys
        .iter()
        .map(|e| e.event_source.as_str())
        .collect();
    assert_eq!(
        decoy_sources,
        BTreeSet::from([
            "cloudtrail.amazonaws.com",
            "discovery.amazonaws.com",
            "iam.amazonaws.com"
        ])
    );
    assert!(sources.len() >= 9, "many services: {sources:?}");
}

#[test]
fn strings_need_escapes_and_file_sizes_vary() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = corpus::generate(dir.path(), &options(6)).unwrap();
    let all: String = manifest
        .files
        .iter()
        .map(|f| text_of(&dir.path().join(&f.file)))
        .collect();
    for needle in ["\\\"", "\\\\", "\\t", "季度", "ü", "✅"] {
        assert!(all.contains(needle), "no {needle:?} in the corpus");
    }
    let sizes: Vec<usize> = manifest.files.iter().map(|f| f.events).collect();
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(*max > 4 * (*min).max(1), "log-normal sizes: {sizes:?}");
    assert_eq!(
        manifest.records(),
        6000 + manifest.alerts.iter().filter(|a| a.duplicate).count()
    );
}
