//! The `{...}` placeholders of a rule's texts, parsed once when the rule loads.
//!
//! One grammar, two kinds of placeholder:
//!
//! - a [`RecordTemplate`] (`Title`, `Subject`) names record paths, the first present
//!   of `|`-separated alternatives: `{requestParameters.sourceArn|responseElements.sourceArn}`;
//! - a [`FieldTemplate`] (`Email: What`, row templates, `RollupSubject`) names fields
//!   of the alert document (`{eventTime}`, `{s3Prefix}`) or of a roll-up
//!   (`{suppressed}`, `{account}`).
//!
//! A placeholder may end in a modifier: `#name` keeps an ARN's resource name,
//! `#relative` drops leading `/`. A missing value reads `unknown`; a `{` with no
//! closing `}` is text. Parsing at load means an alert only walks a list of parts,
//! and an unknown modifier is a load error naming it rather than a silent oddity in
//! every alert.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path::{arn_name, dotted, first_present, scalar_text, FieldPath};

/// A parsed template whose placeholders are looked up by `K`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template<K> {
    source: String,
    parts: Vec<Part<K>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<K> {
    Text(String),
    Slot(K, Modifier),
}

/// What a placeholder does to the text it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Whole,
    /// `#name`: the resource name at the end of an ARN.
    ArnName,
    /// `#relative`: leading `/` removed (an S3 prefix under a bucket).
    Relative,
}

impl Modifier {
    fn apply(self, text: &str) -> &str {
        match self {
            Modifier::Whole => text,
            Modifier::ArnName => arn_name(text),
            Modifier::Relative => text.trim_start_matches('/'),
        }
    }
}

/// Placeholders name record paths: `{a.b|c.d#name}`.
pub type RecordTemplate = Template<Vec<FieldPath>>;

/// Placeholders name document fields: `{s3Prefix#relative}`.
pub type FieldTemplate = Template<String>;

impl<K> Template<K> {
    /// Splits `source` into text and placeholders. `strict` refuses an unknown
    /// modifier; otherwise it renders the whole value, as templates stored by
    /// earlier versions expect.
    fn parse(source: &str, key: impl Fn(&str) -> K, strict: bool) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let spec = &rest[open + 1..open + close];
            let (name, modifier) = match spec.split_once('#') {
                None => (spec, Modifier::Whole),
                Some((name, "name")) => (name, Modifier::ArnName),
                Some((name, "relative")) => (name, Modifier::Relative),
                Some((_, other)) if strict => {
                    return Err(format!(
                        "template {source:?}: unknown modifier #{other} (known: #name, #relative)"
                    ))
                }
                Some((name, _)) => (name, Modifier::Whole),
            };
            parts.push(Part::Slot(key(name), modifier));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What its placeholders name, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.parts.iter().filter_map(|part| match part {
            Part::Slot(key, _) => Some(key),
            Part::Text(_) => None,
        })
    }

    fn render_with(&self, text_of: impl Fn(&K) -> Option<String>) -> String {
        let mut out = String::with_capacity(self.source.len() + 64);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Slot(key, modifier) => {
                    let text = text_of(key).unwrap_or_else(|| crate::UNKNOWN.to_owned());
                    out.push_str(modifier.apply(&text));
                }
            }
        }
        out
    }
}

impl RecordTemplate {
    /// Parses a `Title:`/`Subject:` text; unknown modifiers are refused.
    pub fn over_records(source: &str) -> Result<Self, String> {
        Template::parse(source, |spec| spec.split('|').map(dotted).collect(), true)
    }

    /// The text for one record: each placeholder's first present path, as text.
    pub fn render(&self, record: &Value) -> String {
        self.render_with(|paths| Some(scalar_text(first_present(record, paths))))
    }
}

impl FieldTemplate {
    /// Parses an e-mail or roll-up text; unknown modifiers are refused.
    pub fn over_fields(source: &str) -> Result<Self, String> {
        Template::parse(source, str::to_owned, true)
    }

    /// The text with each placeholder's value from `lookup` (`unknown` when `None`).
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        self.render_with(|name| lookup(name))
    }
}

/// Lenient: a roll-up subject read back from a dedup window was written by whatever
/// version stored it, and must still render.
impl From<&str> for FieldTemplate {
    fn from(source: &str) -> Self {
        Template::parse(source, str::to_owned, false).unwrap_or_default()
    }
}

/// Stored (in dedup windows) as the text it was parsed from.
impl Serialize for FieldTemplate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for FieldTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|source| FieldTemplate::from(source.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "arn" => Some("arn:aws:rds:r:1:snapshot:db".to_owned()),
            "prefix" => Some("/p/q".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn field_templates_render_lookups_and_modifiers() {
        let template = FieldTemplate::over_fields("{arn#name} in {prefix#relative} by {who}");
        assert_eq!(template.unwrap().render(lookup), "db in p/q by unknown");
        let open = FieldTemplate::over_fields("open {brace").unwrap();
        assert_eq!(open.render(lookup), "open {brace");
        assert_eq!(open.source(), "open {brace");
    }

    #[test]
    fn record_templates_take_the_first_present_path() {
        let template = RecordTemplate::over_records("[{a.b|c#name}] {d} {e").unwrap();
        let record = json!({"a": {"b": null}, "c": "arn:aws:iam::1:role/r", "d": 7});
        assert_eq!(template.render(&record), "[r] 7 {e");
        assert_eq!(template.render(&json!({})), "[unknown] unknown {e");
    }

    #[test]
    fn unknown_modifiers_are_refused_at_load_and_tolerated_when_stored() {
        let err = RecordTemplate::over_records("{a#nmae}").unwrap_err();
        assert!(err.contains("#nmae"), "{err}");
        assert!(FieldTemplate::over_fields("{a#upper}").is_err());
        let stored = FieldTemplate::from("{arn#upper}!");
        assert_eq!(stored.render(lookup), "arn:aws:rds:r:1:snapshot:db!");
    }

    #[test]
    fn field_templates_round_trip_as_their_text() {
        let template = FieldTemplate::over_fields("{suppressed} more in {account}").unwrap();
        let json = serde_json::to_value(&template).unwrap();
        assert_eq!(json, json!("{suppressed} more in {account}"));
        let back: FieldTemplate = serde_json::from_value(json).unwrap();
        assert_eq!(back, template);
    }
}
