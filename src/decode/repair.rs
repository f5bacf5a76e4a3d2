//! Delimited record -> valid, compact JSON text.
//!
//! Two jobs, one lexer:
//! - [`compact`]: every matched record is printed as one NDJSON line and embedded in
//!   the SNS message, so whitespace between tokens (pretty-printed or CRLF log files)
//!   is removed. Strings, numbers and escapes stay byte for byte as they were.
//! - [`repair`]: the caller controls parts of its own CloudTrail record (user agent,
//!   request parameters). A record that other JSON parsers accept but `serde_json`
//!   rejects must still be evaluated, or the detection fails closed. The repair turns
//!   the defects such parsers tolerate into valid JSON and says what it changed:
//!   lone UTF-16 surrogate escapes become `\ufffd`, numbers outside the `f64` range
//!   and the non-standard `NaN`, `Infinity` and `-Infinity` (Python's `json`
//!   reads and writes them) are kept as their text (a JSON string), raw control
//!   characters in strings are escaped, and invalid UTF-8 becomes U+FFFD. Nesting
//!   deeper than the strict parser allows is handled where the fields are read
//!   (`detect::fields`).
//!
//! The input is a record the scanner has already delimited, so strings and brackets
//! are balanced; anything else that is wrong (a missing comma, a bad literal) is left
//! as it is and still fails the parse, as it would in any parser.
//!
//! A third job, [`close_truncated`], turns the first bytes of a record too large to
//! keep into a whole record of what they hold, for a degraded evaluation.

use std::borrow::Cow;
use std::fmt::Write;

/// The non-finite numbers JavaScript and Python's `json` write outside strings.
const NON_FINITE: [&str; 3] = ["NaN", "Infinity", "-Infinity"];

/// Warnings kept per record; further ones are counted in the last entry.
const MAX_WARNINGS: usize = 8;

/// Containers nested deeper than this are not materialised for rule evaluation (the
/// record text keeps them). Below `serde_json`'s own limit of 128, so the strict
/// parser's stack bound holds, and far deeper than any field a rule reads.
pub const MAX_EVALUATED_DEPTH: usize = 100;

/// What [`repair`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// Compact JSON text of the record.
    pub json: String,
    /// What was changed, each with its byte offset in the decoded object.
    pub warnings: Vec<String>,
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The record without whitespace between tokens. Borrows when there is none.
pub fn compact(record: &str) -> Cow<'_, str> {
    let bytes = record.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let needs_work = bytes.iter().any(|&b| {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            false
        } else {
            in_string = b == b'"';
            is_json_whitespace(b)
        }
    });
    if !needs_work {
        return Cow::Borrowed(record);
    }
    let mut out = String::with_capacity(record.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in record.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii() && is_json_whitespace(c as u8) {
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

struct Warnings {
    base: u64,
    list: Vec<String>,
    more: usize,
}

impl Warnings {
    fn push(&mut self, at: usize, message: std::fmt::Arguments) {
        if self.list.len() < MAX_WARNINGS {
            self.list
                .push(format!("byte {}: {message}", self.base + at as u64));
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list.push(format!("and {} more", self.more));
        }
        self.list
    }
}

fn hex4(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..4)?).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(text, 16).ok()
}

