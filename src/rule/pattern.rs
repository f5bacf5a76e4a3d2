//! The EventBridge event pattern that sends a rule set's API calls to the function.
//!
//! The real-time path (see `trigger::api_call`) only works if an EventBridge rule
//! forwards the right "AWS API Call via CloudTrail" events, and only those: every
//! forwarded event is an invocation, and across accounts a charged event. What is
//! right is the rules' business, so the pattern is derived from their `Detection:`
//! (`trailwatch eventbridge-pattern`), and the templates must carry exactly that
//! pattern (a test compares them).
//!
//! The pattern is a prefilter: the function evaluates every forwarded record with
//! the full rule, so a pattern wider than a rule costs invocations, never alerts,
//! while a narrower one would lose real-time alerts (the log file would still
//! bring them, minutes later). It is therefore built only from conditions it can
//! express exactly, all of which every match must meet (the top-level conjuncts of
//! each rule):
//!
//! - `eventSource` (`Equals`, `IsIn`) gives `detail.eventSource` and the event's
//!   `source` (`rds.amazonaws.com` is `aws.rds`);
//! - `eventName` (`Equals`, `IsIn`) gives `detail.eventName`;
//! - `errorCode` `IsNull` gives `detail.errorCode: [{"exists": false}, null]`
//!   (EventBridge's `exists: false` matches an absent field and `null` a JSON
//!   null; `IsNull` holds for both). CloudTrail does send failed calls to
//!   EventBridge, with their `errorCode`, so this keeps them from being forwarded.
//!
//! Other conditions are left to the function. The rules are united field by field
//! (every source with every name), which is wider than their union when rules
//! watch different services, and never narrower. A rule without both an
//! `eventSource` and an `eventName` literal would forward a whole service, or every
//! call: it is refused for this path, with a message naming it.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{Condition, Rule, Test};
use crate::trigger::api_call::DETAIL_TYPE as API_CALL_DETAIL_TYPE;

/// Why a rule set has no event pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("no enabled rule: there is nothing for EventBridge to send")]
    NoRules,
    #[error("rule {rule} ({origin}) cannot be sent by EventBridge: {reason}")]
    Inexpressible {
        rule: String,
        origin: String,
        reason: String,
    },
}

/// What one rule requires of the fields a pattern can test.
#[derive(Debug, Default)]
struct Required {
    event_sources: Option<BTreeSet<String>>,
    event_names: Option<BTreeSet<String>>,
    no_error: bool,
}

/// The event pattern forwarding every API call that may match one of `rules`.
pub fn event_pattern(rules: &[Rule]) -> Result<Value, PatternError> {
    if rules.is_empty() {
        return Err(PatternError::NoRules);
    }
    let mut event_sources = BTreeSet::new();
    let mut event_names = BTreeSet::new();
    let mut no_error = true;
    for rule in rules {
        let refuse = |reason: String| PatternError::Inexpressible {
            rule: rule.id.clone(),
            origin: rule.origin.clone(),
            reason,
        };
        let required = required_of(&rule.detection);
        let sources = required
            .event_sources
            .ok_or_else(|| refuse("its Detection requires no eventSource (Equals or IsIn at the top level), so every service's calls would be sent".into()))?;
        let names = required
            .event_names
            .ok_or_else(|| refuse("its Detection requires no eventName (Equals or IsIn at the top level), so every call of the service would be sent".into()))?;
        if sources.is_empty() || names.is_empty() {
            return Err(refuse(
                "its eventSource or eventName conditions contradict each other: it never matches"
                    .into(),
            ));
        }
        for source in &sources {
            event_source_name(source).ok_or_else(|| {
                refuse(format!(
                    "eventSource {source:?} is not an AWS service endpoint (<service>.amazonaws.com)"
                ))
            })?;
        }
        event_sources.extend(sources);
        event_names.extend(names);
        no_error &= required.no_error;
    }
    let sources: BTreeSet<String> = event_sources
        .iter()
        .filter_map(|s| event_source_name(s))
        .collect();
    let mut detail = json!({
        "eventSource": event_sources,
        "eventName": event_names,
    });
    if no_error {
        detail["errorCode"] = json!([{"exists": false}, null]);
    }
    Ok(json!({
        "source": sources,
        "detail-type": [API_CALL_DETAIL_TYPE],
        "detail": detail,
    }))
}

/// EventBridge's `source` for a CloudTrail `eventSource`: `aws.` and the service
/// name (`rds.amazonaws.com` is `aws.rds`).
fn event_source_name(event_source: &str) -> Option<String> {
    let service = event_source.strip_suffix(".amazonaws.com")?;
    let valid = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| format!("aws.{service}"))
}

