//! The fields of a record that rules and alerts read, and the parse that builds
//! only those.
//!
//! A candidate record must be parsed to be evaluated, but a full
//! `serde_json::Value` costs some 50 to 100 bytes per JSON value: a record of a
//! few megabytes of small values (the caller of an API fills its own
//! `requestParameters`) became hundreds of megabytes, enough to kill a Lambda
//! function and lose every alert of its object. The rules and the alert read a few
//! dozen paths, so [`parse_fields`] builds a `Value` of those subtrees only and
//! skips everything else as it validates it (`IgnoredAny`, which keeps no state
//! but the nesting brackets).
//!
//! - [`FieldSet`] is a tree of paths: a path that ends at a node keeps that node's
//!   whole value, a node on the way to deeper paths keeps only its named members.
//!   The detector derives it from its rules (conditions, escalations, group-by,
//!   alert fields, templates, roll-up lists) and from the fixed fields the alert,
//!   the allow-list and the detector itself read: adding a rule or an alert field
//!   adds its paths, nothing else has to change.
//! - A kept value that is a scalar is kept whole, so every scalar condition
//!   (`Equals`, `StartsWith`, `ArnAccountIsNot`...) is exact. A kept container (a
//!   list such as `exportOnly`) keeps at most [`MAX_KEPT_VALUES`] values and
//!   [`MAX_KEPT_BYTES`] of text, nested at most [`MAX_EVALUATED_DEPTH`] levels; the
//!   rest is skipped and said in a warning (the alert's `parseWarnings`). List
//!   conditions see the kept values: AWS's own API limits keep real lists far
//!   shorter (at most 20 accounts in `valuesToAdd`).
//! - A node on the way that holds something other than an object reads as `null`:
//!   no path goes on through it, exactly as in the full record.
//!
//! Memory per record is then the kept fields (bounded by the caps above, plus the
//! scalars the rules read) whatever the record's size or shape.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

pub use crate::decode::repair::MAX_EVALUATED_DEPTH;

/// Values kept of one kept container (its items, and theirs).
pub const MAX_KEPT_VALUES: usize = 1000;
/// Bytes of strings kept of one kept container; a string that does not fit is cut
/// and marked (see [`crate::text::truncate_marked`]).
pub const MAX_KEPT_BYTES: usize = 64 << 10;
/// Warnings kept per record.
const MAX_NOTES: usize = 8;

