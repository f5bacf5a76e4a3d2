//! The YAML model of a rule file, and its validation into a [`Rule`].
//!
//! Everything a rule file can say is read here, checked once, and turned into the
//! compiled forms the pipeline uses: condition trees, split field paths, parsed
//! templates. A mistake is an error naming what is wrong; the caller names the file.

use serde::Deserialize;
use serde_json::Value;

use super::condition::{Condition, Test};
use super::enrich::RawActions;
use super::output;
use super::path::dotted;
use super::template::RecordTemplate;
use super::{Escalation, Rule, RuleTest, Severity};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawRule {
    #[serde(rename = "RuleID")]
    rule_id: String,
    display_name: Option<String>,
    #[serde(default = "default_true")]
    enabled: bool,
    severity: Severity,
    #[serde(default)]
    description: String,
    #[serde(default)]
    runbook: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    reports: serde_yaml_ng::Mapping,
    #[serde(default = "default_dedup")]
    dedup_period_minutes: u32,
    #[serde(default = "default_threshold")]
    threshold: u32,
    detection: Option<Vec<RawCondition>>,
    #[serde(default)]
    group_by: Vec<String>,
    title: Option<String>,
    subject: Option<String>,
    #[serde(flatten)]
    output: output::RawOutput,
    /// `Enrichment:` and `Containment:` (see `enrich`).
    #[serde(flatten)]
    actions: RawActions,
    #[serde(default)]
    escalations: Vec<RawEscalation>,
    #[serde(default)]
    triage: Vec<String>,
    #[serde(default)]
    false_positives: Vec<String>,
    #[serde(default)]
    response: Vec<String>,
    #[serde(default)]
    tests: Vec<RawTest>,
}

fn default_true() -> bool {
    true
}
fn default_dedup() -> u32 {
    60
}
fn default_threshold() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct RawCondition {
    key: Option<String>,
    deep_key: Option<Vec<String>>,
    condition: Option<String>,
    value: Option<serde_yaml_ng::Value>,
    values: Option<Vec<serde_yaml_ng::Value>>,
    other_key: Option<String>,
    all: Option<Vec<RawCondition>>,
    any: Option<Vec<RawCondition>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct RawEscalation {
    severity: Severity,
    reason: String,
    detection: Vec<RawCondition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTest {
    name: String,
    expected_result: bool,
    log: serde_yaml_ng::Value,
}

fn yaml_to_json(value: serde_yaml_ng::Value) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| format!("value is not JSON-compatible: {e}"))
}

impl RawCondition {
    fn into_condition(self) -> Result<Condition, String> {
        match (self.all, self.any) {
            (Some(all), None) => return all_of(all).map(Condition::All),
            (None, Some(any)) => return all_of(any).map(Condition::Any),
            (Some(_), Some(_)) => return Err("a condition has both All and Any".into()),
            (None, None) => {}
        }
        let path = match (self.key, self.deep_key) {
            (Some(key), None) => vec![key],
            (None, Some(deep)) if !deep.is_empty() => deep,
            _ => return Err("a condition needs exactly one of Key or DeepKey".into()),
        };
        let name = self.condition.ok_or("a condition needs a Condition")?;
        let value = || -> Result<Value, String> {
            yaml_to_json(self.value.clone().ok_or(format!("{name} needs a Value"))?)
        };
        let text = || -> Result<String, String> {
            value()?
                .as_str()
                .map(str::to_owned)
                .ok_or(format!("{name} needs a string Value"))
        };
        let values = || -> Result<Vec<Value>, String> {
            self.values
                .clone()
                .ok_or(format!("{name} needs Values"))?
                .into_iter()
                .map(yaml_to_json)
                .collect()
        };
        let test = match name.as_str() {
            "Equals" => Test::Equals(value()?),
            "DoesNotEqual" => Test::DoesNotEqual(value()?),
            "IsIn" => Test::IsIn(values()?),
            "IsNotIn" => Test::IsNotIn(values()?),
            "IsNull" => Test::IsNull,
            "IsNotNull" | "Exists" => Test::IsNotNull,
            "StartsWith" => Test::StartsWith(text()?),
            "EndsWith" => Test::EndsWith(text()?),
            "Contains" => Test::Contains(text()?),
            "ArnAccountIsNot" => Test::ArnAccountIsNot(dotted(
                self.other_key
                    .as_deref()
                    .ok_or("ArnAccountIsNot needs OtherKey")?,
            )),
            "ListContains" => Test::ListContains(value()?),
            "ListHasOtherThan" => Test::ListHasOtherThan(dotted(
                self.other_key
                    .as_deref()
                    .ok_or("ListHasOtherThan needs OtherKey")?,
            )),
            other => return Err(format!("unknown Condition {other:?}")),
        };
        Ok(Condition::Field { path, test })
    }
}

pub(super) fn all_of(raw: Vec<RawCondition>) -> Result<Vec<Condition>, String> {
    raw.into_iter().map(RawCondition::into_condition).collect()
}

impl RawEscalation {
    pub(super) fn compile(self) -> Result<Escalation, String> {
        Ok(Escalation {
            severity: self.severity,
            reason: self.reason,
            condition: Condition::All(all_of(self.detection)?),
        })
    }
}

fn yaml_str(value: &serde_yaml_ng::Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

impl RawRule {
    pub(super) fn into_rule(self, origin: &str) -> Result<Rule, String> {
        if self.threshold != 1 {
            return Err(format!(
                "Threshold {} is not supported (only 1: alert on the first match)",
                self.threshold
            ));
        }
        if self.dedup_period_minutes == 0 {
            return Err("DedupPeriodMinutes must be at least 1".into());
        }
        let detection = Condition::All(all_of(
            self.detection
                .ok_or("the rule needs a Detection: list (Python rules are not supported)")?,
        )?);
        let mitre = self
            .reports
            .iter()
            .filter(|(k, _)| k.as_str() == Some("MITRE ATT&CK"))
            .flat_map(|(_, v)| v.as_sequence().into_iter().flatten())
            .filter_map(yaml_str)
            .collect();
        let escalations = self
            .escalations
            .into_iter()
            .map(RawEscalation::compile)
            .collect::<Result<_, String>>()?;
        let tests = self
            .tests
            .into_iter()
            .map(|t| {
                Ok(RuleTest {
                    name: t.name,
                    expected: t.expected_result,
                    log: yaml_to_json(t.log)?,
                })
            })
            .collect::<Result<_, String>>()?;
        let display_name = self.display_name.unwrap_or_else(|| self.rule_id.clone());
        let output = self.output.into_output(&display_name)?;
        let (enrichment, containment) = self.actions.compile(&output)?;
        let title = RecordTemplate::over_records(self.title.as_deref().unwrap_or(&display_name))
            .map_err(|e| format!("Title: {e}"))?;
        let subject =
            RecordTemplate::over_records(self.subject.as_deref().unwrap_or(&display_name))
                .map_err(|e| format!("Subject: {e}"))?;
        Ok(Rule {
            title,
            subject,
            id: self.rule_id,
            display_name,
            severity: self.severity,
            description: self.description.trim().to_owned(),
            runbook: self.runbook.trim_end().to_owned(),
            reference: self.reference,
            mitre,
            dedup_minutes: self.dedup_period_minutes,
            detection,
            group_by: self.group_by.iter().map(|g| dotted(g)).collect(),
            output,
            enabled: self.enabled,
            escalations,
            enrichment,
            containment,
            triage: self.triage,
            false_positives: self.false_positives,
            response: self.response,
            tests,
            origin: origin.to_owned(),
        })
    }
}
