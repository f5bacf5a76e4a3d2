//! Bounded text: values copied from a record into an alert, a dedup item or a log
//! line are capped, so an oversized field (a 300 kB user agent or S3 prefix) cannot
//! push an SNS message past 256 KiB or a DynamoDB item past 400 KB.

use std::borrow::Cow;

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

#[cfg(test)]
mod tests {
    use super::*;

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
