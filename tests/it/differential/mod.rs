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

use crate::support::fixtures::gzip_members;

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

mod agreement;
