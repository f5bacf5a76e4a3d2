//! The fast path against a full parse.
//!
//! `Detector::detect` only parses records that contain a rule's literal needle or a
//! JSON escape that could spell one, and it finds record boundaries with a bit-mask
//! scanner instead of a parser. Both shortcuts are only worth having if they never
//! change an answer. This test generates CloudTrail-like documents full of the
//! spellings that could fool them (escapes in keys and values, backslash runs and
//! escaped quotes around the needle and across 64-byte block boundaries, needles
//! split across reads, look-alike values, policy documents quoting the action,
//! nesting, pretty-printing, non-object elements, extra root members) and checks
//! that the fast path, the same detector without its prefilter, and a full
//! `serde_json` parse of the whole document followed by the rules all agree on
//! every match and every count. Mutated (mostly invalid) documents must not panic,
//! and wherever the full parse accepts them the answers must still agree.

use std::io::Read;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

use trailwatch::decode::reference::{self, FullParse};
use trailwatch::decode::Limits;
use trailwatch::detect::{Detector, ObjectReport};
use trailwatch::rule::{scalar_text, Rule, RuleSet};

/// A second rule whose needle contains `/`, so that `\/` escapes matter too, and
/// whose key is nested, so that a second needle and a second finder are in play.
const SLASH_RULE: &str = "\
RuleID: Test.SlashPrefix
Severity: Low
Detection:
  - DeepKey: [requestParameters, s3Prefix]
    Condition: Equals
    Value: exports/prod
";

fn rules() -> RuleSet {
    let mut rules = RuleSet::embedded();
    rules
        .rules
        .push(Rule::from_yaml("slash.yml", SLASH_RULE).expect("test rule parses"));
    rules
}

fn detector() -> Detector {
    Detector::new(rules(), Limits::default())
}

// ---------------------------------------------------------------------------
// Spelling: a tiny deterministic generator drives the many small choices (which
// character to escape, which whitespace), while proptest drives the structure.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Writes `text` as a JSON string literal. `escape_percent` is the chance that a
/// character which may appear raw is escaped anyway (`\uXXXX` in either case of hex,
/// a surrogate pair beyond the BMP, `\/` for a slash).
fn lit(out: &mut String, text: &str, rng: &mut Rng, escape_percent: u64) {
    out.push('"');
    for c in text.chars() {
        let forced = matches!(c, '"' | '\\') || (c as u32) < 0x20;
        if !forced && !rng.chance(escape_percent) {
            out.push(c);
            continue;
        }
        match c {
            '"' if rng.chance(70) => out.push_str("\\\""),
            '\\' if rng.chance(70) => out.push_str("\\\\"),
            '/' if rng.chance(60) => out.push_str("\\/"),
            '\n' if rng.chance(70) => out.push_str("\\n"),
            '\t' if rng.chance(70) => out.push_str("\\t"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if rng.chance(50) {
                        out.push_str(&format!("\\u{:04x}", unit));
                    } else {
                        out.push_str(&format!("\\u{:04X}", unit));
                    }
                }
            }
        }
    }
    out.push('"');
}

/// Whitespace between tokens: none in compact documents, any JSON whitespace in
/// pretty ones.
fn ws(out: &mut String, rng: &mut Rng, pretty: bool) {
    if pretty {
        out.push_str(rng.pick(&["", " ", "\n", "\t", "\r\n", "\n    ", "  "]));
    }
}

// ---------------------------------------------------------------------------
// Structure.

const SOURCES: &[&str] = &[
    "rds.amazonaws.com",
    "rds.amazonaws.com",
    "discovery.amazonaws.com",
    "neptune-graph.amazonaws.com",
    "iam.amazonaws.com",
    "rds.amazonaws.com ",
    "RDS.amazonaws.com",
];

const NAMES: &[&str] = &[
    "StartExportTask",
    "StartExportTask",
    "StartExportTasks",
    "startExportTask",
    "StartExportTas",
    " StartExportTask",
    "StartExportTask\n",
    "DescribeExportTasks",
    "CreateDBSnapshot",
    "Start\"ExportTask",
];

#[derive(Debug, Clone)]
enum ErrorCode {
    Absent,
    Null,
    Empty,
    Denied,
}

