//! Text taken from a record, made safe to show:
//! - bounded: values copied from a record into an alert, a dedup item or a log
//!   line are capped ([`truncate_marked`]), so an oversized field (a 300 kB user
//!   agent or S3 prefix) cannot push an SNS message past 256 KiB or a DynamoDB item
//!   past 400 KB;
//! - inert: a value shown in an e-mail, a subject or a text line is one line with
//!   its control characters shown escaped ([`one_line`]), so that a caller who sets
//!   its own user agent to `"x\n[High] ..."` cannot write lines of its choosing
//!   into the alert, nor move the cursor of a terminal or reorder the text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// What a cut value ends with: the reader sees that it was cut and by how much.
fn marker(original_len: usize) -> String {
    format!("...[truncated from {original_len} bytes]")
}

/// `text` when it has at most `max` bytes; otherwise its longest prefix that ends on
/// a character boundary and leaves room for the marker, then the marker. The result
/// never exceeds `max` bytes (for `max` of at least 64).
pub fn truncate_marked(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let marker = marker(text.len());
    let mut cut = max.saturating_sub(marker.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}{marker}", &text[..cut]))
}

/// Characters shown escaped by [`one_line`]: every control character (C0, DEL
/// and C1, among them CR, LF, NEL and ESC), the Unicode line and paragraph
/// separators, the bidirectional formatting characters (they reorder what a reader
/// sees: U+202E makes `fdp.exe` read `exe.pdf`), and the byte-order mark.
pub fn is_shown_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `text` on one line, inert: `\n`, `\r` and `\t` as those two characters, every
/// other character of [`is_shown_escaped`] as `\uXXXX`. Borrows when there is
/// nothing to escape. (A backslash already in the text stays as it is: the
/// result is for reading, not for parsing back.)
pub fn one_line(text: &str) -> Cow<'_, str> {
    // Printable ASCII needs nothing (a check that vectorises); the rest is looked at
    // character by character.
    let printable = |b: u8| (0x20..0x7f).contains(&b);
    if text.bytes().all(printable) || !text.chars().any(is_shown_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_shown_escaped(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_breaks_controls_and_reordering() {
        assert!(matches!(one_line("aws-cli/2 é ü"), Cow::Borrowed(_)));
        assert_eq!(
            one_line("a\nb\r\tc\u{85}d\u{2028}e\u{2029}f\u{1b}[31mg\u{202e}h\u{0}\u{9b}"),
            "a\\nb\\r\\tc\\u0085d\\u2028e\\u2029f\\u001b[31mg\\u202eh\\u0000\\u009b"
        );
        let shown = one_line("x\u{b}\u{c}\u{7f}\u{2066}\u{feff}");
        assert!(!shown.chars().any(is_shown_escaped), "{shown}");
        assert_eq!(shown.lines().count(), 1);
    }

    #[test]
    fn short_text_is_borrowed_and_long_text_is_cut_on_a_char_boundary() {
        assert!(matches!(truncate_marked("abc", 64), Cow::Borrowed("abc")));
        let long = "é".repeat(1000);
        let cut = truncate_marked(&long, 101);
        assert!(cut.len() <= 101, "{}", cut.len());
        assert!(cut.ends_with("...[truncated from 2000 bytes]"), "{cut}");
        assert!(cut.starts_with("éé"));
    }
}
