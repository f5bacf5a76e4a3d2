//! The three paths (the fast path, the detector without its prefilter, a full
//! parse followed by the rules) on the generated documents of the parent module:
//! they agree on every match and every count.

use super::*;
use trailwatch::detect::Match;
use trailwatch::rule::lookup;

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

/// (rule, eventID, record) of each match, in document order.
type Found = Vec<(usize, String, Value)>;

/// The whole record a match reports (its `event` text).
fn whole_record(m: &Match) -> Value {
    m.raw
        .as_ref()
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(Value::Null)
}

fn found(report: &ObjectReport) -> Found {
    report
        .matches
        .iter()
        .map(|m| (m.rule, m.event_id.clone(), whole_record(m)))
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
    let raw = |r: &ObjectReport| -> Vec<(usize, u64, Option<String>)> {
        r.matches
            .iter()
            .map(|m| (m.rule, m.offset, m.raw.as_ref().map(|r| r.get().to_owned())))
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
    // The fields a match carries read as in the whole record.
    let detector = Detector::new(rules.clone(), Limits::default());
    for m in &report.matches {
        let whole = whole_record(m);
        for path in detector.fields().paths() {
            let steps: Vec<&str> = path.split('.').collect();
            prop_assert_eq!(
                lookup(&m.record, &steps),
                lookup(&whole, &steps),
                "{}",
                path
            );
        }
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

/// `text` without the JSON whitespace between tokens (string contents kept).
fn without_token_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

proptest! {
    #![proptest_config(cases(384))]

    /// Valid documents: all three paths agree, and the records found are exactly
    /// the generated ones.
    #[test]
    fn fast_path_equals_full_parse(spec in doc_spec(), sizes in chunk_sizes(), gz in 0usize..3) {
        let (doc, record_texts) = document(&spec);
        let encoded = if gz == 0 { doc.clone().into_bytes() } else { gzip_members(doc.as_bytes(), gz) };
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
        // Each match is reported with the record as it was written, laid on one
        // line: only the whitespace between tokens is gone.
        for m in &fast.matches {
            prop_assert!(
                record_texts.iter().any(|t| Some(without_token_whitespace(t).as_str()) == m.raw.as_ref().map(|r| r.get())),
                "raw record not in the document: {:?}", m.raw
            );
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
            let raw = m.raw.as_ref().map_or("", |r| r.get());
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
