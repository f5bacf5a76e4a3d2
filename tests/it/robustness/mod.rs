//! Property tests: whatever the bytes, the JSON or the trigger event, nothing panics,
//! and the streaming scanner agrees with the full parse (`decode::reference`) on every
//! valid document. Plus gzip bombs: a small object that inflates past the cap ends
//! with the cap error after reading about as much as the cap, never the whole bomb.
//!
//! Case counts are bounded (`CASES`) so that the file runs in a few seconds in debug
//! builds; the generators are biased towards the inputs that matter here (the rule's
//! needles, JSON escapes, brackets and quotes), not uniform noise.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::support::fixtures::gzip;

use trailwatch::decode::reference::parse_all;
use trailwatch::decode::{DecodeError, Limits, Skipped};
use trailwatch::detect::{Detector, ObjectReport};
use trailwatch::rule::RuleSet;
use trailwatch::trigger::{parse_trigger, Trigger, TriggerError};

const CASES: u32 = 64;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // A failure prints its minimal case; no regression files are written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| Detector::new(RuleSet::embedded(), Limits::default()))
}

fn unfiltered() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| detector().clone().without_prefilter())
}

/// Counts that must hold for any report, whatever the input.
fn check_report(report: &ObjectReport) -> Result<(), TestCaseError> {
    let stats = &report.stats;
    prop_assert!(stats.candidates <= stats.records, "{stats:?}");
    prop_assert!(
        report.matches.len() as u64 <= stats.candidates * detector().rules.rules.len() as u64,
        "{} matches from {stats:?}",
        report.matches.len()
    );
    prop_assert!(report.invalid_records <= stats.candidates, "{stats:?}");
    Ok(())
}

// ---- bytes ----------------------------------------------------------------------

/// Pieces of CloudTrail-like JSON: shuffled, they make inputs that get past the first
/// byte and exercise the scanner's structure tracking.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    ",",
    ":",
    " ",
    "\n",
    "\\\"",
    "\\\\",
    "\\u0053",
    "\\u00",
    "{\"Records\":[",
    "]}",
    "\"Records\"",
    "\"R\\u0065cords\"",
    "\"eventSource\":",
    "\"eventName\":",
    "\"errorCode\":",
    "\"rds.amazonaws.com\"",
    "\"StartExportTask\"",
    "\"\\u0053tartExportTask\"",
    "null",
    "true",
    "1",
    "-0.5e3",
    "\"x\"",
    "{}",
    "[]",
];

fn fragment_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80)
        .prop_map(|parts| parts.concat().into_bytes())
}

/// A valid document with some bytes changed, removed or inserted.
fn mutated_document() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..6);
    (document(), edits).prop_map(|(doc, edits)| {
        let mut bytes = doc.text.into_bytes();
        for (at, kind, byte) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, byte),
            }
        }
        bytes
    })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        fragment_soup(),
        mutated_document(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in any_bytes()) {
        check_report(&detector().detect(bytes.as_slice(), "raw"))?;
        check_report(&unfiltered().detect(bytes.as_slice(), "raw"))?;
    }

    #[test]
    fn arbitrary_gzip_never_panics(bytes in any_bytes(), cut in any::<prop::sample::Index>(), members in 1usize..3) {
        let member = gzip(&bytes);
        let whole: Vec<u8> = member.iter().copied().cycle().take(member.len() * members).collect();
        check_report(&detector().detect(whole.as_slice(), "gzip"))?;
        // Cut anywhere: a stream cut inside a member is an error, never a panic.
        let at = cut.index(whole.len());
        let report = detector().detect(&whole[..at], "truncated");
        check_report(&report)?;
        if !at.is_multiple_of(member.len()) {
            prop_assert!(report.error.is_some(), "a gzip member cut at {} of {} must fail", at, member.len());
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_document_split_into_gzip_members_reads_as_one(
        doc in document(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        // CloudTrail may write multi-member gzip: the members' contents concatenate.
        let bytes = doc.text.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut object = Vec::new();
        let mut from = 0;
        for to in points.into_iter().chain([bytes.len()]) {
            object.extend(gzip(&bytes[from..to]));
            from = to;
        }
        agrees_with_reference(&object, detector())?;
    }
}

// ---- JSON documents --------------------------------------------------------------

/// Strings, biased towards the rule's literals and the characters JSON escapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "StartExportTask", "rds.amazonaws.com", "discovery.amazonaws.com", "StartExportTasks",
            "startexporttask", "rds:StartExportTask", "", "unknown", "Records", "\"}]{[\\",
            "AccessDenied", "2024-03-15T10:32:55Z", "123456789012", "us-east-1",
        ])
        .prop_map(str::to_owned),
        2 => "[a-zA-Z0-9 :./\"\\\\{}\\[\\],\t\n\u{e9}\u{1F680}]{0,16}",
        1 => any::<String>(),
    ]
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "eventSource", "eventName", "errorCode", "eventID", "eventTime", "awsRegion",
            "recipientAccountId", "userIdentity", "requestParameters", "responseElements", "Records",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A record that may match: the rule's fields with right and wrong values, plus noise.
