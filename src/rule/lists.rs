//! Conditions on list values (`requestParameters.valuesToAdd` and the like), where
//! CloudTrail records who was granted something.

use serde_json::Value;

/// The items of a list value; a scalar counts as a one-item list (a lenient writer
/// may flatten a one-item list), absent or null as none.
fn items(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => &[],
        Some(one) => std::slice::from_ref(one),
    }
}

/// `ListContains`: some item equals `expected`.
pub(super) fn contains(value: Option<&Value>, expected: &Value) -> bool {
    items(value).iter().any(|item| item == expected)
}

/// `ListHasOtherThan`: some item is not the string `other` (the value at the
/// condition's `OtherKey`, e.g. the record's own account). Without `other` every
/// item counts: nothing shows the grant stays inside.
pub(super) fn has_other_than(value: Option<&Value>, other: Option<&str>) -> bool {
    items(value)
        .iter()
        .any(|item| other.is_none() || item.as_str() != other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_scalars_and_absence() {
        let own = Some("111");
        assert!(has_other_than(Some(&json!(["111", "222"])), own));
        assert!(has_other_than(Some(&json!(["all"])), own));
        assert!(!has_other_than(Some(&json!(["111"])), own));
        assert!(!has_other_than(Some(&json!([])), own));
        assert!(!has_other_than(None, own));
        assert!(has_other_than(Some(&json!("222")), own));
        assert!(
            has_other_than(Some(&json!([111])), own),
            "a number is not the account string"
        );
        assert!(has_other_than(Some(&json!(["111"])), None));
        assert!(contains(Some(&json!(["a", "all"])), &json!("all")));
        assert!(contains(Some(&json!("all")), &json!("all")));
        assert!(!contains(Some(&json!(["alll"])), &json!("all")));
        assert!(!contains(None, &json!("all")));
    }
}
