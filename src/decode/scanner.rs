//! Splits a decoded CloudTrail document into records without parsing them.
//!
//! The scanner tracks JSON structure exactly (strings, escapes, nesting) 64 bytes at
//! a time with bit masks, the technique of simdjson's first stage: one mask for
//! quotes, one for backslashes, one for `{`/`[` and one for `}`/`]`; escaped quotes
//! are removed with carry arithmetic and a prefix XOR turns quotes into an
//! "inside a string" mask. Braces outside strings change the depth; only the
//! transitions at the top three levels (root object, `Records` array, record) are
//! looked at one by one, so the cost per byte is a handful of word operations.
//!
//! Meanwhile the [`Prefilter`] searches the decoded bytes for its needles. A record
//! (an object element of a root-level `Records` array) that contains a needle is a
//! candidate and is handed to the caller as its exact byte range, to be parsed in
//! full. Every other record is counted and dropped. The structure is checked
//! (balanced and matching brackets, terminated strings, one root value, root-level
//! members); the tokens inside non-candidate records are not validated, which is
//! the point: that is where the time goes.

use std::io::Read;

use memchr::memchr2;

use super::{DecodeError, DecodedStream, Limits, Prefilter};

/// Counts from one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Bytes after decompression.
    pub decoded_bytes: u64,
    /// Object elements of `Records` arrays.
    pub records: u64,
    /// Records handed on to be parsed (they contain a needle).
    pub candidates: u64,
    /// Elements of `Records` that are not objects (skipped).
    pub non_object_records: u64,
    /// `Records` arrays found (0 means the JSON has no `Records`).
    pub records_arrays: u64,
    /// `Records` members whose value is not an array (skipped).
    pub records_not_array: u64,
}

/// Everything a scan produced: its counts and, if the object could not be read to
/// the end, why. Candidates before the error were delivered.
#[derive(Debug)]
pub struct ScanOutcome {
    pub stats: ScanStats,
    pub error: Option<DecodeError>,
}

const INITIAL_BUFFER: usize = 256 << 10;
const BLOCK: usize = 64;

/// Decodes `raw` (gzip or plain JSON) and calls `on_candidate(offset, bytes)` for each
/// record that may match, in document order.
pub fn scan_records<R: Read>(
    raw: R,
    prefilter: &Prefilter,
    limits: &Limits,
    on_candidate: impl FnMut(u64, &[u8]),
) -> ScanOutcome {
    let mut scanner = Scanner::new(prefilter, limits, on_candidate);
    let error = match super::open_stream(raw) {
        Ok(mut stream) => scanner.run(&mut stream).err(),
        Err(e) => Some(e),
    };
    ScanOutcome {
        stats: scanner.stats,
        error,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    NotYet,
    Object,
    Array,
    Closed,
}

struct Scanner<'a, F> {
    prefilter: &'a Prefilter,
    limits: &'a Limits,
    on_candidate: F,
    stats: ScanStats,

    /// Decoded bytes; `buf[0]` is stream offset `base`, valid up to `filled`.
    buf: Vec<u8>,
    base: u64,
    filled: usize,
    /// Stream offset up to which the structure has been scanned (block aligned).
    scanned: u64,
    /// Stream offset up to which needles have been searched.
    searched: u64,
    /// Needle positions (stream offsets) not yet behind a finished record.
    hits: Vec<u64>,

    prev_in_string: u64,
    prev_escaped: u64,

    depth: usize,
    /// Bracket of each of the top three levels (root, `Records`, record), to check
    /// that closers match there; deeper levels are only counted.
    open_brackets: [u8; 3],
    root: Root,
    /// Start of the root-level text not yet parsed (members between containers).
    members_from: u64,
    in_records: bool,
    /// Start of the text between the current and the previous record.
    gap_from: u64,
    /// Start of the record being scanned, when inside one.
    record_from: Option<u64>,
}