#[derive(Debug, Clone)]
enum Extra {
    /// An IAM policy document quoting the action and the match fields, as a string.
    Policy,
    /// A string of `len` filler bytes, then `backslashes` backslashes (and a quote
    /// or a letter to make the run legal), then the needle: moves backslash runs
    /// and needles across 64-byte block boundaries.
    Filler {
        len: usize,
        backslashes: usize,
        needle: bool,
    },
    /// Arrays and objects nested `depth` deep, with brackets inside strings and
    /// the match fields repeated at the wrong level.
    Nested { depth: usize },
    /// A CloudTrail LookupEvents query for the action.
    Lookup,
    /// `requestParameters.s3Prefix` (the slash rule's field), with every `/` written
    /// `\/` and nothing else escaped when `slashes` is set.
    Prefix { value: usize, slashes: bool },
    /// Scalars of every kind.
    Scalars,
    /// Non-ASCII text, raw and escaped.
    Unicode,
    /// The match field again: JSON keeps the last of duplicate keys.
    Duplicate { name: usize },
}

#[derive(Debug, Clone)]
struct RecordSpec {
    source: usize,
    name: usize,
    error: ErrorCode,
    extras: Vec<Extra>,
    /// Chance (percent) that a character of a key or value is escaped.
    escape_percent: u64,
    seed: u64,
}

#[derive(Debug, Clone)]
enum Element {
    Record(RecordSpec),
    /// Not an object: `null`, a number, a string, `true`, an array of records.
    Other(u8),
}

#[derive(Debug, Clone)]
struct DocSpec {
    before: Vec<u8>,
    elements: Vec<Element>,
    after: Vec<u8>,
    /// Spell `Records` with an escape.
    escaped_records_key: bool,
    /// A second `Records` member: 0 none, 1 an array, 2 an object, 3 a scalar.
    second_records: u8,
    /// The root is an array rather than an object (no records at all).
    root_array: bool,
    pretty: bool,
    seed: u64,
}

const PREFIXES: &[&str] = &[
    "exports/prod",
    "exports/prod/",
    "exports/pro",
    "exports\\/prod",
    "x/exports/prod",
];

fn record_spec() -> impl Strategy<Value = RecordSpec> {
    let error = prop_oneof![
        4 => Just(ErrorCode::Absent),
        1 => Just(ErrorCode::Null),
        1 => Just(ErrorCode::Empty),
        1 => Just(ErrorCode::Denied),
    ];
    let extra = prop_oneof![
        Just(Extra::Policy),
        (0usize..140, 0usize..10, any::<bool>()).prop_map(|(len, backslashes, needle)| {
            Extra::Filler {
                len,
                backslashes,
                needle,
            }
        }),
        (0usize..6).prop_map(|depth| Extra::Nested { depth }),
        Just(Extra::Lookup),
        (0..PREFIXES.len(), any::<bool>())
            .prop_map(|(value, slashes)| Extra::Prefix { value, slashes }),
        Just(Extra::Scalars),
        Just(Extra::Unicode),
        (0..NAMES.len()).prop_map(|name| Extra::Duplicate { name }),
    ];
    (
        0..SOURCES.len(),
        0..NAMES.len(),
        error,
        prop::collection::vec(extra, 0..5),
        prop_oneof![3 => Just(0u64), 1 => 1u64..30, 1 => Just(100u64)],
        any::<u64>(),
    )
        .prop_map(
            |(source, name, error, extras, escape_percent, seed)| RecordSpec {
                source,
                name,
                error,
                extras,
                escape_percent,
                seed,
            },
        )
}

fn doc_spec() -> impl Strategy<Value = DocSpec> {
    let element = prop_oneof![
        6 => record_spec().prop_map(Element::Record),
        1 => (0u8..6).prop_map(Element::Other),
    ];
    (
        prop::collection::vec(0u8..6, 0..3),
        prop::collection::vec(element, 0..10),
        prop::collection::vec(0u8..6, 0..3),
        any::<bool>(),
        0u8..4,
        prop::bool::weighted(0.05),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                before,
                elements,
                after,
                escaped_records_key,
                second_records,
                root_array,
                pretty,
                seed,
            )| DocSpec {
                before,
                elements,
                after,
                escaped_records_key,
                second_records,
                root_array,
                pretty,
                seed,
            },
        )
}

