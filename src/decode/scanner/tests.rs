//! The record splitter's tests: exact splitting, shapes that are not records,
//! structural errors, limits, and every kernel finding the same records.

use std::io::Write;

use super::*;

fn candidates(input: &[u8], prefilter: &Prefilter) -> (Vec<String>, ScanOutcome) {
    let mut out = Vec::new();
    let outcome = scan_records(input, prefilter, &Limits::default(), |_, rec| {
        out.push(String::from_utf8_lossy(rec).into_owned())
    });
    (out, outcome)
}

#[test]
fn splits_records_exactly_through_strings_and_escapes() {
    let doc = br#"{"Records":[{"a":"}{]["},{"b":"\"}\\"},{"c":{"d":[1,{"e":"\\\""}]}}]}"#;
    let (recs, outcome) = candidates(doc, &Prefilter::everything());
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(
        recs,
        vec![
            r#"{"a":"}{]["}"#,
            r#"{"b":"\"}\\"}"#,
            r#"{"c":{"d":[1,{"e":"\\\""}]}}"#
        ]
    );
    assert_eq!(outcome.stats.records, 3);
    assert_eq!(outcome.stats.records_arrays, 1);
}

#[test]
fn escape_runs_across_block_boundaries() {
    for pad in 0..70 {
        let filler = "x".repeat(pad);
        let doc = format!(r#"{{"Records":[{{"a":"{filler}\\\\"}},{{"b":"{filler}\\\"}}"}}]}}"#);
        let (recs, outcome) = candidates(doc.as_bytes(), &Prefilter::everything());
        assert!(outcome.error.is_none(), "pad {pad}: {:?}", outcome.error);
        assert_eq!(recs.len(), 2, "pad {pad}");
        for rec in &recs {
            serde_json::from_str::<serde_json::Value>(rec).unwrap();
        }
    }
}

#[test]
fn counts_shapes_that_are_not_records() {
    let doc = br#"{"x":1,"Other":[{"a":1}],"Records":[1,"s",{"a":2},[{"z":1}],null,{"b":3}],"Records":{"c":1}}"#;
    let (recs, outcome) = candidates(doc, &Prefilter::everything());
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(recs, vec![r#"{"a":2}"#, r#"{"b":3}"#]);
    assert_eq!(outcome.stats.non_object_records, 4);
    assert_eq!(outcome.stats.records_not_array, 1);
    let (_, scalar) = candidates(br#"{"Records":5}"#, &Prefilter::everything());
    assert_eq!(scalar.stats.records_not_array, 1);
    assert_eq!(scalar.stats.records_arrays, 0);
    let (_, none) = candidates(br#"{"foo":[{"a":1}]}"#, &Prefilter::everything());
    assert!(none.error.is_none());
    assert_eq!(none.stats.records_arrays, 0);
    assert_eq!(none.stats.records, 0);
}

#[test]
fn escaped_member_names_are_decoded() {
    let (recs, outcome) = candidates(br#"{"R\u0065cords":[{"a":1}]}"#, &Prefilter::everything());
    assert!(outcome.error.is_none());
    assert_eq!(recs.len(), 1);
}

#[test]
fn structural_errors_are_reported() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty"),
        (b"   ", "empty"),
        (b"hello", "not gzip and not JSON"),
        (br#"{"Records":[{"a":1}"#, "truncated"),
        (br#"{"Records":[{"a":"1}]}"#, "truncated"),
        (br#"{"Records":[{"a":1]]}"#, "mismatched"),
        (br#"{"Records":[]}}"#, "unbalanced"),
        (br#"{"Records":[]} x"#, "trailing data"),
        (br#"{"Records":[]}{}"#, "trailing data"),
        (br#"{"Records" [{"a":1}]}"#, "expected ':'"),
    ];
    for (input, expected) in cases {
        let (_, outcome) = candidates(input, &Prefilter::everything());
        let message = outcome.error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains(expected),
            "{:?}: {message}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn good_records_before_an_error_are_delivered() {
    let doc = br#"{"Records":[{"a":1},{"b":2},{"c":"#;
    let (recs, outcome) = candidates(doc, &Prefilter::everything());
    assert_eq!(recs.len(), 2);
    assert!(outcome.error.is_some());
}

/// Records and oversized records as a [`RecordSink`] sees them.
#[derive(Default)]
struct Collect {
    records: Vec<(u64, String)>,
    heads: Vec<(u64, usize)>,
    ends: Vec<(u64, u64, bool)>,
}

impl RecordSink for &mut Collect {
    fn candidate(&mut self, offset: u64, record: &[u8]) {
        self.records
            .push((offset, String::from_utf8_lossy(record).into_owned()));
    }
    fn oversized_head(&mut self, offset: u64, head: &[u8]) {
        assert_eq!(head[0], b'{', "the head starts the record");
        self.heads.push((offset, head.len()));
    }
    fn oversized_end(&mut self, offset: u64, len: u64, candidate: bool) {
        self.ends.push((offset, len, candidate));
    }
}

#[test]
fn a_record_over_the_limit_is_skipped_and_the_scan_goes_on() {
    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(2 << 20));
    let needle = format!(
        r#"{{"eventName":"StartExportTask","a":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let limits = Limits {
        max_record_bytes: 1 << 20,
        ..Limits::default()
    };
    let rules = crate::rule::RuleSet::embedded();
    let prefilter = Prefilter::for_rules(&rules.rules);
    let doc = format!(
        r#"{{"Records":[{{"eventName":"StartExportTask","n":1}},{big},{{"eventName":"StartExportTask","n":2}},{needle},{{"eventName":"StartExportTask","n":3}}]}}"#
    );
    for chunk in [1000, 1 << 20] {
        let mut sink = Collect::default();
        let outcome = scan_with(
            super::kernel::Choice::Auto,
            Chunks(doc.as_bytes(), chunk),
            &prefilter,
            &limits,
            &mut sink,
        );
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let numbers: Vec<&str> = sink
            .records
            .iter()
            .map(|(_, r)| &r[r.len() - 2..r.len() - 1])
            .collect();
        assert_eq!(numbers, ["1", "2", "3"], "the records around them are read");
        assert_eq!(outcome.stats.records, 5);
        assert_eq!(outcome.stats.oversized_records, 2);
        assert_eq!(
            outcome.stats.candidates, 4,
            "the oversized one with a needle counts"
        );
        let big_at = doc.find(&big).unwrap() as u64;
        let needle_at = doc.find(&needle).unwrap() as u64;
        assert_eq!(sink.heads, [(big_at, 1 << 20), (needle_at, 1 << 20)]);
        assert_eq!(
            sink.ends,
            [
                (big_at, big.len() as u64, false),
                (needle_at, needle.len() as u64, true)
            ]
        );
        assert_eq!(
            outcome.skipped,
            [Skipped::OversizedRecord {
                offset: big_at,
                len: big.len() as u64,
                limit: 1 << 20
            }],
            "only the one without a needle is listed as skipped"
        );
    }
    // Text between records cannot be skipped that way: it must be read.
    let root = format!(r#"{{"x":"{}","Records":[]}}"#, "x".repeat(2 << 20));
    let outcome = scan_records(
        root.as_bytes(),
        &Prefilter::everything(),
        &limits,
        |_, _| {},
    );
    assert!(
        matches!(outcome.error, Some(DecodeError::RecordTooLarge { .. })),
        "{:?}",
        outcome.error
    );
}

#[test]
fn elements_and_members_that_are_not_valid_json_are_skipped() {
    let doc = "{\"a\":NaN,\"\\udc00\":1,\"Records\":[{\"n\":1},NaN,-Infinity,\"\\ud800\",\"raw\ttab\",tru,{\"n\":2}],\"z\":Infinity}";
    let (recs, outcome) = candidates(doc.as_bytes(), &Prefilter::everything());
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(recs, [r#"{"n":1}"#, r#"{"n":2}"#]);
    assert_eq!(outcome.stats.non_object_records, 5);
    assert_eq!(outcome.stats.invalid_elements, 8);
    let listed: Vec<String> = outcome.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(listed.len(), 8, "{listed:?}");
    assert!(
        listed[0].starts_with("byte 5: value of member \"a\": \"NaN\" is not valid JSON"),
        "{listed:?}"
    );
    assert!(
        listed.iter().any(|l| l.contains("member name")),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|l| l.contains(r"raw\ttab") && !l.contains('\t')),
        "shown escaped: {listed:?}"
    );
    // A broken structure still stops the scan.
    let (_, broken) = candidates(br#"{"Records":[{"n":1}],NaN}"#, &Prefilter::everything());
    assert!(broken.error.is_some());
}

#[test]
fn records_decoded_before_a_stream_failure_are_delivered() {
    // The last record ends in the final bytes before the failure: delivered.
    struct FailsAfter<'a>(&'a [u8]);
    impl Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("reset"));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let doc = br#"{"Records":[{"a":1},{"b":2}"#;
    let mut found = Vec::new();
    let outcome = scan_records(
        FailsAfter(doc),
        &Prefilter::everything(),
        &Limits::default(),
        |_, r| found.push(String::from_utf8_lossy(r).into_owned()),
    );
    assert_eq!(found, [r#"{"a":1}"#, r#"{"b":2}"#]);
    assert!(
        matches!(outcome.error, Some(DecodeError::Io(_))),
        "{:?}",
        outcome.error
    );
}

#[test]
fn trailing_data_after_the_last_gzip_member_is_listed_after_every_record() {
    let doc = br#"{"Records":[{"a":1},{"b":2},{"c":3}]}"#;
    let member = crate::decode::test_gzip(doc);
    let mut object = member.clone();
    object.extend(b"\x00\x00garbage");
    let (recs, outcome) = candidates(&object, &Prefilter::everything());
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(recs.len(), 3, "the last record too");
    assert!(outcome.stats.trailing_data);
    assert_eq!(
        outcome.skipped,
        [Skipped::TrailingData {
            at: member.len() as u64
        }]
    );
}

#[test]
fn needles_split_across_reads_are_found() {
    // A reader that returns one byte at a time splits every needle.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let rules = crate::rule::RuleSet::embedded();
    let prefilter = Prefilter::for_rules(&rules.rules);
    let doc =
        br#"{"Records":[{"eventName":"Other"},{"eventName":"StartExportTask"},{"x":"\u0041"}]}"#;
    let mut found = Vec::new();
    let outcome = scan_records(Trickle(doc), &prefilter, &Limits::default(), |_, r| {
        found.push(String::from_utf8_lossy(r).into_owned())
    });
    assert!(outcome.error.is_none());
    assert_eq!(
        found,
        vec![r#"{"eventName":"StartExportTask"}"#, r#"{"x":"\u0041"}"#]
    );
    assert_eq!(outcome.stats.records, 3);
}

#[test]
fn needles_are_found_at_every_offset_up_to_the_last_byte() {
    let rules = crate::rule::RuleSet::embedded();
    let prefilter = Prefilter::for_rules(&rules.rules);
    let needle = prefilter.needles().next().unwrap().to_vec();
    let needle = String::from_utf8(needle).unwrap();
    let near_miss = &needle[..needle.len() - 1];
    for pad in 0..140 {
        let filler = "x".repeat(pad);
        for (value, expected) in [(needle.as_str(), 1), (near_miss, 0)] {
            // The needle ends the last record, then the document ends: its last
            // bytes are in the stream's final, partial block.
            let doc = format!(r#"{{"Records":[{{"a":1}},{{"b":"{filler}{value}"}}]}}"#);
            let (recs, outcome) = candidates(doc.as_bytes(), &prefilter);
            assert!(outcome.error.is_none(), "pad {pad}: {:?}", outcome.error);
            assert_eq!(recs.len(), expected, "pad {pad}, {value}");
            let mut found = 0;
            let outcome = scan_records(
                Chunks(doc.as_bytes(), pad % 7 + 1),
                &prefilter,
                &Limits::default(),
                |_, _| found += 1,
            );
            assert!(outcome.error.is_none());
            assert_eq!(found, expected, "pad {pad}, {value}, in chunks");
        }
    }
}

/// Documents with strings, escapes, backslash runs and brackets at every
/// offset of a block, read whole and a few bytes at a time.
fn tricky_documents() -> Vec<Vec<u8>> {
    let mut docs = Vec::new();
    for pad in 0..70 {
        let filler = "x".repeat(pad);
        for run in 0..6 {
            let slashes = "\\".repeat(run);
            let tail = if run % 2 == 1 { "\"" } else { "" };
            docs.push(
                format!(
                    r#"{{"a":"{filler}","Records":[{{"k":"{filler}{slashes}{tail}]}}[","eventName":"StartExportTask"}},7,{{"{filler}":[{{"z":"\u0041{slashes}{tail}"}}],"q":"{slashes}{tail}"}},"s{filler}",{{"x":"{{[\/"}}],"b":[{{"c":1}}]}}"#
                )
                .into_bytes(),
            );
        }
    }
    docs
}

struct Chunks<'a>(&'a [u8], usize);
impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn every_kernel_finds_the_same_records() {
    use super::kernel::Choice;
    let rules = crate::rule::RuleSet::embedded();
    let prefilters = [Prefilter::everything(), Prefilter::for_rules(&rules.rules)];
    // The pinned kernels this CPU can run; the others are reported, not tested
    // quietly (a pinned kernel the CPU lacks would fall back to the baseline).
    let mut kernels = vec![Choice::Baseline];
    for kernel in [Choice::Avx2, Choice::Avx512] {
        if kernel.available() {
            kernels.push(kernel);
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "every_kernel_finds_the_same_records: skipped {kernel:?} (this CPU lacks its features)"
            );
        }
    }
    let mut compared = 0;
    for doc in tricky_documents() {
        for prefilter in &prefilters {
            for chunk in [3, 1 << 20] {
                let run = |kernel: Choice| {
                    let mut recs = Vec::new();
                    let outcome = scan_with(
                        kernel,
                        Chunks(&doc, chunk),
                        prefilter,
                        &Limits::default(),
                        |at: u64, r: &[u8]| recs.push((at, r.to_vec())),
                    );
                    (recs, outcome.stats, outcome.error.map(|e| e.to_string()))
                };
                let expected = run(Choice::Baseline);
                assert!(
                    expected.2.is_none(),
                    "{:?}: {}",
                    expected.2,
                    String::from_utf8_lossy(&doc)
                );
                assert_eq!(expected.1.records, 3);
                for &kernel in &kernels {
                    compared += 1;
                    assert_eq!(
                        run(kernel),
                        expected,
                        "{kernel:?}: {}",
                        String::from_utf8_lossy(&doc)
                    );
                }
            }
        }
    }
    assert!(compared >= kernels.len(), "no kernel was compared");
}

#[test]
fn decompressed_size_is_capped() {
    let doc = format!(r#"{{"Records":[{}]}}"#, vec![r#"{"a":1}"#; 1000].join(","));
    let limits = Limits {
        max_decompressed_bytes: 100,
        ..Limits::default()
    };
    let outcome = scan_records(doc.as_bytes(), &Prefilter::everything(), &limits, |_, _| {});
    assert!(matches!(
        outcome.error,
        Some(DecodeError::TooLarge { limit: 100 })
    ));
}
