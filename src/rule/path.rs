//! Field paths into a record and the text of what they find.
//!
//! A rule names fields with dotted paths (`requestParameters.sourceArn`); they are
//! split into a [`FieldPath`] once, when the rule loads, and looked up per record
//! without allocating. Code that names a fixed field (the principal, an allow-list
//! field) passes a `&[&str]` to the same [`lookup`].

use serde_json::Value;

/// A path into a record: `["requestParameters", "sourceArn"]`.
pub type FieldPath = Vec<String>;

/// Splits a dotted path (`a.b.c`) into its steps.
pub fn dotted(path: &str) -> FieldPath {
    path.split('.').map(str::to_owned).collect()
}

/// Looks a path up in a JSON record; `None` when any step is missing or not an object.
pub fn lookup<'a, S: AsRef<str>>(record: &'a Value, path: &[S]) -> Option<&'a Value> {
    path.iter()
        .try_fold(record, |value, step| value.as_object()?.get(step.as_ref()))
}

/// The first path whose value is present and not null.
pub fn first_present<'a>(record: &'a Value, paths: &[FieldPath]) -> Option<&'a Value> {
    paths
        .iter()
        .filter_map(|path| lookup(record, path))
        .find(|value| !value.is_null())
}

/// Text of a scalar JSON value; `unknown` when missing, null or not a scalar.
pub fn scalar_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => crate::UNKNOWN.to_owned(),
    }
}

/// The account field of an ARN (`arn:partition:service:region:account:resource`).
pub fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let account = parts.nth(3)?;
    (!account.is_empty()).then_some(account)
}

/// The resource name at the end of an ARN (after the last `:` or `/`).
pub fn arn_name(arn: &str) -> &str {
    arn.rsplit([':', '/']).next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arn_helpers() {
        assert_eq!(arn_account("arn:aws:iam::123:role/x"), Some("123"));
        assert_eq!(arn_account("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_account("alias/foo"), None);
        assert_eq!(
            arn_name("arn:aws:rds:us-east-1:1:snapshot:prod-db"),
            "prod-db"
        );
        assert_eq!(arn_name("arn:aws:iam::1:role/path/r"), "r");
    }

    #[test]
    fn lookups_walk_objects_only_and_skip_nulls_when_asked() {
        let record = json!({"a": {"b": null, "c": [1], "d": "x"}, "e": 2});
        assert_eq!(lookup(&record, &["a", "d"]), Some(&json!("x")));
        assert_eq!(lookup(&record, &dotted("a.b")), Some(&Value::Null));
        assert_eq!(
            lookup(&record, &["a", "c", "0"]),
            None,
            "arrays are not walked"
        );
        assert_eq!(lookup(&record, &["e", "f"]), None);
        let paths = [dotted("a.b"), dotted("zz"), dotted("e")];
        assert_eq!(first_present(&record, &paths), Some(&json!(2)));
        assert_eq!(scalar_text(lookup(&record, &["a", "c"])), crate::UNKNOWN);
        assert_eq!(scalar_text(lookup(&record, &["e"])), "2");
    }
}