/// Writes one member `"key":value` where the value is already JSON text.
fn member(
    out: &mut String,
    key: &str,
    value: &str,
    rng: &mut Rng,
    escape_percent: u64,
    pretty: bool,
) {
    ws(out, rng, pretty);
    lit(out, key, rng, escape_percent);
    ws(out, rng, pretty);
    out.push(':');
    ws(out, rng, pretty);
    out.push_str(value);
    ws(out, rng, pretty);
}

fn string_value(text: &str, rng: &mut Rng, escape_percent: u64) -> String {
    let mut out = String::new();
    lit(&mut out, text, rng, escape_percent);
    out
}

fn nested(depth: usize, rng: &mut Rng, pretty: bool) -> String {
    if depth == 0 {
        return string_value(
            rng.pick(&["}{][", "\"eventName\":\"StartExportTask\"", "[{", "\\", ""]),
            rng,
            0,
        );
    }
    let inner = nested(depth - 1, rng, pretty);
    let mut out = String::new();
    if rng.chance(50) {
        out.push('[');
        ws(&mut out, rng, pretty);
        out.push_str(&inner);
        if rng.chance(50) {
            out.push(',');
            out.push_str(
                "{\"eventName\":\"StartExportTask\",\"eventSource\":\"rds.amazonaws.com\"}",
            );
        }
        ws(&mut out, rng, pretty);
        out.push(']');
    } else {
        out.push('{');
        member(&mut out, "eventName", &inner, rng, 0, pretty);
        out.push(',');
        member(&mut out, "k}", "[]", rng, 0, pretty);
        out.push('}');
    }
    out
}