impl<'a, F: FnMut(u64, &[u8])> Scanner<'a, F> {
    fn new(prefilter: &'a Prefilter, limits: &'a Limits, on_candidate: F) -> Self {
        Scanner {
            prefilter,
            limits,
            on_candidate,
            stats: ScanStats::default(),
            buf: vec![0; INITIAL_BUFFER],
            base: 0,
            filled: 0,
            scanned: 0,
            searched: 0,
            hits: Vec::new(),
            prev_in_string: 0,
            prev_escaped: 0,
            depth: 0,
            open_brackets: [0; 3],
            root: Root::NotYet,
            members_from: 0,
            in_records: false,
            gap_from: 0,
            record_from: None,
        }
    }

    fn end(&self) -> u64 {
        self.base + self.filled as u64
    }

    fn slice(&self, from: u64, to: u64) -> &[u8] {
        &self.buf[(from - self.base) as usize..(to - self.base) as usize]
    }

    fn run<R: Read>(&mut self, stream: &mut DecodedStream<R>) -> Result<(), DecodeError> {
        loop {
            if self.filled == self.buf.len() {
                self.make_room()?;
            }
            let n = stream.read_decoded(&mut self.buf[self.filled..])?;
            if n == 0 {
                break;
            }
            self.filled += n;
            self.stats.decoded_bytes += n as u64;
            if self.stats.decoded_bytes > self.limits.max_decompressed_bytes {
                return Err(DecodeError::TooLarge {
                    limit: self.limits.max_decompressed_bytes,
                });
            }
            self.check_start()?;
            self.search_needles();
            self.scan_blocks(false)?;
            self.check_trailing()?;
        }
        if self.stats.decoded_bytes == 0 {
            return Err(DecodeError::Empty);
        }
        self.check_start()?;
        self.scan_blocks(true)?;
        self.check_trailing()?;
        match self.root {
            Root::NotYet => Err(DecodeError::Empty),
            _ if self.prev_in_string != 0 => Err(DecodeError::Truncated { context: "a string" }),
            _ if self.depth > 0 => Err(DecodeError::Truncated {
                context: "an object or array",
            }),
            _ => Ok(()),
        }
    }

    /// The first non-whitespace byte decides whether this is JSON at all.
    fn check_start(&self) -> Result<(), DecodeError> {
        if self.root != Root::NotYet {
            return Ok(());
        }
        match self.slice(self.scanned, self.end()).iter().find(|b| !is_ws(**b)) {
            Some(b'{' | b'[') | None => Ok(()),
            Some(&other) => Err(DecodeError::NotJson(other)),
        }
    }

    /// After the root value closes only whitespace may follow.
    fn check_trailing(&mut self) -> Result<(), DecodeError> {
        if self.root != Root::Closed {
            return Ok(());
        }
        let from = self.members_from;
        let rest = self.slice(from, self.end());
        if let Some(at) = rest.iter().position(|b| !is_ws(*b)) {
            return Err(syntax(from + at as u64, "trailing data after the JSON document"));
        }
        self.members_from = self.end();
        Ok(())
    }

    /// The oldest stream offset still needed.
    fn keep_from(&self) -> u64 {
        let needed = match (self.root, self.depth) {
            (Root::Object, 1) => self.members_from,
            (Root::Closed, _) => self.members_from,
            (_, 2) if self.in_records => self.gap_from,
            _ => self.record_from.unwrap_or(self.scanned),
        };
        needed.min(self.scanned)
    }

    /// Drops consumed bytes, or grows the buffer when one record fills it.
    fn make_room(&mut self) -> Result<(), DecodeError> {
        let keep = self.keep_from();
        let drop = (keep - self.base) as usize;
        if drop > 0 {
            self.buf.copy_within(drop..self.filled, 0);
            self.filled -= drop;
            self.base = keep;
            self.hits.retain(|&h| h >= keep);
        }
        if self.filled == self.buf.len() {
            if self.buf.len() >= self.limits.max_record_bytes.max(INITIAL_BUFFER) {
                return Err(DecodeError::RecordTooLarge {
                    offset: keep,
                    limit: self.limits.max_record_bytes,
                });
            }
            let grown = (self.buf.len() * 2).min(self.limits.max_record_bytes.max(INITIAL_BUFFER));
            self.buf.resize(grown, 0);
        }
        Ok(())
    }