fn record() -> impl Strategy<Value = Value> {
    let source = prop::sample::select(vec![
        Some(json!("rds.amazonaws.com")),
        Some(json!("discovery.amazonaws.com")),
        Some(json!("neptune-graph.amazonaws.com")),
        Some(json!(["rds.amazonaws.com"])),
        None,
    ]);
    let name = prop::sample::select(vec![
        Some(json!("StartExportTask")),
        Some(json!("StartExportTasks")),
        Some(json!("DescribeExportTasks")),
        Some(json!(null)),
        None,
    ]);
    let error_code = prop::sample::select(vec![
        None,
        Some(json!(null)),
        Some(json!("")),
        Some(json!("AccessDenied")),
        Some(json!(0)),
    ]);
    let extra = prop::collection::vec((member_name(), json_value()), 0..4);
    (source, name, error_code, extra).prop_map(|(source, name, error_code, extra)| {
        let mut record = Map::new();
        for (key, value) in extra {
            record.insert(key, value);
        }
        for (key, value) in [
            ("eventSource", source),
            ("eventName", name),
            ("errorCode", error_code),
        ] {
            if let Some(value) = value {
                record.insert(key.to_owned(), value);
            }
        }
        Value::Object(record)
    })
}

/// A document and its text, written with random escapes and whitespace.
#[derive(Debug, Clone)]
struct Document {
    text: String,
}

fn document() -> impl Strategy<Value = Document> {
    let element = prop_oneof![4 => record(), 1 => json_value()];
    let around = prop::collection::vec((member_name(), json_value()), 0..3);
    (around, prop::collection::vec(element, 0..10), any::<u64>()).prop_map(
        |(around, records, style)| {
            let mut root = Map::new();
            let split = around.len() / 2;
            for (key, value) in &around[..split] {
                root.insert(key.clone(), value.clone());
            }
            root.insert("Records".into(), Value::Array(records));
            for (key, value) in &around[split..] {
                if key != "Records" {
                    root.insert(key.clone(), value.clone());
                }
            }
            let mut writer = Writer {
                state: style | 1,
                out: String::new(),
            };
            writer.value(&Value::Object(root));
            Document { text: writer.out }
        },
    )
}

/// Serialises JSON like a careless but valid producer: some characters written as
/// `\uXXXX` escapes (surrogate pairs included), some whitespace between tokens.
struct Writer {
    state: u64,
    out: String,
}

impl Writer {
    fn roll(&mut self, one_in: u64) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state.is_multiple_of(one_in)
    }

    fn space(&mut self) {
        if self.roll(4) {
            let gap = if self.roll(2) { " " } else { "\n\t" };
            self.out.push_str(gap);
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let must = matches!(c, '"' | '\\') || (c as u32) < 0x20;
            if must || self.roll(5) {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    self.out.push_str(&format!("\\u{unit:04X}"));
                }
            } else {
                self.out.push(c);
            }
        }
        self.out.push('"');
    }

    fn value(&mut self, value: &Value) {
        self.space();
        match value {
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.value(item);
                }
                self.space();
                self.out.push(']');
            }
            Value::Object(members) => {
                self.out.push('{');
                for (i, (key, item)) in members.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.space();
                    self.string(key);
                    self.space();
                    self.out.push(':');
                    self.value(item);
                }
                self.space();
                self.out.push('}');
            }
            scalar => self.out.push_str(&scalar.to_string()),
        }
        self.space();
    }
}

/// The scanner against the reference parse of the same bytes: same records, same
/// skipped elements, and exactly the matches the rules give on the reference records.
fn agrees_with_reference(bytes: &[u8], detector: &Detector) -> Result<(), TestCaseError> {
    let reference = parse_all(bytes).map_err(|e| TestCaseError::fail(format!("reference: {e}")))?;
    let report = detector.detect(bytes, "doc");
    prop_assert!(report.error.is_none(), "{:?}", report.error);
    prop_assert_eq!(report.stats.records, reference.records.len() as u64);
    prop_assert_eq!(
        report.stats.non_object_records,
        reference.non_object_records
    );
    prop_assert_eq!(report.stats.records_arrays, reference.records_arrays);
    let rules = &detector.rules.rules;
    let expected: Vec<(usize, &Value)> = reference
        .records
        .iter()
        .flat_map(|record| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.matches(record))
                .map(move |(i, _)| (i, record))
        })
        .collect();
    prop_assert_eq!(report.matches.len(), expected.len(), "matches");
    for (found, (rule, record)) in report.matches.iter().zip(expected) {
        prop_assert_eq!(found.rule, rule);
        let event: Option<Value> = found
            .raw
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok());
        prop_assert_eq!(
            event.as_ref(),
            Some(record),
            "the match reports the whole record"
        );
    }
    check_report(&report)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_json_matches_the_reference_parse(doc in document()) {
        let bytes = doc.text.as_bytes();
        agrees_with_reference(bytes, detector())?;
        agrees_with_reference(bytes, unfiltered())?;
        agrees_with_reference(&gzip(bytes), detector())?;
    }

    #[test]
    fn arbitrary_values_as_records_never_panic(values in prop::collection::vec(json_value(), 0..8)) {
        let text = json!({ "Records": values }).to_string();
        agrees_with_reference(text.as_bytes(), detector())?;
    }
}