/// The record's JSON text. Its members come in a shuffled order.
fn record_text(spec: &RecordSpec, index: usize, pretty: bool) -> String {
    let mut rng = Rng(spec.seed);
    let esc = spec.escape_percent;
    let mut members: Vec<(String, String)> = vec![
        ("eventVersion".into(), string_value("1.09", &mut rng, esc)),
        (
            "eventSource".into(),
            string_value(SOURCES[spec.source], &mut rng, esc),
        ),
        (
            "eventName".into(),
            string_value(NAMES[spec.name], &mut rng, esc),
        ),
        (
            "eventTime".into(),
            string_value(
                &format!("2024-03-15T10:{:02}:00Z", index % 60),
                &mut rng,
                esc,
            ),
        ),
        (
            "eventID".into(),
            string_value(
                &format!("ev-{index}-{:x}", spec.seed & 0xffff),
                &mut rng,
                esc,
            ),
        ),
        ("awsRegion".into(), string_value("us-east-1", &mut rng, esc)),
        (
            "recipientAccountId".into(),
            string_value("111122223333", &mut rng, esc),
        ),
    ];
    match spec.error {
        ErrorCode::Absent => {}
        ErrorCode::Null => members.push(("errorCode".into(), "null".into())),
        ErrorCode::Empty => members.push(("errorCode".into(), "\"\"".into())),
        ErrorCode::Denied => members.push((
            "errorCode".into(),
            string_value("AccessDenied", &mut rng, esc),
        )),
    }
    for (n, extra) in spec.extras.iter().enumerate() {
        let key = format!("extra{n}");
        let value = match extra {
            Extra::Policy => {
                let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["rds:StartExportTask"],"Condition":{"StringEquals":{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","s3Prefix":"exports/prod"}}}]}"#;
                format!("{{\"policyDocument\":{}}}", string_value(policy, &mut rng, esc))
            }
            Extra::Filler { len, backslashes, needle } => {
                // Raw JSON, not through `lit`, so the run is exactly this: an even
                // run is literal backslashes, an odd one escapes the quote after it.
                let quote = if backslashes % 2 == 1 { "\"" } else { "" };
                let needle = if *needle { "StartExportTask" } else { "" };
                format!("\"{}{}{quote}{needle}\"", "x".repeat(*len), "\\".repeat(*backslashes))
            }
            Extra::Nested { depth } => nested(*depth, &mut rng, pretty),
            Extra::Lookup => format!(
                "{{\"lookupAttributes\":[{{\"attributeKey\":\"EventName\",\"attributeValue\":{}}}]}}",
                string_value("StartExportTask", &mut rng, esc)
            ),
            Extra::Prefix { value, slashes } => {
                let prefix = if *slashes {
                    format!("\"{}\"", PREFIXES[*value].replace('\\', "\\\\").replace('/', "\\/"))
                } else {
                    string_value(PREFIXES[*value], &mut rng, esc)
                };
                members.push((
                    "requestParameters".into(),
                    format!("{{\"s3BucketName\":\"b\",\"s3Prefix\":{prefix}}}"),
                ));
                continue;
            }
            Extra::Scalars => "[0,-1.5e3,1E+2,true,false,null,\"\",{},[]]".into(),
            Extra::Unicode => string_value("Résumé – José 売上 🚀 ñ", &mut rng, esc),
            Extra::Duplicate { name } => {
                members.push(("eventName".into(), string_value(NAMES[*name], &mut rng, esc)));
                continue;
            }
        };
        members.push((key, value));
    }
    // Shuffle (Fisher-Yates). With duplicate keys the order decides the value,
    // which is the point: every path must pick the same one.
    let mut order: Vec<usize> = (0..members.len()).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut out = String::from("{");
    for (n, &i) in order.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let (key, value) = &members[i];
        member(&mut out, key, value, &mut rng, esc, pretty);
    }
    if members.is_empty() {
        ws(&mut out, &mut rng, pretty);
    }
    out.push('}');
    out
}

fn other_element(kind: u8, rng: &mut Rng) -> String {
    match kind {
        0 => "null".into(),
        1 => "-12.5e-3".into(),
        2 => string_value("{\"eventName\":\"StartExportTask\"}", rng, 10),
        3 => "true".into(),
        4 => "[{\"eventSource\":\"rds.amazonaws.com\",\"eventName\":\"StartExportTask\"}]".into(),
        _ => "[]".into(),
    }
}

fn root_member(kind: u8, rng: &mut Rng, pretty: bool) -> (String, String) {
    match kind {
        0 => ("Version".into(), string_value("1.0", rng, 0)),
        1 => ("n".into(), "123".into()),
        2 => (
            "Other".into(),
            "[{\"eventSource\":\"rds.amazonaws.com\",\"eventName\":\"StartExportTask\"}]".into(),
        ),
        3 => (
            "note".into(),
            string_value("\"Records\":[{\"eventName\":\"StartExportTask\"}]", rng, 5),
        ),
        4 => ("deep".into(), nested(3, rng, pretty)),
        _ => ("Records2".into(), "null".into()),
    }
}

/// The document's text and the exact text of each record it contains.
fn document(spec: &DocSpec) -> (String, Vec<String>) {
    let mut rng = Rng(spec.seed);
    let pretty = spec.pretty;
    let mut records = Vec::new();
    let mut elements = String::from("[");
    for (n, element) in spec.elements.iter().enumerate() {
        if n > 0 {
            elements.push(',');
        }
        ws(&mut elements, &mut rng, pretty);
        match element {
            Element::Record(r) => {
                let text = record_text(r, n, pretty);
                elements.push_str(&text);
                records.push(text);
            }
            Element::Other(kind) => elements.push_str(&other_element(*kind, &mut rng)),
        }
        ws(&mut elements, &mut rng, pretty);
    }
    elements.push(']');

    let mut members: Vec<(String, String)> = Vec::new();
    for &kind in &spec.before {
        members.push(root_member(kind, &mut rng, pretty));
    }
    members.push(("Records".into(), elements));
    match spec.second_records {
        1 => {
            let more = record_text(
                &RecordSpec {
                    source: 0,
                    name: 0,
                    error: ErrorCode::Absent,
                    extras: vec![],
                    escape_percent: 0,
                    seed: spec.seed ^ 1,
                },
                99,
                pretty,
            );
            members.push(("Records".into(), format!("[{more}]")));
            records.push(more);
        }
        2 => members.push((
            "Records".into(),
            "{\"a\":[{\"eventName\":\"StartExportTask\"}]}".into(),
        )),
        3 => members.push((
            "Records".into(),
            string_value("StartExportTask", &mut rng, 0),
        )),
        _ => {}
    }
    for &kind in &spec.after {
        members.push(root_member(kind, &mut rng, pretty));
    }

    let mut out = String::new();
    ws(&mut out, &mut rng, pretty);
    if spec.root_array {
        out.push('[');
        for (n, (_, value)) in members.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(value);
        }
        out.push(']');
        records.clear();
    } else {
        out.push('{');
        for (n, (key, value)) in members.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let esc = if spec.escaped_records_key && key == "Records" {
                100
            } else {
                0
            };
            member(&mut out, key, value, &mut rng, esc, pretty);
        }
        out.push('}');
    }
    ws(&mut out, &mut rng, pretty);
    (out, records)
}

