//! The dedup key: a rule and the values of its `GroupBy` fields for a record.
//!
//! Kept as its parts, never re-parsed from text: a group value may hold any
//! character (an ARN holds `:`), so `RuleID:value:value` is only a display form.

use std::fmt;

/// `(RuleID, group values)`; displayed `RuleID:value:value` (the alerts' `dedupKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey {
    pub rule_id: String,
    pub values: Vec<String>,
}

impl DedupKey {
    pub fn new(rule_id: impl Into<String>, values: Vec<String>) -> DedupKey {
        DedupKey {
            rule_id: rule_id.into(),
            values,
        }
    }

    /// A text that names this key and no other, for storage keys: the display form
    /// when no part holds a `:` (the form items have always had), otherwise the
    /// display form followed by `#` and the parts as a JSON array.
    pub fn storage_id(&self) -> String {
        let display = self.to_string();
        let ambiguous = self.rule_id.contains(':') || self.values.iter().any(|v| v.contains(':'));
        if ambiguous {
            let parts: Vec<&str> = std::iter::once(self.rule_id.as_str())
                .chain(self.values.iter().map(String::as_str))
                .collect();
            let json = serde_json::to_string(&parts).unwrap_or_default();
            format!("{display}#{json}")
        } else {
            display
        }
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rule_id)?;
        for value in &self.values {
            write!(f, ":{value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_as_the_alerts_dedup_key() {
        let key = DedupKey::new("AWS.Example.Rule", vec!["us-east-1".into(), "1".into()]);
        assert_eq!(key.to_string(), "AWS.Example.Rule:us-east-1:1");
        assert_eq!(key.storage_id(), key.to_string());
    }

    #[test]
    fn values_holding_colons_keep_keys_apart() {
        let a = DedupKey::new("R", vec!["arn:aws:x".into(), "1".into()]);
        let b = DedupKey::new("R", vec!["arn".into(), "aws:x:1".into()]);
        assert_eq!(
            a.to_string(),
            b.to_string(),
            "the display form is ambiguous"
        );
        assert_ne!(a.storage_id(), b.storage_id());
    }

    proptest! {
        #[test]
        fn storage_ids_are_unique(
            a in proptest::collection::vec("[a:]{0,3}", 0..3),
            b in proptest::collection::vec("[a:]{0,3}", 0..3),
        ) {
            let (ka, kb) = (DedupKey::new("R", a.clone()), DedupKey::new("R", b.clone()));
            prop_assert_eq!(ka.storage_id() == kb.storage_id(), a == b);
        }
    }
}
