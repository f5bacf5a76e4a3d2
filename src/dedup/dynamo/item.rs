//! The DynamoDB items of the dedup store: window and roll-up records as typed
//! structs, encoded and decoded by `serde_dynamo`. The attributes are listed in
//! `docs/design.md` (*In DynamoDB*).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::super::lease::{Escalation, Seen, State, StoredRollup, StoredWindow};
use super::super::{DedupKey, Fingerprint, Window};
use crate::rule::{FieldTemplate, RollupSpec, Severity};

pub type Item = HashMap<String, AttributeValue>;

/// The hash key.
pub const PK: &str = "pk";
/// The attribute every conditional write compares.
pub const VERSION: &str = "version";

/// The two kinds of item in the table (attribute `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Window,
    Rollup,
}

/// A string set, as DynamoDB stores one (`SS`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct StringSet(#[serde(with = "serde_dynamo::string_set")] BTreeSet<String>);

/// The window's attributes, the same in both kinds of item. They are flattened
/// into the item when writing and decoded from it on their own when reading, so
/// that a decoding error names the attribute (flattening loses the path).
#[derive(Debug, Default, Serialize, Deserialize)]
struct WindowAttributes {
    /// The dedup key as its parts (`pk` is only a name for it).
    #[serde(default)]
    rule_id: String,
    #[serde(default)]
    group_values: Option<Vec<String>>,
    open_ms: i64,
    window_ms: i64,
    /// Informational (`open_ms + window_ms`): written, never read back.
    #[serde(default, skip_deserializing)]
    end_ms: i64,
    first_event_id: String,
    suppressed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_suppressed_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_suppressed_ms: Option<i64>,
    /// Distinct values per `RollupDistinct` list, as string sets; DynamoDB refuses
    /// empty sets, so an empty one is left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    distinct: BTreeMap<String, StringSet>,
    /// What a roll-up needs of the rule, so that it can be published after the
    /// rule is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollup_subject: Option<FieldTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    group_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    distinct_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    distinct_headings: Vec<String>,
    /// The highest severity the window alerted with (absent in older items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity_sent: Option<Severity>,
}

impl WindowAttributes {
    fn of(w: &Window, key: &DedupKey) -> Self {
        let spec = w.spec.as_deref();
        let (distinct_names, distinct_headings) = spec
            .map(|s| s.distinct.iter().cloned().unzip())
            .unwrap_or_default();
        WindowAttributes {
            rule_id: key.rule_id.clone(),
            group_values: Some(key.values.clone()),
            open_ms: w.open_ms,
            window_ms: w.window_ms,
            end_ms: w.end_ms(),
            first_event_id: w.first_event_id.clone(),
            suppressed: w.suppressed,
            first_suppressed_ms: w.first_suppressed_ms,
            last_suppressed_ms: w.last_suppressed_ms,
            distinct: w
                .distinct
                .iter()
                .filter(|(_, set)| !set.is_empty())
                .map(|(name, set)| (name.clone(), StringSet(set.clone())))
                .collect(),
            rule_name: spec.map(|s| s.display_name.clone()),
            severity: spec.and_then(|s| s.severity),
            description: spec.map(|s| s.description.clone()),
            runbook: spec.map(|s| s.runbook.clone()),
            rollup_subject: spec.map(|s| s.subject.clone()),
            group_by: spec.map(|s| s.group_by.clone()).unwrap_or_default(),
            distinct_names,
            distinct_headings,
            severity_sent: w.severity_sent,
        }
    }

    /// The key, from its parts.
    fn key(&self) -> Result<DedupKey, String> {
        match &self.group_values {
            Some(values) => Ok(DedupKey::new(self.rule_id.clone(), values.clone())),
            None => Err("attribute group_values is missing (an item from before keys were stored as their parts)".into()),
        }
    }