// ---------------------------------------------------------------------------
// Running the three paths.

/// A reader that returns the bytes in chunks of the given sizes (cycled), so that
/// needles, escapes and records are split across reads.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    next: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self
            .sizes
            .get(self.next % self.sizes.len().max(1))
            .copied()
            .unwrap_or(4096);
        self.next += 1;
        let n = size.max(1).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn gzip(data: &[u8], members: usize) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let step = data.len().div_ceil(members.max(1)).max(1);
    for part in data.chunks(step) {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(part).expect("writing to a Vec");
        out.extend(enc.finish().expect("writing to a Vec"));
    }
    if data.is_empty() {
        out = gzip(b" ", 1);
    }
    out
}

/// (rule, eventID, record) of each match, in document order.
type Found = Vec<(usize, String, Value)>;

fn found(report: &ObjectReport) -> Found {
    report
        .matches
        .iter()
        .map(|m| (m.rule, m.event_id.clone(), m.record.clone()))
        .collect()
}

fn expected(full: &FullParse, rules: &RuleSet) -> Found {
    let mut out = Vec::new();
    for record in &full.records {
        for (i, rule) in rules.rules.iter().enumerate() {
            if rule.matches(record) {
                out.push((i, scalar_text(record.get("eventID")), record.clone()));
            }
        }
    }
    out
}

/// The checks that hold for every input, valid or not: the fast path and the full
/// per-record parse share the scanner, so they see the same records, and the
/// prefilter never hides a match.
fn check_fast_against_slow(fast: &ObjectReport, slow: &ObjectReport) -> Result<(), TestCaseError> {
    let raw = |r: &ObjectReport| -> Vec<(usize, u64, String)> {
        r.matches
            .iter()
            .map(|m| (m.rule, m.offset, m.raw.get().to_owned()))
            .collect()
    };
    prop_assert_eq!(raw(fast), raw(slow));
    prop_assert_eq!(found(fast), found(slow));
    let mut a = fast.stats;
    let mut b = slow.stats;
    prop_assert!(a.candidates <= b.candidates);
    a.candidates = 0;
    b.candidates = 0;
    if fast.error.is_some() || slow.error.is_some() {
        // Reading stops at the first structural error, and the fast path reads a
        // needle's length further ahead before it scans.
        a.decoded_bytes = 0;
        b.decoded_bytes = 0;
    }
    prop_assert_eq!(a, b);
    prop_assert!(fast.invalid_records <= slow.invalid_records);
    Ok(())
}

/// The checks that hold whenever the full parse accepts the document.
fn check_against_reference(
    report: &ObjectReport,
    full: &FullParse,
    rules: &RuleSet,
) -> Result<(), TestCaseError> {
    prop_assert!(
        report.error.is_none(),
        "the full parse accepts it, the scanner says {:?}",
        report.error
    );
    prop_assert_eq!(report.invalid_records, 0);
    prop_assert_eq!(found(report), expected(full, rules));
    for m in &report.matches {
        let reparsed: Value =
            serde_json::from_str(m.raw.get()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&reparsed, &m.record);
    }
    prop_assert_eq!(report.stats.records, full.records.len() as u64);
    prop_assert_eq!(report.stats.non_object_records, full.non_object_records);
    prop_assert_eq!(report.stats.records_arrays, full.records_arrays);
    prop_assert_eq!(report.stats.records_not_array, full.records_not_array);
    Ok(())
}