#[test]
fn the_document_generator_produces_matches() {
    // Guards the property above: a generator that never produced a match, an escape
    // or a skipped element would make it pass vacuously.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut matches, mut escapes, mut non_objects) = (0, 0, 0);
    for _ in 0..CASES {
        let doc = document().new_tree(&mut runner).unwrap().current();
        let report = detector().detect(doc.text.as_bytes(), "doc");
        matches += report.matches.len();
        escapes += usize::from(doc.text.contains("\\u"));
        non_objects += report.stats.non_object_records;
    }
    assert!(matches > 0, "no document matched");
    assert!(escapes > 0, "no document had escapes");
    assert!(non_objects > 0, "no document had non-object records");
}

// ---- gzip bombs ------------------------------------------------------------------

const MIB: u64 = 1 << 20;

/// `{"Records":[{"eventName":"<size bytes of fill>"}]}`, gzip-compressed.
fn bomb(size: usize, fill: u8) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(br#"{"Records":[{"eventName":""#).unwrap();
    let chunk = vec![fill; 1 << 16];
    for _ in 0..size / chunk.len() {
        encoder.write_all(&chunk).unwrap();
    }
    encoder.write_all(br#""}]}"#).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn a_gzip_bomb_stops_at_the_decompressed_cap() {
    for fill in [b'0', b' '] {
        let object = bomb(8 << 20, fill);
        assert!(object.len() < 100_000, "{} bytes compressed", object.len());
        let detector = Detector::new(
            RuleSet::embedded(),
            Limits {
                max_decompressed_bytes: MIB,
                ..Limits::default()
            },
        );
        let started = Instant::now();
        let report = detector.detect(object.as_slice(), "s3://bucket/bomb.json.gz");
        assert!(
            matches!(report.error, Some(DecodeError::TooLarge { limit }) if limit == MIB),
            "{:?}",
            report.error
        );
        // It stopped right after the cap (one read buffer at most), not at 8 MiB.
        assert!(report.stats.decoded_bytes > MIB, "{:?}", report.stats);
        assert!(report.stats.decoded_bytes <= 2 * MIB, "{:?}", report.stats);
        assert!(report.matches.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn one_huge_record_is_skipped_and_the_records_after_it_are_read() {
    // Under a generous decompression cap, memory is bounded by the record limit: the
    // scanner keeps at most one record's limit in its buffer, and a record over it
    // is skipped (counted, listed), not the end of the object.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(br#"{"Records":[{"eventName":""#).unwrap();
    let chunk = vec![b'0'; 1 << 16];
    for _ in 0..(8 << 20) / chunk.len() {
        encoder.write_all(&chunk).unwrap();
    }
    encoder
        .write_all(br#""},{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask"}]}"#)
        .unwrap();
    let object = encoder.finish().unwrap();
    let limits = Limits {
        max_decompressed_bytes: 64 * MIB,
        max_record_bytes: MIB as usize,
    };
    let report = Detector::new(RuleSet::embedded(), limits).detect(object.as_slice(), "bomb");
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.stats.records, 2);
    assert_eq!(report.stats.oversized_records, 1);
    assert_eq!(report.matches.len(), 1, "the record after it alerts");
    assert!(
        matches!(report.skipped[..], [Skipped::OversizedRecord { offset: 12, limit, .. }] if limit == MIB as usize),
        "{:?}",
        report.skipped
    );
}

#[test]
fn many_small_records_stream_until_the_cap() {
    // The bomb is made of ordinary records: they are counted as they stream past, and
    // the cap still ends the object.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(b"{\"Records\":[").unwrap();
    let record = format!("{{\"eventName\":\"{}\"}},", "0".repeat(1000));
    for _ in 0..16_000 {
        encoder.write_all(record.as_bytes()).unwrap();
    }
    encoder.write_all(b"{}]}").unwrap();
    let object = encoder.finish().unwrap();
    assert!(object.len() < 200_000, "{} bytes compressed", object.len());
    let limits = Limits {
        max_decompressed_bytes: 4 * MIB,
        max_record_bytes: 64 << 10,
    };
    let report = Detector::new(RuleSet::embedded(), limits).detect(object.as_slice(), "bomb");
    assert!(
        matches!(report.error, Some(DecodeError::TooLarge { .. })),
        "{:?}",
        report.error
    );
    let per_record = record.len() as u64;
    assert!(
        report.stats.records >= (4 * MIB - (512 << 10)) / per_record,
        "records streamed before the cap: {:?}",
        report.stats
    );
    assert!(
        report.stats.decoded_bytes <= 4 * MIB + (512 << 10),
        "{:?}",
        report.stats
    );
}

mod trigger_events;
