//! Detection rules as data.
//!
//! A rule is a YAML file in Panther's rule format (`RuleID`, `Severity`,
//! `DedupPeriodMinutes`, `Tests`, ...) whose Python `rule()` is replaced by a
//! declarative `Detection:` list in Panther's simple-detection style. Adding a rule
//! means adding a YAML file: the pipeline only ever asks a [`Rule`] whether a record
//! matches, which literal needles prove a record cannot match (see [`Rule::needles`]),
//! and how to render its alert fields.

mod lists;
mod output;
mod select;

use std::path::Path;

use serde::Deserialize;

pub use select::parse_rule_list;

pub use output::{
    render_fields, AlertField, Distinct, DistinctSource, EmailRow, Output, RollupSpec, RowContent,
};
use serde_json::Value;

/// The rules compiled into the binary (file name, YAML text).
pub const EMBEDDED_RULES: &[(&str, &str)] = &[
    (
        "aws_rds_snapshot_export.yml",
        include_str!("../rules/aws_rds_snapshot_export.yml"),
    ),
    (
        "aws_rds_snapshot_shared.yml",
        include_str!("../rules/aws_rds_snapshot_shared.yml"),
    ),
];

/// Errors while loading a rule file.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("rule file {path}: invalid YAML: {source}")]
    Yaml {
        path: String,
        source: serde_yaml_ng::Error,
    },
    #[error("rule file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Alert severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Upper-case label used in e-mail subjects and SNS attributes (`HIGH`).
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// A path into a record: `["requestParameters", "sourceArn"]`.
pub type FieldPath = Vec<String>;

/// Looks a path up in a JSON record; `None` when any step is missing or not an object.
pub fn lookup<'a>(record: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(record, |value, step| value.as_object()?.get(step))
}

/// The first path whose value is present and not null.
pub fn first_present<'a>(record: &'a Value, paths: &[FieldPath]) -> Option<&'a Value> {
    paths
        .iter()
        .filter_map(|path| lookup(record, path))
        .find(|value| !value.is_null())
}

fn dotted(path: &str) -> FieldPath {
    path.split('.').map(str::to_owned).collect()
}

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
            Condition::Field { path, test } => {
                let found = lookup(record, path).filter(|v| !v.is_null());
                match test {
                    Test::IsNull => found.is_none(),
                    Test::IsNotNull => found.is_some(),
                    Test::Equals(expected) => found == Some(expected),
                    Test::DoesNotEqual(expected) => found != Some(expected),
                    Test::IsIn(set) => found.is_some_and(|v| set.contains(v)),
                    Test::IsNotIn(set) => !found.is_some_and(|v| set.contains(v)),
                    Test::StartsWith(prefix) => found
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.starts_with(prefix)),
                    Test::EndsWith(suffix) => found
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.ends_with(suffix)),
                    Test::Contains(part) => found
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.contains(part)),
                    Test::ArnAccountIsNot(other) => {
                        let account = found.and_then(Value::as_str).and_then(arn_account);
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
    }

    /// Literal strings that every matching record must spell somewhere, derived from
    /// top-level `Equals` tests on strings (an `Any` yields none: it proves nothing).
    fn required_literals(&self, out: &mut Vec<(FieldPath, String)>) {
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

/// The account field of an ARN (`arn:partition:service:region:account:resource`).
pub fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let account = parts.nth(3)?;
    (!account.is_empty()).then_some(account)
}

/// A severity raise with the reason shown in the alert.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub severity: Severity,
    pub reason: String,
    pub condition: Condition,
}

/// One of the rule's own test cases.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    pub expected: bool,
    pub log: Value,
}

/// A loaded, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub display_name: String,
    pub severity: Severity,
    pub description: String,
    pub runbook: String,
    pub reference: String,
    /// MITRE ATT&CK entries such as `TA0010:T1537`.
    pub mitre: Vec<String>,
    pub dedup_minutes: u32,
    pub detection: Condition,
    pub group_by: Vec<FieldPath>,
    title: String,
    subject: String,
    /// Alert fields, e-mail rows and roll-up lists (see [`output`]).
    pub output: Output,
    /// `Enabled: false` rules load only when named (`TRAILWATCH_RULES`, `--rules`).
    pub enabled: bool,
    pub escalations: Vec<Escalation>,
    pub triage: Vec<String>,
    pub false_positives: Vec<String>,
    pub response: Vec<String>,
    pub tests: Vec<RuleTest>,
    /// Where the rule came from (file name), for messages.
    pub origin: String,
}