    fn into_window(self) -> Result<Window, String> {
        if self.distinct_names.len() != self.distinct_headings.len() {
            return Err("attributes distinct_names and distinct_headings differ in length".into());
        }
        let spec = self.rule_name.map(|display_name| {
            Box::new(RollupSpec {
                rule_id: self.rule_id.clone(),
                display_name,
                severity: self.severity,
                description: self.description.unwrap_or_default(),
                runbook: self.runbook.unwrap_or_default(),
                subject: self.rollup_subject.unwrap_or_default(),
                group_by: self.group_by,
                distinct: self
                    .distinct_names
                    .into_iter()
                    .zip(self.distinct_headings)
                    .collect(),
            })
        });
        Ok(Window {
            open_ms: self.open_ms,
            window_ms: self.window_ms,
            first_event_id: self.first_event_id,
            suppressed: self.suppressed,
            first_suppressed_ms: self.first_suppressed_ms,
            last_suppressed_ms: self.last_suppressed_ms,
            distinct: self
                .distinct
                .into_iter()
                .map(|(name, set)| (name, set.0))
                .collect(),
            spec,
            severity_sent: self.severity_sent,
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StateAttribute {
    Pending,
    Alerted,
}

/// A window item, one per dedup key.
#[derive(Debug, Serialize, Deserialize)]
struct WindowItem {
    pk: String,
    kind: Kind,
    #[serde(flatten, skip_deserializing)]
    window: WindowAttributes,
    state: StateAttribute,
    lease_until_ms: i64,
    /// One string holding a JSON array: ordered (the oldest are dropped first),
    /// and one attribute rather than hundreds of typed list elements to encode.
    #[serde(default)]
    seen: Option<String>,
    /// The content fingerprint of each of `seen`, in the same order (a JSON array
    /// of strings, `""` for none): absent in items written before fingerprints
    /// were kept, whose records then match whatever their content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seen_fingerprints: Option<String>,
    /// The content fingerprint of the match that opened the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_fingerprint: Option<String>,
    /// The alert of a worse match in flight, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    escalation: Option<String>,
    version: u64,
    ttl: i64,
}

/// A roll-up batch item.
#[derive(Debug, Serialize, Deserialize)]
struct RollupItem {
    pk: String,
    kind: Kind,
    key: String,
    #[serde(flatten, skip_deserializing)]
    window: WindowAttributes,
    taken_until_ms: i64,
    version: u64,
    ttl: i64,
}

/// JSON text of a list of strings or a small record (cannot fail).
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn encode<T: Serialize>(value: &T) -> Item {
    // The records hold strings, integers and non-empty string sets only, all of
    // which have an encoding: this cannot fail.
    serde_dynamo::to_item(value).unwrap_or_default()
}

/// Decodes an item; the error names the attribute that is missing or mistyped.
fn decode<T: for<'de> Deserialize<'de>>(item: &Item) -> Result<T, String> {
    let value = serde_dynamo::AttributeValue::from(AttributeValue::M(item.clone()));
    serde_path_to_error::deserialize(serde_dynamo::Deserializer::from_attribute_value(value))
        .map_err(|e| match e.path().to_string() {
            path if path == "." => e.inner().to_string(),
            path => format!("attribute {path}: {}", e.inner()),
        })
}

impl StoredWindow {
    pub(crate) fn to_item(&self, key: &DedupKey) -> Item {
        let state = match self.state {
            State::Pending => StateAttribute::Pending,
            State::Alerted => StateAttribute::Alerted,
        };
        let ids: Vec<&str> = self.seen.iter().map(|s| s.event_id.as_str()).collect();
        let fingerprints: Vec<&str> = self
            .seen
            .iter()
            .map(|s| s.fingerprint.as_ref().map_or("", Fingerprint::as_str))
            .collect();
        encode(&WindowItem {
            pk: key.storage_id(),
            kind: Kind::Window,
            window: WindowAttributes::of(&self.window, key),
            state,
            lease_until_ms: self.lease_until_ms,
            seen: Some(to_json(&ids)),
            seen_fingerprints: Some(to_json(&fingerprints)),
            first_fingerprint: self
                .first_fingerprint
                .as_ref()
                .map(|f| f.as_str().to_owned()),
            escalation: self.escalation.as_ref().map(to_json),
            version: self.version,
            ttl: self.ttl_secs,
        })
    }

    pub(crate) fn from_item(item: &Item) -> Result<StoredWindow, String> {
        let decoded: WindowItem = decode(item)?;
        let window: WindowAttributes = decode(item)?;
        let ids: Vec<String> = match decoded.seen {
            None => Vec::new(),
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| format!("attribute seen is not a JSON array of strings: {e}"))?,
        };
        // Leniently: a list that does not fit (or an unknown fingerprint) makes those
        // records match whatever their content, as before fingerprints were kept.
        let fingerprints: Vec<String> = decoded
            .seen_fingerprints
            .and_then(|json| serde_json::from_str(&json).ok())
            .filter(|list: &Vec<String>| list.len() == ids.len())
            .unwrap_or_default();
        let seen = ids
            .into_iter()
            .enumerate()
            .map(|(i, event_id)| Seen {
                event_id,
                fingerprint: fingerprints.get(i).and_then(|f| Fingerprint::from_hex(f)),
            })
            .collect();
        let escalation = match decoded.escalation {
            None => None,
            Some(json) => Some(
                serde_json::from_str::<Escalation>(&json)
                    .map_err(|e| format!("attribute escalation: {e}"))?,
            ),
        };
        Ok(StoredWindow {
            window: window.into_window()?,
            state: match decoded.state {
                StateAttribute::Pending => State::Pending,
                StateAttribute::Alerted => State::Alerted,
            },
            lease_until_ms: decoded.lease_until_ms,
            first_fingerprint: decoded
                .first_fingerprint
                .as_deref()
                .and_then(Fingerprint::from_hex),
            seen,
            escalation,
            version: decoded.version,
            ttl_secs: decoded.ttl,
        })
    }
}

impl StoredRollup {
    pub(crate) fn to_item(&self) -> Item {
        encode(&RollupItem {
            pk: self.pk.clone(),
            kind: Kind::Rollup,
            key: self.key.to_string(),
            window: WindowAttributes::of(&self.window, &self.key),
            taken_until_ms: self.taken_until_ms,
            version: self.version,
            ttl: self.ttl_secs,
        })
    }

    pub(crate) fn from_item(item: &Item) -> Result<StoredRollup, String> {
        let decoded: RollupItem = decode(item)?;
        let window: WindowAttributes = decode(item)?;
        Ok(StoredRollup {
            pk: decoded.pk,
            key: window.key()?,
            window: window.into_window()?,
            taken_until_ms: decoded.taken_until_ms,
            version: decoded.version,
            ttl_secs: decoded.ttl,
        })
    }
}

/// The dedup key of a window or roll-up item, from its parts.
pub fn key(item: &Item) -> Result<DedupKey, String> {
    decode::<WindowAttributes>(item)?.key()
}

/// The item's kind, when it has a known one.
pub fn kind(item: &Item) -> Option<Kind> {
    match item.get("kind") {
        Some(AttributeValue::S(kind)) => match kind.as_str() {
            "window" => Some(Kind::Window),
            "rollup" => Some(Kind::Rollup),
            _ => None,
        },
        _ => None,
    }
}

/// The item's hash key, for messages about it.
pub fn pk(item: &Item) -> Result<String, String> {
    match item.get(PK) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        Some(_) => Err(format!("attribute {PK} is not a string")),
        None => Err(format!("attribute {PK} is missing")),
    }
}

/// A number attribute, as conditions and filters need one.
pub fn number(n: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::test_fingerprint;

    fn window() -> Window {
        Window {
            open_ms: 1_700_000_000_000,
            window_ms: 3_600_000,
            first_event_id: "a".into(),
            suppressed: 2,
            first_suppressed_ms: Some(1_700_000_000_001),
            last_suppressed_ms: Some(1_700_000_000_002),
            distinct: [
                (
                    "things".to_owned(),
                    ["s1".to_owned(), "s2".to_owned()].into(),
                ),
                ("places".to_owned(), ["b".to_owned()].into()),
            ]
            .into(),
            spec: Some(Box::new(RollupSpec {
                rule_id: "R".into(),
                display_name: "A rule".into(),
                severity: Some(Severity::Low),
                description: "d".into(),
                runbook: "r".into(),
                subject: "{suppressed} more".into(),
                group_by: vec!["awsRegion".into(), "recipientAccountId".into()],
                distinct: vec![
                    ("things".into(), "Things".into()),
                    ("places".into(), "Places".into()),
                ],
            })),
            severity_sent: Some(Severity::Critical),
        }
    }

    fn key() -> DedupKey {
        DedupKey::new("R", vec!["us-east-1".into(), "1:x".into()])
    }

    fn stored() -> StoredWindow {
        StoredWindow {
            window: window(),
            state: State::Pending,
            lease_until_ms: 1_800_000_060_000,
            first_fingerprint: Some(test_fingerprint("a")),
            seen: vec![
                Seen {
                    event_id: "a".into(),
                    fingerprint: Some(test_fingerprint("a")),
                },
                Seen {
                    event_id: "b".into(),
                    fingerprint: Some(test_fingerprint("b")),
                },
            ],
            escalation: Some(Escalation {
                event_id: "b".into(),
                fingerprint: Some(test_fingerprint("b")),
                severity: Severity::Critical,
                previous: Severity::Low,
                lease_until_ms: 1_800_000_060_000,
            }),
            version: 3,
            ttl_secs: 1_800_093_600,
        }
    }

    #[test]
    fn items_round_trip() {
        let s = stored();
        let item = s.to_item(&key());
        assert_eq!(StoredWindow::from_item(&item).unwrap(), s);
        assert_eq!(super::key(&item).unwrap(), key());
        assert_eq!(kind(&item), Some(Kind::Window));
        assert_eq!(item["pk"], AttributeValue::S(key().storage_id()));
        assert_eq!(item["rule_id"], AttributeValue::S("R".into()));
        assert_eq!(
            item["group_values"],
            AttributeValue::L(vec![
                AttributeValue::S("us-east-1".into()),
                AttributeValue::S("1:x".into())
            ])
        );
        assert_eq!(item["rule_name"], AttributeValue::S("A rule".into()));
        assert_eq!(item["state"], AttributeValue::S("pending".into()));
        assert_eq!(item["open_ms"], number(1_700_000_000_000i64));
        assert_eq!(item["end_ms"], number(1_700_003_600_000i64));
        let AttributeValue::M(distinct) = &item["distinct"] else {
            panic!("distinct is a map: {:?}", item["distinct"]);
        };
        assert_eq!(
            distinct["things"],
            AttributeValue::Ss(vec!["s1".into(), "s2".into()])
        );
        assert_eq!(item["seen"], AttributeValue::S(r#"["a","b"]"#.into()));
        assert_eq!(item["ttl"], number(1_800_093_600));
        let batch = StoredRollup::cut(&key(), window(), 1_800_000_000_000, 7, Some(5));
        let item = batch.to_item();
        assert_eq!(kind(&item), Some(Kind::Rollup));
        assert_eq!(item["key"], AttributeValue::S("R:us-east-1:1:x".into()));
        assert_eq!(StoredRollup::from_item(&item).unwrap(), batch);
        let mut empty = s.clone();
        empty.window.distinct.clear();
        empty.window.first_suppressed_ms = None;
        let item = empty.to_item(&key());
        assert!(
            !item.contains_key("distinct"),
            "DynamoDB refuses empty sets"
        );
        assert!(!item.contains_key("first_suppressed_ms"));
        assert_eq!(StoredWindow::from_item(&item).unwrap(), empty);
    }

    #[test]
    fn unreadable_items_are_errors_not_panics() {
        let mut item = stored().to_item(&key());
        item.insert("open_ms".into(), AttributeValue::S("x".into()));
        let e = StoredWindow::from_item(&item).unwrap_err();
        assert!(e.contains("open_ms"), "{e}");
        item.remove("open_ms");
        let e = StoredWindow::from_item(&item).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        item.insert("open_ms".into(), number(1));
        item.insert("state".into(), AttributeValue::S("lost".into()));
        let e = StoredWindow::from_item(&item).unwrap_err();
        assert!(e.contains("state"), "{e}");
        item.insert("state".into(), AttributeValue::S("alerted".into()));
        item.insert("seen".into(), AttributeValue::S("[1]".into()));
        let e = StoredWindow::from_item(&item).unwrap_err();
        assert!(e.contains("seen"), "{e}");
        item.insert("seen".into(), AttributeValue::S("[]".into()));
        assert!(StoredWindow::from_item(&item).is_ok());
    }
}
