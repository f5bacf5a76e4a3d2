//! Literal needles that prove a record cannot match.
//!
//! Every rule's `Equals` conditions name strings a matching record must contain. In
//! raw JSON such a string is spelled either literally or with at least one escape.
//! A needle made of characters that may appear unescaped can only be escaped as
//! `\uXXXX`, or `\/` for a `/`. So a record that contains neither a rule's needle nor
//! a `\u` escape (nor a `\/` escape when the needle has a `/`) cannot match that
//! rule, and need not be parsed. Anything the prefilter lets through is parsed in
//! full, so the prefilter can only cost time, never change an answer.
//!
//! The literal needles are searched with `memchr::memmem` over whole decoded
//! buffers, not record by record. The escapes are not searched for as text: the
//! scanner already knows which bytes are escaped (it must, to find string ends), so
//! it checks only those bytes for `u` or `/`. That is exact (`\\u`, an escaped
//! backslash followed by `u`, does not count) and costs nothing on the many blocks
//! without a backslash.

use memchr::memmem::Finder;

use crate::rule::Rule;

/// The needle set searched in the decoded stream.
#[derive(Debug, Clone)]
pub struct Prefilter {
    finders: Vec<Finder<'static>>,
    /// A `\/` escape may spell a needle (some needle contains `/`).
    escaped_slash: bool,
    /// Every record is a candidate (some rule proves nothing by literals).
    everything: bool,
}

impl Prefilter {
    /// Needles for a set of rules: each rule's most selective literal.
    pub fn for_rules<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Prefilter {
        let mut needles: Vec<String> = Vec::new();
        let mut escaped_slash = false;
        for rule in rules {
            match rule.needles().into_iter().next() {
                Some(needle) if spellable_unescaped(&needle) => {
                    escaped_slash |= needle.contains('/');
                    needles.push(needle);
                }
                _ => return Prefilter::everything(),
            }
        }
        // A needle that contains another one is redundant: the shorter finds it.
        needles.sort_by_key(String::len);
        let mut kept: Vec<String> = Vec::new();
        for needle in needles {
            if !kept.iter().any(|k| needle.contains(k.as_str())) {
                kept.push(needle);
            }
        }
        Prefilter {
            finders: kept
                .iter()
                .map(|n| Finder::new(n.as_bytes()).into_owned())
                .collect(),
            escaped_slash,
            everything: false,
        }
    }

    /// No prefilter: every record is parsed.
    pub fn everything() -> Prefilter {
        Prefilter {
            finders: Vec::new(),
            escaped_slash: false,
            everything: true,
        }
    }

    pub fn is_everything(&self) -> bool {
        self.everything
    }

    /// Does an escaped `/` (`\/`) make a record a candidate? (`\u` always does.)
    pub fn escaped_slash(&self) -> bool {
        self.escaped_slash
    }

    /// The literal needles.
    pub fn needles(&self) -> impl Iterator<Item = &[u8]> {
        self.finders.iter().map(|f| f.needle())
    }

    /// The longest needle, so that callers can overlap searches across buffer refills.
    pub fn max_needle_len(&self) -> usize {
        self.finders
            .iter()
            .map(|f| f.needle().len())
            .max()
            .unwrap_or(0)
    }

    /// Appends the positions (plus `base`) of every literal needle occurrence in
    /// `haystack`, in increasing order.
    pub fn find_all(&self, haystack: &[u8], base: u64, hits: &mut Vec<u64>) {
        let from = hits.len();
        for finder in &self.finders {
            hits.extend(finder.find_iter(haystack).map(|at| base + at as u64));
        }
        if self.finders.len() > 1 {
            hits[from..].sort_unstable();
        }
    }

    /// Could this single record match? True when it contains a needle, or the text
    /// `\u` (or `\/`), or the prefilter is off. A superset of what the scanner lets
    /// through, which looks only at real escapes; for tests and single records.
    pub fn is_candidate(&self, record: &[u8]) -> bool {
        self.everything
            || self.finders.iter().any(|f| f.find(record).is_some())
            || memchr::memmem::find(record, b"\\u").is_some()
            || (self.escaped_slash && memchr::memmem::find(record, b"\\/").is_some())
    }
}

/// Characters JSON lets a writer leave unescaped, so the literal spelling exists.
fn spellable_unescaped(needle: &str) -> bool {
    !needle.is_empty() && !needle.chars().any(|c| c == '"' || c == '\\' || c < ' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleSet;

    #[test]
    fn needles_for_the_rds_rule() {
        let rules = RuleSet::embedded();
        let p = Prefilter::for_rules(&rules.rules);
        assert!(!p.is_everything());
        assert!(p.is_candidate(br#"{"eventName":"StartExportTask"}"#));
        assert!(p.is_candidate(br#"{"eventName":"\u0053tartExportTask"}"#));
        assert!(p.is_candidate(br#"{"event\u004eame":"x"}"#));
        assert!(!p.is_candidate(
            br#"{"eventName":"CreateDBSnapshot","eventSource":"rds.amazonaws.com"}"#
        ));
        assert!(!p.is_candidate(br#"{"a":"tab\there \"quoted\" back\\slash"}"#));
    }

    #[test]
    fn slash_needles_also_trigger_on_escaped_slash() {
        let rule = crate::rule::Rule::from_yaml(
            "t.yml",
            "RuleID: T\nSeverity: Low\nDetection:\n  - Key: a\n    Condition: Equals\n    Value: x/y\n",
        )
        .unwrap();
        let p = Prefilter::for_rules([&rule]);
        assert!(p.is_candidate(br#"{"a":"x\/y"}"#));
        assert!(!p.is_candidate(br#"{"a":"xy"}"#));
    }

    #[test]
    fn unspellable_needles_disable_the_prefilter() {
        let rule = crate::rule::Rule::from_yaml(
            "t.yml",
            "RuleID: T\nSeverity: Low\nDetection:\n  - Key: a\n    Condition: Equals\n    Value: 'say \"hi\"'\n",
        )
        .unwrap();
        assert!(Prefilter::for_rules([&rule]).is_everything());
    }
}
