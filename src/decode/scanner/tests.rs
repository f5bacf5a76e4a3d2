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

#[test]
fn record_size_is_capped() {
    let big = format!(r#"{{"Records":[{{"a":"{}"}}]}}"#, "x".repeat(2 << 20));
    let limits = Limits {
        max_record_bytes: 1 << 20,
        ..Limits::default()
    };
    let outcome = scan_records(big.as_bytes(), &Prefilter::everything(), &limits, |_, _| {});
    assert!(
        matches!(outcome.error, Some(DecodeError::RecordTooLarge { .. })),
        "{:?}",
        outcome.error
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
                        |at, r| recs.push((at, r.to_vec())),
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
