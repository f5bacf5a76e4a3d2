//! The scanner's root-level lexer: the text around and between the containers at
//! the top levels (the root object's member names and scalar members, the scalar
//! elements of `Records`), which the block loop leaves for it. This text is
//! short, so it is read byte by byte and its tokens are validated with serde_json.
//!
//! A token that is not valid JSON there (`NaN`, a string with a lone surrogate or
//! a raw control character, a bad literal) is not a record and holds none: it is
//! skipped, counted and listed, and the records around it are read. Only text
//! whose structure is broken (a missing `:`, a name that is not a string, an
//! unterminated string) stops the scan.

use memchr::memchr2;

use super::{DecodeError, RecordSink, Root, Scanner, Skipped};

impl<F: RecordSink> Scanner<'_, F> {
    /// The first non-whitespace byte decides whether this is JSON at all.
    pub(super) fn check_start(&self, buf: &[u8]) -> Result<(), DecodeError> {
        if self.root != Root::NotYet {
            return Ok(());
        }
        match self
            .slice(buf, self.carry.scanned, self.end())
            .iter()
            .find(|b| !is_ws(**b))
        {
            Some(b'{' | b'[') | None => Ok(()),
            Some(&other) => Err(DecodeError::NotJson(other)),
        }
    }

    /// After the root value closes only whitespace may follow.
    pub(super) fn check_trailing(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        if self.root != Root::Closed {
            return Ok(());
        }
        let from = self.members_from;
        let rest = self.slice(buf, from, self.end());
        if let Some(at) = rest.iter().position(|b| !is_ws(*b)) {
            return Err(syntax(
                from + at as u64,
                "trailing data after the JSON document",
            ));
        }
        self.members_from = self.end();
        Ok(())
    }

    /// Parses the root-level text before `at` and returns the name of the member
    /// whose value starts at `at` (if the text ends with `"name":`). A scalar
    /// `Records` member is counted as a `Records` that is not an array.
    pub(super) fn root_members(
        &mut self,
        buf: &[u8],
        at: u64,
    ) -> Result<Option<String>, DecodeError> {
        let from = self.members_from;
        let text = self.slice(buf, from, at);
        let mut i = 0;
        let mut not_array = 0;
        let mut invalid = Vec::new();
        let pending = loop {
            i = skip(text, i, |b| is_ws(b) || b == b',');
            if i == text.len() {
                break None;
            }
            let (key, next) = match json_string(text, i, from)? {
                (Ok(key), next) => (key, next),
                // Not `Records`, whatever it was meant to be: its value is skipped.
                (Err(message), next) => {
                    invalid.push((from + i as u64, format!("member name: {message}")));
                    (String::new(), next)
                }
            };
            i = skip(text, next, is_ws);
            if text.get(i) != Some(&b':') {
                return Err(syntax(from + i as u64, "expected ':' after a member name"));
            }
            i = skip(text, i + 1, is_ws);
            if i == text.len() {
                break Some(key);
            }
            // The reference parse reads a `Records` value in full and skips others,
            // which accepts more (lone surrogates, for one); do the same.
            let strict = key == "Records";
            let (end, problem) = scalar_token(text, i, from, strict)?;
            if let Some(message) = problem {
                invalid.push((
                    from + i as u64,
                    format!("value of member {key:?}: {message}"),
                ));
            }
            i = end;
            if strict {
                not_array += 1;
            }
        };
        self.stats.records_not_array += not_array;
        for (offset, message) in invalid {
            self.invalid_element(offset, message);
        }
        Ok(pending)
    }

    /// Counts and lists a root-level token that is not valid JSON.
    #[cold]
    fn invalid_element(&mut self, offset: u64, message: String) {
        self.stats.invalid_elements += 1;
        self.skip(Skipped::InvalidElement { offset, message });
    }

    /// Counts the scalar elements between two container elements of `Records`.
    pub(super) fn gap_elements(&mut self, buf: &[u8], at: u64) -> Result<u64, DecodeError> {
        let from = self.gap_from;
        let text = self.slice(buf, from, at);
        if text.iter().all(|&b| is_ws(b) || b == b',') {
            return Ok(0);
        }
        let mut i = 0;
        let mut count = 0;
        let mut invalid = Vec::new();
        loop {
            i = skip(text, i, |b| is_ws(b) || b == b',');
            if i == text.len() {
                break;
            }
            let (end, problem) = scalar_token(text, i, from, true)?;
            if let Some(message) = problem {
                invalid.push((from + i as u64, format!("element of Records: {message}")));
            }
            i = end;
            count += 1;
        }
        for (offset, message) in invalid {
            self.invalid_element(offset, message);
        }
        Ok(count)
    }
}

pub(super) fn syntax(offset: u64, message: &str) -> DecodeError {
    DecodeError::Syntax {
        offset,
        message: message.to_owned(),
    }
}

pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip(text: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while i < text.len() && pred(text[i]) {
        i += 1;
    }
    i
}

/// The index after the JSON string starting at `text[i]` (a quote).
fn string_end(text: &[u8], i: usize, base: u64) -> Result<usize, DecodeError> {
    if text.get(i) != Some(&b'"') {
        return Err(syntax(base + i as u64, "expected a string"));
    }
    let mut j = i + 1;
    loop {
        match memchr2(b'"', b'\\', text.get(j..).unwrap_or_default()) {
            Some(k) if text[j + k] == b'\\' => j += k + 2,
            Some(k) => return Ok(j + k + 1),
            None => return Err(syntax(base + i as u64, "unterminated string")),
        }
    }
}

/// Decodes the JSON string starting at `text[i]` (or says why it is not a valid
/// one); returns it and the index after it.
fn json_string(
    text: &[u8],
    i: usize,
    base: u64,
) -> Result<(Result<String, String>, usize), DecodeError> {
    let end = string_end(text, i, base)?;
    let value = serde_json::from_slice(&text[i..end]).map_err(|e| e.to_string());
    Ok((value, end))
}

/// The scalar token starting at `text[i]`: the index after it, and why it is not
/// valid JSON if it is not. `strict` reads it as a value (as the reference parse
/// does for `Records` and its elements); otherwise it is only skipped, as the
/// reference skips other members.
fn scalar_token(
    text: &[u8],
    i: usize,
    base: u64,
    strict: bool,
) -> Result<(usize, Option<String>), DecodeError> {
    let end = if text[i] == b'"' {
        string_end(text, i, base)?
    } else {
        skip(text, i, |b| !is_ws(b) && b != b',')
    };
    let token = &text[i..end];
    let checked = if strict && text[i] == b'"' {
        serde_json::from_slice::<String>(token).map(drop)
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(token).map(drop)
    };
    let problem = checked.err().map(|e| {
        let shown = String::from_utf8_lossy(&token[..token.len().min(40)]).into_owned();
        format!("{shown:?} is not valid JSON ({e})")
    });
    Ok((end, problem))
}