impl Rule {
    /// Parses and validates one rule file's text.
    pub fn from_yaml(origin: &str, text: &str) -> Result<Rule, RuleError> {
        let raw: RawRule = serde_yaml_ng::from_str(text).map_err(|source| RuleError::Yaml {
            path: origin.to_owned(),
            source,
        })?;
        raw.into_rule(origin).map_err(|message| RuleError::Invalid {
            path: origin.to_owned(),
            message,
        })
    }

    /// Reads a rule file from disk.
    pub fn from_file(path: &Path) -> Result<Rule, RuleError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
            path: origin.clone(),
            source,
        })?;
        Rule::from_yaml(&origin, &text)
    }

    /// Does the record match?
    pub fn matches(&self, record: &Value) -> bool {
        self.detection.holds(record)
    }

    /// The severity for a matching record, and why it was raised (if it was).
    pub fn severity_for(&self, record: &Value) -> (Severity, Option<&str>) {
        self.escalations
            .iter()
            .filter(|e| e.severity > self.severity && e.condition.holds(record))
            .max_by_key(|e| e.severity)
            .map_or((self.severity, None), |e| {
                (e.severity, Some(e.reason.as_str()))
            })
    }

    /// Literal values a matching record must contain, the most selective first
    /// (an `eventName` value, then longer values). Empty when the rule proves nothing
    /// by literals, in which case every record must be parsed.
    pub fn needles(&self) -> Vec<String> {
        let mut literals = Vec::new();
        self.detection.required_literals(&mut literals);
        literals.sort_by_key(|(path, value)| {
            (
                path.last().map(String::as_str) != Some("eventName"),
                std::cmp::Reverse(value.len()),
            )
        });
        literals.into_iter().map(|(_, value)| value).collect()
    }

    /// The group-by values of a record (`unknown` for a missing or non-string field).
    pub fn group_values(&self, record: &Value) -> Vec<String> {
        self.group_by
            .iter()
            .map(|path| scalar_text(lookup(record, path)))
            .collect()
    }

    /// Text of an `AlertContext` field of a record (`unknown` when the rule does not
    /// declare it or the record lacks it).
    pub fn context_text(&self, record: &Value, name: &str) -> String {
        self.output.field_text(record, name)
    }

    /// What a roll-up of this rule's windows needs, kept with each window.
    pub fn rollup_spec(&self) -> RollupSpec {
        RollupSpec {
            rule_id: self.id.clone(),
            display_name: self.display_name.clone(),
            severity: Some(self.severity),
            description: self.description.clone(),
            runbook: self.runbook.clone(),
            subject: self.output.rollup_subject.clone(),
            group_by: self.group_by.iter().map(|p| p.join(".")).collect(),
            distinct: self
                .output
                .distinct
                .iter()
                .map(|d| (d.name.clone(), d.heading.clone()))
                .collect(),
        }
    }

    /// The alert title (Panther's `title()`).
    pub fn title_for(&self, record: &Value) -> String {
        render_template(&self.title, record)
    }

    /// The short subject line, before the severity tag and length limit.
    pub fn subject_for(&self, record: &Value) -> String {
        render_template(&self.subject, record)
    }
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

/// The resource name at the end of an ARN (after the last `:` or `/`).
pub fn arn_name(arn: &str) -> &str {
    arn.rsplit([':', '/']).next().unwrap_or(arn)
}