/// Repairs and compacts one record; `offset` is its position in the decoded object,
/// for the warnings.
pub fn repair(record: &[u8], offset: u64) -> Repaired {
    let mut out: Vec<u8> = Vec::with_capacity(record.len());
    let mut warnings = Warnings {
        base: offset,
        list: Vec::new(),
        more: 0,
    };
    let mut i = 0;
    let mut depth = 0usize;
    let mut too_deep = false;
    while i < record.len() {
        let b = record[i];
        match b {
            b'"' => i = repair_string(record, i, &mut out, &mut warnings),
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_EVALUATED_DEPTH && !too_deep {
                    too_deep = true;
                    warnings.push(
                        i,
                        format_args!("containers nested deeper than {MAX_EVALUATED_DEPTH} levels were not evaluated"),
                    );
                }
                out.push(b);
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                out.push(b);
                i += 1;
            }
            b'N' | b'I' | b'-' if non_finite_at(record, i).is_some() => {
                let word = non_finite_at(record, i).unwrap_or_default();
                warnings.push(i, format_args!("non-standard number {word} kept as text"));
                out.push(b'"');
                out.extend_from_slice(word.as_bytes());
                out.push(b'"');
                i += word.len();
            }
            b'-' | b'0'..=b'9' => {
                let end = record[i..]
                    .iter()
                    .position(|&c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(record.len(), |n| i + n);
                let token = &record[i..end];
                // Only an exponent or some 300 digits can leave the f64 range.
                let may_overflow = token.len() > 300 || token.iter().any(|&c| c | 0x20 == b'e');
                let overflows = may_overflow
                    && std::str::from_utf8(token)
                        .ok()
                        .and_then(|t| t.parse::<f64>().ok())
                        .is_some_and(|v| !v.is_finite());
                if overflows {
                    let text = String::from_utf8_lossy(token);
                    warnings.push(
                        i,
                        format_args!("number {text} is out of range, kept as text"),
                    );
                    out.push(b'"');
                    out.extend_from_slice(token);
                    out.push(b'"');
                } else {
                    out.extend_from_slice(token);
                }
                i = end;
            }
            _ if is_json_whitespace(b) => i += 1,
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let json = match String::from_utf8(out) {
        Ok(json) => json,
        Err(e) => {
            warnings.push(
                e.utf8_error().valid_up_to(),
                format_args!("invalid UTF-8 replaced by U+FFFD"),
            );
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    Repaired {
        json,
        warnings: warnings.finish(),
    }
}

/// The non-finite number spelled at `record[at]`, if one is.
fn non_finite_at(record: &[u8], at: usize) -> Option<&'static str> {
    NON_FINITE
        .into_iter()
        .find(|word| record[at..].starts_with(word.as_bytes()))
}

/// Copies the string starting at `record[start] == b'"'`; returns the index after
/// its closing quote (or the end of the record).
fn repair_string(record: &[u8], start: usize, out: &mut Vec<u8>, warnings: &mut Warnings) -> usize {
    out.push(b'"');
    let mut i = start + 1;
    while i < record.len() {
        // Most of a string needs nothing: copied as one run.
        let plain = record[i..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(record.len() - i);
        out.extend_from_slice(&record[i..i + plain]);
        i += plain;
        let Some(&b) = record.get(i) else {
            break;
        };
        match b {
            b'"' => {
                out.push(b'"');
                return i + 1;
            }
            b'\\' if record.get(i + 1) == Some(&b'u') => {
                let Some(unit) = hex4(&record[i + 2..]) else {
                    // Not a hex escape: left for the parser to reject.
                    out.extend_from_slice(&record[i..i + 2]);
                    i += 2;
                    continue;
                };
                let pair = (0xD800..0xDC00).contains(&unit)
                    && record.get(i + 6..i + 8) == Some(b"\\u")
                    && hex4(&record[i + 8..]).is_some_and(|low| (0xDC00..0xE000).contains(&low));
                if pair {
                    out.extend_from_slice(&record[i..i + 12]);
                    i += 12;
                } else if (0xD800..0xE000).contains(&unit) {
                    warnings.push(
                        i,
                        format_args!("lone surrogate \\u{unit:04x} replaced by U+FFFD"),
                    );
                    out.extend_from_slice(b"\\ufffd");
                    i += 6;
                } else {
                    out.extend_from_slice(&record[i..i + 6]);
                    i += 6;
                }
            }
            b'\\' => {
                let end = (i + 2).min(record.len());
                out.extend_from_slice(&record[i..end]);
                i = end;
            }
            0x00..=0x1f => {
                warnings.push(
                    i,
                    format_args!("control character 0x{b:02x} in a string escaped"),
                );
                let mut escape = String::with_capacity(6);
                let _ = write!(escape, "\\u{b:04x}");
                out.extend_from_slice(escape.as_bytes());
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    i
}

/// The longest prefix of `head` (the first bytes of a JSON object) that ends after
/// a complete value, with the brackets still open after it closed: valid JSON
/// (where `head` was) holding every member that `head` holds whole. A value cut
/// by the end of `head` is left out.
pub fn close_truncated(head: &[u8]) -> Vec<u8> {
    #[derive(PartialEq)]
    enum Expect {
        Value,
        Name,
        Other,
    }
    let mut open: Vec<u8> = Vec::new();
    // Where the text may be cut, and how many brackets are open there.
    let mut cut = (0, 0);
    let mut expect = Expect::Value;
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            b'{' | b'[' => {
                open.push(head[i]);
                expect = if head[i] == b'{' {
                    Expect::Name
                } else {
                    Expect::Value
                };
                i += 1;
                cut = (i, open.len());
            }
            b'}' | b']' => {
                open.pop();
                expect = Expect::Other;
                i += 1;
                cut = (i, open.len());
            }
            b',' => {
                expect = if open.last() == Some(&b'{') {
                    Expect::Name
                } else {
                    Expect::Value
                };
                i += 1;
            }
            b':' => {
                expect = Expect::Value;
                i += 1;
            }
            b'"' => {
                let mut j = i + 1;
                let end = loop {
                    match head.get(j) {
                        None => break None,
                        Some(b'\\') => j += 2,
                        Some(b'"') => break Some(j + 1),
                        Some(_) => j += 1,
                    }
                };
                let Some(end) = end else {
                    break;
                };
                i = end;
                if expect == Expect::Name {
                    expect = Expect::Other;
                } else {
                    expect = Expect::Other;
                    cut = (i, open.len());
                }
            }
            b if is_json_whitespace(b) => i += 1,
            _ => {
                // A number or literal: complete only when something follows it.
                let end = head[i..]
                    .iter()
                    .position(|&b| matches!(b, b',' | b'}' | b']' | b':') || is_json_whitespace(b))
                    .map(|n| i + n);
                let Some(end) = end else {
                    break;
                };
                i = end;
                expect = Expect::Other;
                cut = (i, open.len());
            }
        }
    }
    let (at, depth) = cut;
    let mut out = head[..at].to_vec();
    // A member name without its value (`{"a":1,"b"` cut after the name) cannot
    // happen: names never set a cut. A trailing comma cannot either.
    for &bracket in open[..depth.min(open.len())].iter().rev() {
        out.push(bracket + 2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn compact_removes_whitespace_between_tokens_only() {
        let pretty = "{\r\n  \"a\" : [ 1 ,\t2 ],\n  \"b\": \"x y\\\" z\" }";
        assert_eq!(compact(pretty), r#"{"a":[1,2],"b":"x y\" z"}"#);
        let tight = r#"{"a":"  spaced  "}"#;
        assert!(matches!(compact(tight), Cow::Borrowed(_)));
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let fixed = repair(br#"{"u":"\udc00x","v":"\ud800","w":"\ud83d\ude80"}"#, 10);
        assert_eq!(
            fixed.json,
            r#"{"u":"\ufffdx","v":"\ufffd","w":"\ud83d\ude80"}"#
        );
        assert_eq!(fixed.warnings.len(), 2, "{:?}", fixed.warnings);
        assert!(fixed.warnings[0].starts_with("byte 16: lone surrogate \\udc00"));
        let value: Value = serde_json::from_str(&fixed.json).unwrap();
        assert_eq!(value["u"], "\u{fffd}x");
        assert_eq!(value["w"], "\u{1f680}");
    }

    #[test]
    fn out_of_range_numbers_are_kept_as_text() {
        let fixed = repair(
            br#"{"n":1e400,"m":-2.5E+999,"ok":[1e300,12345678901234567890123]}"#,
            0,
        );
        assert_eq!(
            fixed.json,
            r#"{"n":"1e400","m":"-2.5E+999","ok":[1e300,12345678901234567890123]}"#
        );
        assert_eq!(fixed.warnings.len(), 2);
        assert!(fixed.warnings[0].contains("number 1e400 is out of range"));
    }

    #[test]
    fn non_finite_numbers_are_kept_as_text() {
        let fixed = repair(br#"{"a":NaN,"b":[Infinity,-Infinity],"c":"NaN","d":-1}"#, 0);
        assert_eq!(
            fixed.json,
            r#"{"a":"NaN","b":["Infinity","-Infinity"],"c":"NaN","d":-1}"#
        );
        assert_eq!(fixed.warnings.len(), 3, "{:?}", fixed.warnings);
        assert_eq!(
            fixed.warnings[0],
            "byte 5: non-standard number NaN kept as text"
        );
        assert!(serde_json::from_str::<Value>(&fixed.json).is_ok());
    }

    #[test]
    fn control_characters_and_invalid_utf8_are_made_valid() {
        let fixed = repair(b"{\"a\":\"x\ty\",\"b\":\"\xff\"}", 0);
        assert_eq!(fixed.json, "{\"a\":\"x\\u0009y\",\"b\":\"\u{fffd}\"}");
        assert_eq!(fixed.warnings.len(), 2, "{:?}", fixed.warnings);
        assert!(serde_json::from_str::<Value>(&fixed.json).is_ok());
    }

    #[test]
    fn other_syntax_errors_are_left_for_the_parser() {
        let fixed = repair(br#"{"a":tru,"b":"\x"}"#, 0);
        assert!(fixed.warnings.is_empty());
        assert!(serde_json::from_str::<Value>(&fixed.json).is_err());
    }

    #[test]
    fn truncated_heads_are_closed_after_their_last_whole_value() {
        for (head, closed) in [
            (r#"{"a":1,"b":[1,2,3"#, r#"{"a":1,"b":[1,2]}"#),
            (r#"{"a":"x","b":"unterminated"#, r#"{"a":"x"}"#),
            (r#"{"a":{"b":"c"},"d""#, r#"{"a":{"b":"c"}}"#),
            (r#"{"a":[{"x":"}]"},{"y":tr"#, r#"{"a":[{"x":"}]"},{}]}"#),
            (r#"{"a":"\"","b":12"#, r#"{"a":"\""}"#),
            (r#"{"#, r#"{}"#),
            (r#"{"a":true}"#, r#"{"a":true}"#),
        ] {
            let out = close_truncated(head.as_bytes());
            assert_eq!(String::from_utf8(out).unwrap(), closed, "{head}");
            serde_json::from_str::<Value>(closed).unwrap();
        }
    }

    #[test]
    fn deep_nesting_is_said() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(150), "]".repeat(150));
        let fixed = repair(deep.as_bytes(), 0);
        assert_eq!(fixed.warnings.len(), 1, "{:?}", fixed.warnings);
        assert!(fixed.warnings[0].contains("nested deeper than 100 levels"));
    }

    #[test]
    fn warnings_are_capped() {
        let record = format!("{{\"a\":\"{}\"}}", "\\udc00".repeat(20));
        let fixed = repair(record.as_bytes(), 0);
        assert_eq!(fixed.warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(fixed.warnings.last().unwrap(), "and 12 more");
    }
}