    fn search_needles(&mut self) {
        if self.prefilter.is_everything() {
            return;
        }
        let overlap = self.prefilter.max_needle_len().saturating_sub(1) as u64;
        let from = self.searched.saturating_sub(overlap).max(self.base);
        let end = self.end();
        let (buf, base) = (&self.buf, self.base);
        let haystack = &buf[(from - base) as usize..(end - base) as usize];
        self.prefilter.find_all(haystack, from, &mut self.hits);
        self.searched = end;
    }

    fn scan_blocks(&mut self, at_eof: bool) -> Result<(), DecodeError> {
        loop {
            let at = (self.scanned - self.base) as usize;
            let available = self.filled - at;
            if available >= BLOCK {
                let block: [u8; BLOCK] = self.buf[at..at + BLOCK]
                    .try_into()
                    .expect("slice of BLOCK bytes");
                self.process_block(&block)?;
            } else if at_eof && available > 0 {
                let mut block = [b' '; BLOCK];
                block[..available].copy_from_slice(&self.buf[at..self.filled]);
                self.process_block(&block)?;
                self.scanned = self.end();
                return Ok(());
            } else {
                return Ok(());
            }
            self.scanned += BLOCK as u64;
        }
    }

    fn process_block(&mut self, block: &[u8; BLOCK]) -> Result<(), DecodeError> {
        let masks = classify(block);
        let escaped = if masks.backslash | self.prev_escaped == 0 {
            0
        } else {
            find_escaped(masks.backslash, &mut self.prev_escaped)
        };
        let in_string = prefix_xor(masks.quote & !escaped) ^ self.prev_in_string;
        self.prev_in_string = ((in_string as i64) >> 63) as u64;
        let opens = masks.open & !in_string;
        let closes = masks.close & !in_string;
        let mut brackets = opens | closes;
        if brackets == 0 {
            return Ok(());
        }
        // Deep inside a record nothing but the depth matters.
        let closing = closes.count_ones() as usize;
        if self.depth >= 3 + closing {
            self.depth = self.depth + opens.count_ones() as usize - closing;
            return Ok(());
        }
        while brackets != 0 {
            let bit = brackets.trailing_zeros();
            brackets &= brackets - 1;
            let at = self.scanned + bit as u64;
            let byte = block[bit as usize];
            if opens & (1u64 << bit) != 0 {
                self.open(at, byte)?;
            } else {
                self.close(at, byte)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, at: u64, byte: u8) -> Result<(), DecodeError> {
        match (self.depth, self.root) {
            (0, Root::Closed) => {
                return Err(syntax(at, "trailing data after the JSON document"));
            }
            (0, _) => {
                self.root = if byte == b'{' { Root::Object } else { Root::Array };
                self.members_from = at + 1;
            }
            (1, Root::Object) => {
                let key = self.root_members(at)?;
                match key.as_deref() {
                    Some("Records") if byte == b'[' => {
                        self.in_records = true;
                        self.stats.records_arrays += 1;
                        self.gap_from = at + 1;
                    }
                    Some("Records") => self.stats.records_not_array += 1,
                    Some(_) => {}
                    None => return Err(syntax(at, "expected a member name before a value")),
                }
            }
            (2, _) if self.in_records => {
                self.stats.non_object_records += self.gap_elements(at)?;
                if byte == b'{' {
                    self.record_from = Some(at);
                } else {
                    self.stats.non_object_records += 1;
                }
            }
            _ => {}
        }
        if self.depth < self.open_brackets.len() {
            self.open_brackets[self.depth] = byte;
        }
        self.depth += 1;
        Ok(())
    }

    fn close(&mut self, at: u64, byte: u8) -> Result<(), DecodeError> {
        if self.depth == 0 {
            return Err(syntax(at, "unbalanced closing bracket"));
        }
        self.depth -= 1;
        if let Some(&opener) = self.open_brackets.get(self.depth) {
            if opener + 2 != byte {
                return Err(syntax(at, "mismatched closing bracket"));
            }
        }
        match self.depth {
            2 if self.in_records => {
                if let Some(from) = self.record_from.take() {
                    self.finish_record(from, at + 1);
                }
                self.gap_from = at + 1;
            }
            1 => {
                if self.in_records {
                    self.stats.non_object_records += self.gap_elements(at)?;
                    self.in_records = false;
                }
                self.members_from = at + 1;
            }
            0 => {
                if self.root == Root::Object && self.root_members(at)?.is_some() {
                    return Err(syntax(at, "a member name without a value"));
                }
                self.root = Root::Closed;
                self.members_from = at + 1;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish_record(&mut self, from: u64, to: u64) {
        self.stats.records += 1;
        let candidate = self.prefilter.is_everything()
            || self.hits.iter().any(|&h| h >= from && h < to);
        if candidate {
            self.stats.candidates += 1;
            let record = &self.buf[(from - self.base) as usize..(to - self.base) as usize];
            (self.on_candidate)(from, record);
        }
        if !self.hits.is_empty() {
            self.hits.retain(|&h| h >= to);
        }
    }

    /// Parses the root-level text before `at` and returns the name of the member
    /// whose value starts at `at` (if the text ends with `"name":`). A scalar
    /// `Records` member is counted as a `Records` that is not an array.
    fn root_members(&mut self, at: u64) -> Result<Option<String>, DecodeError> {
        let from = self.members_from;
        let text = self.slice(from, at);
        let mut i = 0;
        let mut not_array = 0;
        let pending = loop {
            i = skip(text, i, |b| is_ws(b) || b == b',');
            if i == text.len() {
                break None;
            }
            let (key, next) = json_string(text, i, from)?;
            i = skip(text, next, is_ws);
            if text.get(i) != Some(&b':') {
                return Err(syntax(from + i as u64, "expected ':' after a member name"));
            }
            i = skip(text, i + 1, is_ws);
            if i == text.len() {
                break Some(key);
            }
            i = scalar_end(text, i, from)?;
            if key == "Records" {
                not_array += 1;
            }
        };
        self.stats.records_not_array += not_array;
        Ok(pending)
    }

    /// Counts the scalar elements between two container elements of `Records`.
    fn gap_elements(&mut self, at: u64) -> Result<u64, DecodeError> {
        let from = self.gap_from;
        let text = self.slice(from, at);
        if text.iter().all(|&b| is_ws(b) || b == b',') {
            return Ok(0);
        }
        let mut i = 0;
        let mut count = 0;
        loop {
            i = skip(text, i, |b| is_ws(b) || b == b',');
            if i == text.len() {
                return Ok(count);
            }
            i = scalar_end(text, i, from)?;
            count += 1;
        }
    }
}

fn syntax(offset: u64, message: &str) -> DecodeError {
    DecodeError::Syntax {
        offset,
        message: message.to_owned(),
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip(text: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while i < text.len() && pred(text[i]) {
        i += 1;
    }
    i
}

/// Decodes the JSON string starting at `text[i]`; returns it and the index after it.
fn json_string(text: &[u8], i: usize, base: u64) -> Result<(String, usize), DecodeError> {
    if text.get(i) != Some(&b'"') {
        return Err(syntax(base + i as u64, "expected a string"));
    }
    let mut j = i + 1;
    let end = loop {
        match memchr2(b'"', b'\\', &text[j..]) {
            Some(k) if text[j + k] == b'\\' => j += k + 2,
            Some(k) => break j + k,
            None => return Err(syntax(base + i as u64, "unterminated string")),
        }
    };
    let value = serde_json::from_slice(&text[i..=end])
        .map_err(|e| syntax(base + i as u64, &e.to_string()))?;
    Ok((value, end + 1))
}

/// Validates the scalar value starting at `text[i]`; returns the index after it.
fn scalar_end(text: &[u8], i: usize, base: u64) -> Result<usize, DecodeError> {
    if text[i] == b'"' {
        return json_string(text, i, base).map(|(_, end)| end);
    }
    let end = skip(text, i, |b| !is_ws(b) && b != b',');
    serde_json::from_slice::<serde::de::IgnoredAny>(&text[i..end])
        .map_err(|e| syntax(base + i as u64, &e.to_string()))?;
    Ok(end)
}

struct Masks {
    quote: u64,
    backslash: u64,
    /// `{` and `[` (`b | 0x20 == b'{'` holds for exactly those two bytes).
    open: u64,
    /// `}` and `]`.
    close: u64,
}

#[inline(always)]
fn classify(block: &[u8; BLOCK]) -> Masks {
    let (mut quote, mut backslash, mut open, mut close) = (0u64, 0u64, 0u64, 0u64);
    for (i, &b) in block.iter().enumerate() {
        let folded = b | 0x20;
        quote |= ((b == b'"') as u64) << i;
        backslash |= ((b == b'\\') as u64) << i;
        open |= ((folded == b'{') as u64) << i;
        close |= ((folded == b'}') as u64) << i;
    }
    Masks {
        quote,
        backslash,
        open,
        close,
    }
}

const EVEN_BITS: u64 = 0x5555_5555_5555_5555;

/// The characters escaped by a backslash (simdjson's branchless odd-run detection):
/// in a run of backslashes every second one escapes the next byte. `prev_escaped`
/// carries "the first byte of the next block is escaped".
#[inline(always)]
fn find_escaped(backslash: u64, prev_escaped: &mut u64) -> u64 {
    let backslash = backslash & !*prev_escaped;
    let follows_escape = (backslash << 1) | *prev_escaped;
    let odd_sequence_starts = backslash & !EVEN_BITS & !follows_escape;
    let (sequences_starting_on_even_bits, overflow) = odd_sequence_starts.overflowing_add(backslash);
    *prev_escaped = overflow as u64;
    let invert_mask = sequences_starting_on_even_bits << 1;
    (EVEN_BITS ^ invert_mask) & follows_escape
}

/// Bit i of the result is the XOR of bits 0..=i: 1 from an opening quote up to,
/// not including, its closing quote.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(test)]
mod tests {
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
            vec![r#"{"a":"}{]["}"#, r#"{"b":"\"}\\"}"#, r#"{"c":{"d":[1,{"e":"\\\""}]}}"#]
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
            assert!(message.contains(expected), "{:?}: {message}", String::from_utf8_lossy(input));
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
        assert!(matches!(outcome.error, Some(DecodeError::RecordTooLarge { .. })), "{:?}", outcome.error);
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
        let doc = br#"{"Records":[{"eventName":"Other"},{"eventName":"StartExportTask"},{"x":"\u0041"}]}"#;
        let mut found = Vec::new();
        let outcome = scan_records(Trickle(doc), &prefilter, &Limits::default(), |_, r| {
            found.push(String::from_utf8_lossy(r).into_owned())
        });
        assert!(outcome.error.is_none());
        assert_eq!(found, vec![r#"{"eventName":"StartExportTask"}"#, r#"{"x":"\u0041"}"#]);
        assert_eq!(outcome.stats.records, 3);
    }

    #[test]
    fn decompressed_size_is_capped() {
        let doc = format!(r#"{{"Records":[{}]}}"#, vec![r#"{"a":1}"#; 1000].join(","));
        let limits = Limits {
            max_decompressed_bytes: 100,
            ..Limits::default()
        };
        let outcome = scan_records(doc.as_bytes(), &Prefilter::everything(), &limits, |_, _| {});
        assert!(matches!(outcome.error, Some(DecodeError::TooLarge { limit: 100 })));
    }
}