struct Run {
    fast: ObjectReport,
    slow: ObjectReport,
    full: Result<FullParse, trailwatch::decode::DecodeError>,
}

fn run_all(encoded: &[u8], sizes: &[usize]) -> Run {
    let det = detector();
    let fast = det.detect(
        Chunked {
            data: encoded,
            sizes,
            next: 0,
        },
        "t",
    );
    let slow = det.clone().without_prefilter().detect(
        Chunked {
            data: encoded,
            sizes,
            next: 7,
        },
        "t",
    );
    let full = reference::parse_all(encoded);
    Run { fast, slow, full }
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(vec![1usize]),
        2 => prop::collection::vec(1usize..80, 1..8),
        1 => prop::collection::vec(1usize..5000, 1..4),
        1 => Just(vec![1 << 20]),
    ]
}

/// `n` cases, or `PROPTEST_CASES` when set (for a longer run by hand).
fn cases(n: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(cases(384))]

    /// Valid documents: all three paths agree, and the records found are exactly
    /// the generated ones.
    #[test]
    fn fast_path_equals_full_parse(spec in doc_spec(), sizes in chunk_sizes(), gz in 0usize..3) {
        let (doc, record_texts) = document(&spec);
        let encoded = if gz == 0 { doc.clone().into_bytes() } else { gzip(doc.as_bytes(), gz) };
        let Run { fast, slow, full } = run_all(&encoded, &sizes);
        let full = match full {
            Ok(full) => full,
            Err(e) => return Err(TestCaseError::fail(format!("generated an invalid document ({e}):\n{doc}"))),
        };
        let rules = rules();
        check_fast_against_slow(&fast, &slow)?;
        check_against_reference(&fast, &full, &rules)?;
        check_against_reference(&slow, &full, &rules)?;
        prop_assert_eq!(full.records.len(), record_texts.len());
        // Each match is reported with the record exactly as it was written.
        for m in &fast.matches {
            prop_assert!(record_texts.iter().any(|t| t == m.raw.get()), "raw record not in the document: {}", m.raw.get());
        }
    }

    /// Mutated documents: no panic; the fast path never differs from parsing
    /// every record; where the full parse accepts the document, all agree.
    #[test]
    fn mutated_documents_agree_or_fail(
        spec in doc_spec(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), 0u8..6, any::<u8>()), 1..4),
        sizes in chunk_sizes(),
    ) {
        let (doc, _) = document(&spec);
        let mut bytes = doc.into_bytes();
        for (at, kind, byte) in mutations {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            const STRUCTURAL: &[u8] = b"\"\\{}[],:u0 \n/\xff";
            let b = STRUCTURAL[byte as usize % STRUCTURAL.len()];
            match kind {
                0 => { bytes.remove(i); }
                1 => bytes.insert(i, b),
                2 => bytes[i] = b,
                3 => bytes.truncate(i),
                4 => {
                    let end = (i + byte as usize % 40).min(bytes.len());
                    let copy = bytes[i..end].to_vec();
                    bytes.splice(i..i, copy);
                }
                _ => {
                    let end = (i + byte as usize % 8).min(bytes.len());
                    bytes.drain(i..end);
                }
            }
        }
        let Run { fast, slow, full } = run_all(&bytes, &sizes);
        check_fast_against_slow(&fast, &slow)?;
        if let Ok(full) = full {
            let rules = rules();
            check_against_reference(&fast, &full, &rules)?;
            check_against_reference(&slow, &full, &rules)?;
        }
    }
}