/// Renders `{a.b|c.d#name}` placeholders: the first present path's text, optionally
/// reduced to an ARN's resource name; `unknown` when none is present.
fn render_template(template: &str, record: &Value) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let spec = &rest[open + 1..open + close];
        let (paths, name_only) = match spec.strip_suffix("#name") {
            Some(paths) => (paths, true),
            None => (spec, false),
        };
        let paths: Vec<FieldPath> = paths.split('|').map(dotted).collect();
        let text = scalar_text(first_present(record, &paths));
        out.push_str(if name_only { arn_name(&text) } else { &text });
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A set of rules with the literal prefilter derived from all of them.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The enabled embedded rules plus the named ones: an embedded rule's `RuleID`
    /// or file name (enabling it when `Enabled: false`), or a rule file's path.
    pub fn load(extra: &[impl AsRef<Path>]) -> Result<RuleSet, RuleError> {
        let rules = select::select(RuleSet::embedded_rules()?, extra)?;
        if let Some(dup) = rules
            .iter()
            .enumerate()
            .find(|(i, r)| rules[..*i].iter().any(|o| o.id == r.id))
        {
            return Err(RuleError::Invalid {
                path: dup.1.origin.clone(),
                message: format!("RuleID {} is defined twice", dup.1.id),
            });
        }
        Ok(RuleSet { rules })
    }

    /// The embedded rules enabled by default.
    pub fn embedded() -> RuleSet {
        let mut set = RuleSet::every_embedded();
        set.rules.retain(|r| r.enabled);
        set
    }

    /// Every embedded rule, disabled ones too (`trailwatch test` runs their tests).
    pub fn every_embedded() -> RuleSet {
        RuleSet {
            rules: RuleSet::embedded_rules().expect("embedded rules are validated by tests"),
        }
    }

    fn embedded_rules() -> Result<Vec<Rule>, RuleError> {
        EMBEDDED_RULES
            .iter()
            .map(|(name, text)| Rule::from_yaml(name, text))
            .collect()
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

// ---- YAML model -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRule {
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
struct RawCondition {
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
struct RawEscalation {
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

fn all_of(raw: Vec<RawCondition>) -> Result<Vec<Condition>, String> {
    raw.into_iter().map(RawCondition::into_condition).collect()
}

fn yaml_str(value: &serde_yaml_ng::Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

impl RawRule {
    fn into_rule(self, origin: &str) -> Result<Rule, String> {
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
            .map(|e| {
                Ok(Escalation {
                    severity: e.severity,
                    reason: e.reason,
                    condition: Condition::All(all_of(e.detection)?),
                })
            })
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
        Ok(Rule {
            title: self.title.unwrap_or_else(|| display_name.clone()),
            subject: self.subject.unwrap_or_else(|| display_name.clone()),
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
            triage: self.triage,
            false_positives: self.false_positives,
            response: self.response,
            tests,
            origin: origin.to_owned(),
        })
    }
}

/// The outcome of one rule test case.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub rule_id: String,
    pub name: String,
    pub expected: bool,
    pub actual: bool,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        self.expected == self.actual
    }
}

/// Runs every `Tests:` case of the rules.
pub fn run_rule_tests(rules: &[Rule]) -> Vec<TestOutcome> {
    rules
        .iter()
        .flat_map(|rule| {
            rule.tests.iter().map(|t| TestOutcome {
                rule_id: rule.id.clone(),
                name: t.name.clone(),
                expected: t.expected,
                actual: rule.matches(&t.log),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rds_rule() -> Rule {
        RuleSet::embedded()
            .get("AWS.RDS.SnapshotExport")
            .unwrap()
            .clone()
    }

    #[test]
    fn the_seed_tests_pass() {
        let rule = rds_rule();
        assert_eq!(rule.tests.len(), 4, "the seed has four test cases");
        let outcomes = run_rule_tests(std::slice::from_ref(&rule));
        for o in &outcomes {
            assert!(
                o.passed(),
                "{}: expected {} got {}",
                o.name,
                o.expected,
                o.actual
            );
        }
        assert_eq!(outcomes.iter().filter(|o| o.expected).count(), 2);
    }

    #[test]
    fn metadata_follows_the_seed() {
        let rule = rds_rule();
        assert_eq!(rule.severity, Severity::High);
        assert_eq!(rule.dedup_minutes, 60);
        assert_eq!(rule.mitre, vec!["TA0010:T1537".to_owned()]);
        assert_eq!(
            rule.group_by,
            vec![
                vec!["awsRegion".to_owned()],
                vec!["recipientAccountId".to_owned()]
            ]
        );
        assert_eq!(rule.needles()[0], "StartExportTask");
        assert!(rule.runbook.starts_with("1. Find all API calls"));
    }

    fn export(extra: Value) -> Value {
        let mut base = json!({"eventSource": "rds.amazonaws.com", "eventName": "StartExportTask"});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    }

    #[test]
    fn error_code_absent_or_null_matches_any_other_value_does_not() {
        let rule = rds_rule();
        assert!(rule.matches(&export(json!({}))));
        assert!(rule.matches(&export(json!({"errorCode": null}))));
        assert!(!rule.matches(&export(json!({"errorCode": ""}))));
        assert!(!rule.matches(&export(json!({"errorCode": "AccessDenied"}))));
        assert!(!rule.matches(&export(json!({"errorCode": 0}))));
        assert!(!rule.matches(&export(json!({"errorCode": false}))));
    }

    #[test]
    fn look_alike_services_and_values_do_not_match() {
        let rule = rds_rule();
        for source in [
            "discovery.amazonaws.com",
            "neptune-graph.amazonaws.com",
            "RDS.amazonaws.com",
            "rds.amazonaws.com ",
            "",
        ] {
            assert!(
                !rule.matches(&json!({"eventSource": source, "eventName": "StartExportTask"})),
                "{source}"
            );
        }
        for name in [
            "startExportTask",
            "StartExportTask ",
            "StartExportTasks",
            "CancelExportTask",
        ] {
            assert!(
                !rule.matches(&json!({"eventSource": "rds.amazonaws.com", "eventName": name})),
                "{name}"
            );
        }
        assert!(!rule.matches(
            &json!({"eventSource": "rds.amazonaws.com", "eventName": ["StartExportTask"]})
        ));
        assert!(!rule.matches(&json!({"eventSource": "rds.amazonaws.com"})));
    }

    #[test]
    fn title_follows_panthers_shape_and_tolerates_missing_fields() {
        let rule = rds_rule();
        let record = &rule.tests[0].log;
        assert_eq!(
            rule.title_for(record),
            "RDS Snapshot Export: [my-db-snapshot] exported to S3 bucket [my-export-bucket] by [arn:aws:sts::123456789012:assumed-role/Admin/user]"
        );
        assert_eq!(
            rule.title_for(&export(json!({}))),
            "RDS Snapshot Export: [unknown] exported to S3 bucket [unknown] by [unknown]"
        );
    }

    #[test]
    fn escalates_on_foreign_key_or_role_and_on_root() {
        let rule = rds_rule();
        let base = rule.tests[0].log.clone();
        assert_eq!(rule.severity_for(&base).0, Severity::High);
        let mut foreign_key = base.clone();
        foreign_key["requestParameters"]["kmsKeyId"] =
            json!("arn:aws:kms:us-east-1:999999999999:key/abc");
        assert_eq!(rule.severity_for(&foreign_key).0, Severity::Critical);
        let mut foreign_role = base.clone();
        foreign_role["requestParameters"]["iamRoleArn"] = json!("arn:aws:iam::999999999999:role/x");
        assert_eq!(rule.severity_for(&foreign_role).0, Severity::Critical);
        let mut root = base.clone();
        root["userIdentity"]["type"] = json!("Root");
        let (severity, reason) = rule.severity_for(&root);
        assert_eq!(severity, Severity::Critical);
        assert!(reason.unwrap().contains("root"));
        let mut key_id_only = base;
        key_id_only["requestParameters"]["kmsKeyId"] =
            json!("1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(rule.severity_for(&key_id_only).0, Severity::High);
    }

    #[test]
    fn conditions_cover_the_panther_vocabulary() {
        let yaml = r#"
RuleID: Test.Rule
Severity: Low
Detection:
  - Any:
      - Key: a
        Condition: IsIn
        Values: [x, y]
      - DeepKey: [b, c]
        Condition: StartsWith
        Value: pre
  - Key: d
    Condition: IsNotNull
  - Key: e
    Condition: DoesNotEqual
    Value: 3
"#;
        let rule = Rule::from_yaml("t.yml", yaml).unwrap();
        assert!(rule.needles().is_empty(), "an Any proves no literal");
        assert!(rule.matches(&json!({"a": "y", "d": 1})));
        assert!(rule.matches(&json!({"b": {"c": "prefix"}, "d": "z", "e": 4})));
        assert!(!rule.matches(&json!({"a": "y", "d": 1, "e": 3})));
        assert!(!rule.matches(&json!({"a": "z", "d": 1})));
        assert!(!rule.matches(&json!({"a": "x", "d": null})));
    }

    #[test]
    fn invalid_rules_are_rejected_with_the_file_named() {
        let bad = "RuleID: X\nSeverity: High\nDetection:\n  - Key: a\n    Condition: Frobnicates\n    Value: 1\n";
        let err = Rule::from_yaml("bad.yml", bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.yml") && err.contains("Frobnicates"),
            "{err}"
        );
        let python = "RuleID: X\nSeverity: High\n";
        assert!(Rule::from_yaml("py.yml", python)
            .unwrap_err()
            .to_string()
            .contains("Detection"));
        let threshold = "RuleID: X\nSeverity: High\nThreshold: 5\nDetection: []\n";
        assert!(Rule::from_yaml("t.yml", threshold)
            .unwrap_err()
            .to_string()
            .contains("Threshold"));
    }

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
}
