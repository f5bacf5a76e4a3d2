//! A rule's `Detection:` as a condition tree, and its evaluation on a record.
//!
//! The tree is built once from the YAML (see `model`); evaluation walks it with
//! paths already split, so matching a record allocates nothing. The tree also tells
//! the scanner which literal strings every matching record must contain
//! ([`Condition::required_literals`]), the basis of the prefilter.

use serde_json::Value;

use super::lists;
use super::path::{arn_account, lookup, FieldPath};

/// One test applied to the value found at a condition's key.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Equals(Value),
    DoesNotEqual(Value),
    IsIn(Vec<Value>),
    IsNotIn(Vec<Value>),
    /// Absent or JSON `null` (Panther: `deep_get(...) is None`).
    IsNull,
    IsNotNull,
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    /// The value is an ARN naming an account (its fifth `:` field) that differs from
    /// the string at `OtherKey`. ARNs without an account never hold.
    ArnAccountIsNot(FieldPath),
    /// The value is a list with an item equal to this (see [`lists`]).
    ListContains(Value),
    /// The value is a list with an item other than the string at `OtherKey`.
    ListHasOtherThan(FieldPath),
}

/// A declarative condition tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Field { path: FieldPath, test: Test },
}

impl Condition {
    /// Evaluates the condition on a record.
    pub fn holds(&self, record: &Value) -> bool {
        match self {
            Condition::All(all) => all.iter().all(|c| c.holds(record)),
            Condition::Any(any) => any.iter().any(|c| c.holds(record)),
            Condition::Field { path, test } => test.holds(record, path),
        }
    }

    /// Every record path the condition reads (its keys and `OtherKey`s).
    pub(super) fn paths(&self, out: &mut Vec<FieldPath>) {
        match self {
            Condition::All(all) | Condition::Any(all) => all.iter().for_each(|c| c.paths(out)),
            Condition::Field { path, test } => {
                out.push(path.clone());
                if let Test::ArnAccountIsNot(other) | Test::ListHasOtherThan(other) = test {
                    out.push(other.clone());
                }
            }
        }
    }

    /// Literal strings that every matching record must spell somewhere, derived from
    /// top-level `Equals` tests on strings (an `Any` yields none: it proves nothing).
    pub(super) fn required_literals(&self, out: &mut Vec<(FieldPath, String)>) {
        match self {
            Condition::All(all) => all.iter().for_each(|c| c.required_literals(out)),
            Condition::Field {
                path,
                test: Test::Equals(Value::String(s)),
            } => out.push((path.clone(), s.clone())),
            _ => {}
        }
    }
}

impl Test {
    /// Does the value at `path` of `record` pass? A JSON `null` counts as absent.
    fn holds(&self, record: &Value, path: &[String]) -> bool {
        let found = lookup(record, path).filter(|v| !v.is_null());
        let text = || found.and_then(Value::as_str);
        match self {
            Test::IsNull => found.is_none(),
            Test::IsNotNull => found.is_some(),
            Test::Equals(expected) => found == Some(expected),
            Test::DoesNotEqual(expected) => found != Some(expected),
            Test::IsIn(set) => found.is_some_and(|v| set.contains(v)),
            Test::IsNotIn(set) => !found.is_some_and(|v| set.contains(v)),
            Test::StartsWith(prefix) => text().is_some_and(|s| s.starts_with(prefix)),
            Test::EndsWith(suffix) => text().is_some_and(|s| s.ends_with(suffix)),
            Test::Contains(part) => text().is_some_and(|s| s.contains(part)),
            Test::ArnAccountIsNot(other) => {
                let account = text().and_then(arn_account);
                let other = lookup(record, other).and_then(Value::as_str);
                matches!((account, other), (Some(a), Some(o)) if a != o)
            }
            Test::ListContains(expected) => lists::contains(found, expected),
            Test::ListHasOtherThan(other) => {
                lists::has_other_than(found, lookup(record, other).and_then(Value::as_str))
            }
        }
    }
}