/// The paths a parse keeps, as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    root: Node,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    /// Dotted path of this node (for warnings).
    path: String,
    /// A path ends here: the whole value is kept.
    whole: bool,
    children: BTreeMap<String, Node>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Keeps `path` (its whole value). An empty path keeps nothing.
    pub fn add<S: AsRef<str>>(&mut self, path: &[S]) {
        if path.is_empty() {
            return;
        }
        let mut node = &mut self.root;
        for step in path {
            let step = step.as_ref();
            let parent = node.path.clone();
            node = node
                .children
                .entry(step.to_owned())
                .or_insert_with(|| Node {
                    path: if parent.is_empty() {
                        step.to_owned()
                    } else {
                        format!("{parent}.{step}")
                    },
                    ..Node::default()
                });
        }
        node.whole = true;
    }

    /// The kept paths, dotted, in order (those under a kept path are implied).
    pub fn paths(&self) -> Vec<String> {
        fn walk(node: &Node, out: &mut Vec<String>) {
            if node.whole {
                out.push(node.path.clone());
                return;
            }
            node.children.values().for_each(|child| walk(child, out));
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

/// What [`parse_fields`] built.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// An object holding the kept fields of the record.
    pub record: Value,
    /// What was not kept of kept containers, by path.
    pub notes: Vec<String>,
}

/// Parses one record (a JSON object; anything else yields an empty object),
/// keeping the fields of `fields`, validating and skipping the rest. Fails where
/// `serde_json` fails on the text (a strict parse: see [`crate::decode::repair`]
/// for the lenient one), except that strings and numbers it skips are only checked
/// for their syntax.
pub fn parse_fields(json: &[u8], fields: &FieldSet) -> Result<Selected, serde_json::Error> {
    let notes = RefCell::new(Notes::default());
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let record = Select {
        node: &fields.root,
        notes: &notes,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    let record = match record {
        Value::Object(_) => record,
        _ => Value::Object(Map::new()),
    };
    Ok(Selected {
        record,
        notes: notes.into_inner().finish(),
    })
}

#[derive(Default)]
struct Notes {
    list: Vec<String>,
    more: usize,
}

impl Notes {
    fn push(&mut self, note: String) {
        if self.list.len() < MAX_NOTES {
            self.list.push(note);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list
                .push(format!("and {} more fields cut short", self.more));
        }
        self.list
    }
}

/// A node of the tree on the way to kept paths (or one that is kept whole).
#[derive(Clone, Copy)]
struct Select<'a> {
    node: &'a Node,
    notes: &'a RefCell<Notes>,
}

impl<'de> DeserializeSeed<'de> for Select<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.node.whole {
            let budget = Budget {
                values: Cell::new(MAX_KEPT_VALUES),
                bytes: Cell::new(MAX_KEPT_BYTES),
                skipped: Cell::new(0),
                cut: Cell::new(0),
                deep: Cell::new(false),
            };
            let value = Keep {
                budget: &budget,
                depth: 0,
            }
            .deserialize(deserializer)?;
            budget.report(&self.node.path, &mut self.notes.borrow_mut());
            return Ok(value);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Select<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(found) = map.next_key_seed(Key(self.node))? {
            match found {
                Some((name, child)) => {
                    let value = map.next_value_seed(Select {
                        node: child,
                        notes: self.notes,
                    })?;
                    object.insert(name, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A member name: the child node it names, with the name, when it is kept.
struct Key<'a>(&'a Node);

impl<'de, 'a> DeserializeSeed<'de> for Key<'a> {
    type Value = Option<(String, &'a Node)>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for Key<'a> {
    type Value = Option<(String, &'a Node)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self
            .0
            .children
            .get(name)
            .map(|child| (name.to_owned(), child)))
    }
}

/// What one kept value may still take.
struct Budget {
    values: Cell<usize>,
    bytes: Cell<usize>,
    /// Values not kept.
    skipped: Cell<u64>,
    /// Strings cut short.
    cut: Cell<u64>,
    /// Containers nested too deep to keep.
    deep: Cell<bool>,
}

impl Budget {
    fn report(&self, path: &str, notes: &mut Notes) {
        let (skipped, cut) = (self.skipped.get(), self.cut.get());
        if skipped > 0 {
            notes.push(format!(
                "{path}: {skipped} more values than the {MAX_KEPT_VALUES} values and {MAX_KEPT_BYTES} bytes kept were not evaluated"
            ));
        }
        if cut > 0 {
            notes.push(format!("{path}: {cut} strings cut short"));
        }
        if self.deep.get() {
            notes.push(format!(
                "{path}: containers nested deeper than {MAX_EVALUATED_DEPTH} levels were not evaluated"
            ));
        }
    }

    /// Takes one value from the budget; `false` when there is none left.
    fn take(&self) -> bool {
        match self.values.get() {
            0 => {
                self.skipped.set(self.skipped.get() + 1);
                false
            }
            n => {
                self.values.set(n - 1);
                true
            }
        }
    }

    /// A string as kept: whole while the bytes last, then cut and marked.
    fn text(&self, text: &str) -> String {
        let left = self.bytes.get();
        let kept = crate::text::truncate_marked(text, left.max(64));
        if kept.len() < text.len() {
            self.cut.set(self.cut.get() + 1);
        }
        self.bytes.set(left.saturating_sub(kept.len()));
        kept.into_owned()
    }
}

/// A kept value. The value itself (depth 0) is a scalar kept whole, or a
/// container whose contents take from the budget.
#[derive(Clone, Copy)]
struct Keep<'a> {
    budget: &'a Budget,
    depth: usize,
}

impl Keep<'_> {
    fn inner(self) -> Self {
        Keep {
            depth: self.depth + 1,
            ..self
        }
    }
}

impl<'de> DeserializeSeed<'de> for Keep<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.depth >= MAX_EVALUATED_DEPTH {
            deserializer.deserialize_ignored_any(IgnoredAny)?;
            self.budget.deep.set(true);
            return Ok(Value::Null);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(if self.depth == 0 {
            v.to_owned()
        } else {
            self.budget.text(v)
        }))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            if self.budget.values.get() == 0 || self.budget.bytes.get() == 0 {
                // Out of budget: the rest is counted, not kept.
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    self.budget.skipped.set(self.budget.skipped.get() + 1);
                }
                break;
            }
            match seq.next_element_seed(self.inner())? {
                Some(item) if self.budget.take() => items.push(item),
                Some(_) => {}
                None => break,
            }
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        loop {
            if self.budget.values.get() == 0 || self.budget.bytes.get() == 0 {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    self.budget.skipped.set(self.budget.skipped.get() + 1);
                }
                break;
            }
            let Some(name) = map.next_key::<String>()? else {
                break;
            };
            let value = map.next_value_seed(self.inner())?;
            if self.budget.take() {
                let name = self.budget.text(&name);
                object.insert(name, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(paths: &[&str]) -> FieldSet {
        let mut set = FieldSet::new();
        for path in paths {
            set.add(&path.split('.').collect::<Vec<_>>());
        }
        set
    }

    fn parse(json: &str, paths: &[&str]) -> Selected {
        parse_fields(json.as_bytes(), &fields(paths)).unwrap()
    }

    #[test]
    fn keeps_the_named_paths_and_nothing_else() {
        let record = r#"{"eventName":"StartExportTask","other":{"big":[1,2,3]},
            "userIdentity":{"arn":"a","type":"Root","sessionContext":{"sessionIssuer":{"userName":"u","x":1}}},
            "requestParameters":{"exportOnly":["t1","t2"],"s3BucketName":"b","junk":"j"}}"#;
        let selected = parse(
            record,
            &[
                "eventName",
                "userIdentity.arn",
                "userIdentity.sessionContext.sessionIssuer.userName",
                "requestParameters.exportOnly",
                "requestParameters.s3BucketName",
                "missing.path",
            ],
        );
        assert_eq!(
            selected.record,
            json!({"eventName":"StartExportTask",
                   "userIdentity":{"arn":"a","sessionContext":{"sessionIssuer":{"userName":"u"}}},
                   "requestParameters":{"exportOnly":["t1","t2"],"s3BucketName":"b"}})
        );
        assert!(selected.notes.is_empty());
    }

    #[test]
    fn lookups_give_what_they_give_on_the_full_record() {
        // Duplicates (the last wins), a scalar where an object is expected, null.
        let record = r#"{"a":{"b":1},"a":{"c":2},"s":"text","n":null,"l":[{"b":1}]}"#;
        let full: Value = serde_json::from_str(record).unwrap();
        let paths = ["a.b", "a.c", "s.b", "n.b", "n", "l.b", "s"];
        let selected = parse(record, &paths);
        for path in paths {
            let steps: Vec<&str> = path.split('.').collect();
            assert_eq!(
                crate::rule::lookup(&selected.record, &steps),
                crate::rule::lookup(&full, &steps),
                "{path}"
            );
        }
    }

    #[test]
    fn kept_containers_are_capped_and_say_so() {
        let many: Vec<u32> = (0..5000).collect();
        let record = json!({"p": {"list": many, "name": "x".repeat(200_000)}}).to_string();
        let selected = parse(&record, &["p.list", "p.name"]);
        let list = selected.record["p"]["list"].as_array().unwrap();
        assert_eq!(list.len(), MAX_KEPT_VALUES);
        assert_eq!(list[999], 999);
        assert_eq!(
            selected.record["p"]["name"].as_str().unwrap().len(),
            200_000,
            "a scalar is kept whole: conditions on it are exact"
        );
        assert_eq!(selected.notes.len(), 1, "{:?}", selected.notes);
        assert!(
            selected.notes[0].starts_with("p.list: 4000 more values"),
            "{:?}",
            selected.notes
        );
        let long = json!({"l": ["y".repeat(100_000), "z"]}).to_string();
        let selected = parse(&long, &["l"]);
        let kept = selected.record["l"].as_array().unwrap();
        assert!(kept[0]
            .as_str()
            .unwrap()
            .ends_with("[truncated from 100000 bytes]"));
        assert_eq!(kept.len(), 1, "the bytes ran out");
        assert!(selected.notes.iter().any(|n| n == "l: 1 strings cut short"));
    }

    #[test]
    fn deep_containers_are_kept_to_the_limit() {
        let deep = format!("{{\"d\":{}1{}}}", "[".repeat(300), "]".repeat(300));
        let selected = parse(&deep, &["d"]);
        assert!(
            selected.notes[0].contains("nested deeper than"),
            "{:?}",
            selected.notes
        );
        // Skipped parts may be deeper than serde_json's own limit.
        let selected = parse(&deep, &["x"]);
        assert_eq!(selected.record, json!({}));
        // Far deeper than the strict parser allows, beside a field that is read.
        let depth = 5000;
        let json = format!(
            r#"{{"eventName":"StartExportTask","p":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&json).is_err(),
            "strict limit"
        );
        let selected = parse(&json, &["eventName", "p"]);
        assert_eq!(selected.record["eventName"], "StartExportTask");
        assert!(
            selected
                .notes
                .iter()
                .any(|n| n.contains("nested deeper than")),
            "{:?}",
            selected.notes
        );
        let shallow = parse(r#"{"a":[[{"b":1}]]}"#, &["a"]);
        assert_eq!(shallow.record, json!({"a":[[{"b":1}]]}));
        assert!(shallow.notes.is_empty(), "{:?}", shallow.notes);
    }

    #[test]
    fn strictness_is_serde_jsons_where_fields_are_read() {
        let fields = fields(&["a"]);
        assert!(parse_fields(br#"{"a":"\udc00"}"#, &fields).is_err());
        assert!(parse_fields(br#"{"a":1,"b":tru}"#, &fields).is_err());
        assert!(parse_fields(br#"{"a":1} x"#, &fields).is_err());
        assert_eq!(
            parse_fields(br#"[1]"#, &fields).unwrap().record,
            json!({}),
            "not an object: no fields"
        );
    }

    #[test]
    fn paths_are_listed_once() {
        let set = fields(&["a.b", "a", "c.d.e", "c.d.f"]);
        assert_eq!(set.paths(), ["a", "c.d.e", "c.d.f"]);
    }
}