/// The top-level conjuncts of a detection that a pattern can express.
fn required_of(detection: &Condition) -> Required {
    let conjuncts = match detection {
        Condition::All(all) => all.as_slice(),
        one => std::slice::from_ref(one),
    };
    let mut required = Required::default();
    for condition in conjuncts {
        let Condition::Field { path, test } = condition else {
            continue;
        };
        let [field] = path.as_slice() else {
            continue;
        };
        let slot = match field.as_str() {
            "eventSource" => &mut required.event_sources,
            "eventName" => &mut required.event_names,
            "errorCode" => {
                required.no_error |= *test == Test::IsNull;
                continue;
            }
            _ => continue,
        };
        let Some(values) = string_values(test) else {
            continue;
        };
        // Two conditions on one field: a match meets both.
        *slot = Some(match slot.take() {
            Some(before) => before.intersection(&values).cloned().collect(),
            None => values,
        });
    }
    required
}

/// The strings an `Equals` or `IsIn` test accepts (`None` for other tests, or
/// values that are not all strings).
fn string_values(test: &Test) -> Option<BTreeSet<String>> {
    let values = match test {
        Test::Equals(value) => std::slice::from_ref(value),
        Test::IsIn(values) => values.as_slice(),
        _ => return None,
    };
    values
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleSet;

    fn rule(detection: &str) -> Rule {
        let yaml = format!("RuleID: Test.Rule\nSeverity: High\nDetection:\n{detection}");
        Rule::from_yaml("test_rule.yml", &yaml).unwrap()
    }

    #[test]
    fn the_export_rule_gives_source_names_and_no_error() {
        let pattern = event_pattern(&RuleSet::embedded().rules).unwrap();
        assert_eq!(
            pattern,
            json!({
                "source": ["aws.rds"],
                "detail-type": ["AWS API Call via CloudTrail"],
                "detail": {
                    "eventSource": ["rds.amazonaws.com"],
                    "eventName": ["StartExportTask"],
                    "errorCode": [{"exists": false}, null],
                },
            })
        );
    }

    #[test]
    fn rules_are_united_and_conditions_the_pattern_cannot_test_are_left_out() {
        let set = RuleSet::load(&["AWS.RDS.SnapshotShared"]).unwrap();
        let pattern = event_pattern(&set.rules).unwrap();
        assert_eq!(
            pattern["detail"]["eventName"],
            json!([
                "ModifyDBClusterSnapshotAttribute",
                "ModifyDBSnapshotAttribute",
                "StartExportTask"
            ])
        );
        assert!(
            pattern["detail"].get("requestParameters").is_none(),
            "the shared rule's other conditions are the function's to evaluate"
        );
        assert_eq!(pattern["source"], json!(["aws.rds"]));
    }

    #[test]
    fn an_error_condition_is_kept_only_when_every_rule_has_it() {
        let failed = rule(
            "  - {Key: eventSource, Condition: Equals, Value: iam.amazonaws.com}\n  - {Key: eventName, Condition: Equals, Value: CreateUser}\n  - {Key: errorCode, Condition: IsNotNull}\n",
        );
        let pattern = event_pattern(std::slice::from_ref(&failed)).unwrap();
        assert!(pattern["detail"].get("errorCode").is_none(), "{pattern}");
        let both = [RuleSet::embedded().rules, vec![failed]].concat();
        let pattern = event_pattern(&both).unwrap();
        assert!(pattern["detail"].get("errorCode").is_none(), "{pattern}");
        assert_eq!(pattern["source"], json!(["aws.iam", "aws.rds"]));
    }

    #[test]
    fn rules_that_would_send_too_much_are_refused_by_name() {
        for (detection, why) in [
            (
                "  - {Key: eventName, Condition: Equals, Value: StartExportTask}\n",
                "requires no eventSource",
            ),
            (
                "  - {Key: eventSource, Condition: Equals, Value: rds.amazonaws.com}\n  - {Key: eventName, Condition: StartsWith, Value: Start}\n",
                "requires no eventName",
            ),
            (
                "  - Any:\n      - {Key: eventSource, Condition: Equals, Value: rds.amazonaws.com}\n      - {Key: eventName, Condition: Equals, Value: StartExportTask}\n",
                "requires no eventSource",
            ),
            (
                "  - {Key: eventSource, Condition: Equals, Value: rds.amazonaws.com}\n  - {Key: eventSource, Condition: Equals, Value: s3.amazonaws.com}\n  - {Key: eventName, Condition: Equals, Value: X}\n",
                "never matches",
            ),
            (
                "  - {Key: eventSource, Condition: Equals, Value: example.com}\n  - {Key: eventName, Condition: Equals, Value: X}\n",
                "not an AWS service endpoint",
            ),
        ] {
            let error = event_pattern(&[rule(detection)]).unwrap_err().to_string();
            assert!(
                error.contains("rule Test.Rule (test_rule.yml)") && error.contains(why),
                "{detection}: {error}"
            );
        }
        assert_eq!(event_pattern(&[]), Err(PatternError::NoRules));
    }
}