/// Backslash runs of every length right before the needle and a quote, at every
/// offset of a 64-byte block, in both the value and the key.
#[test]
fn backslash_runs_at_every_block_offset() {
    let rules = rules();
    let det = detector();
    for pad in 0..130 {
        for run in 0..9 {
            let filler = "x".repeat(pad);
            let slashes = "\\".repeat(run);
            // An odd run escapes the quote that follows; an even run is literal.
            let tail = if run % 2 == 1 { "\"" } else { "" };
            let docs = [
                format!(
                    r#"{{"Records":[{{"f":"{filler}{slashes}{tail}","eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventID":"a"}},{{"eventName":"x{slashes}{tail}\u0053tartExportTask","eventSource":"rds.amazonaws.com"}}]}}"#
                ),
                format!(
                    r#"{{"Records":[{{"{filler}{slashes}{tail}":1,"event\u004eame":"\u0053tartExportTask","eventSource":"rds\u002eamazonaws.com","eventID":"b"}}]}}"#
                ),
                format!(
                    r#"{{"Records":[{{"g":"{filler}{slashes}{tail}\\u0053tartExportTask","eventName":"Start{slashes}{tail}ExportTask","eventSource":"rds.amazonaws.com"}}]}}"#
                ),
            ];
            for doc in &docs {
                for sizes in [&[1usize][..], &[63, 64, 65], &[1 << 20]] {
                    let fast = det.detect(
                        Chunked {
                            data: doc.as_bytes(),
                            sizes,
                            next: 0,
                        },
                        "t",
                    );
                    let slow = det.clone().without_prefilter().detect(doc.as_bytes(), "t");
                    let full = reference::parse_document(doc.as_bytes()).expect("valid document");
                    let expect = expected(&full, &rules);
                    assert_eq!(found(&fast), expect, "pad {pad} run {run}: {doc}");
                    assert_eq!(found(&slow), expect, "pad {pad} run {run}: {doc}");
                    assert!(fast.error.is_none(), "{:?}", fast.error);
                }
            }
        }
    }
}

/// The corner the prefilter's argument rests on: a match spelled with no literal
/// needle at all, only escapes, in every position relative to a read boundary.
#[test]
fn fully_escaped_match_split_at_every_byte() {
    let mut value = String::new();
    lit(&mut value, "StartExportTask", &mut Rng(1), 100);
    let doc = format!(
        r#"{{"Records":[{{"eventName":"Other"}},{{"eventSource":"rds.amazonaws.com","eventName":{value},"eventID":"z"}},{{"requestParameters":{{"s3Prefix":"exports\/prod"}}}}]}}"#
    );
    let det = detector();
    let full = reference::parse_document(doc.as_bytes()).expect("valid document");
    let expect = expected(&full, &rules());
    assert_eq!(expect.len(), 2, "the escaped action and the escaped prefix");
    for first in 1..doc.len() {
        let sizes = [first, 1 << 20];
        let fast = det.detect(
            Chunked {
                data: doc.as_bytes(),
                sizes: &sizes,
                next: 0,
            },
            "t",
        );
        assert_eq!(found(&fast), expect, "split at {first}");
        assert_eq!(fast.stats.records, 3);
    }
}

/// The generator must keep producing what the properties need: documents with
/// matches of each rule, with near misses, and with matches spelled only with
/// escapes. (A generator that drifted into producing none would make the
/// properties above pass vacuously.)
#[test]
fn the_generator_covers_matches_and_near_misses() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let rules = rules();
    let det = detector();
    let mut runner = TestRunner::deterministic();
    let (mut docs, mut rds, mut slash, mut near, mut escaped_only) = (0, 0, 0, 0, 0);
    for _ in 0..400 {
        let spec = doc_spec().new_tree(&mut runner).expect("a spec").current();
        let (doc, _) = document(&spec);
        let full = reference::parse_document(doc.as_bytes()).expect("valid document");
        let found = expected(&full, &rules);
        docs += 1;
        rds += usize::from(found.iter().any(|(rule, _, _)| *rule == 0));
        slash += usize::from(found.iter().any(|(rule, _, _)| *rule == 1));
        let report = det.detect(doc.as_bytes(), "t");
        near += usize::from(report.stats.candidates > report.matches.len() as u64);
        escaped_only += usize::from(report.matches.iter().any(|m| {
            let raw = m.raw.get();
            !raw.contains("StartExportTask") && !raw.contains("exports/prod")
        }));
    }
    eprintln!("{docs} documents: RDS matches in {rds}, slash-rule matches in {slash}, near misses in {near}, escape-only matches in {escaped_only}");
    assert!(rds * 4 > docs, "RDS matches in {rds} of {docs}");
    assert!(slash * 20 > docs, "slash-rule matches in {slash} of {docs}");
    assert!(near * 4 > docs, "near misses in {near} of {docs}");
    assert!(
        escaped_only * 50 > docs,
        "escape-only matches in {escaped_only} of {docs}"
    );
}
