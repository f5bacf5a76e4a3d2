//! Detection rules as data.
//!
//! A rule is a YAML file in Panther's rule format (`RuleID`, `Severity`,
//! `DedupPeriodMinutes`, `Tests`, ...) whose Python `rule()` is replaced by a
//! declarative `Detection:` list in Panther's simple-detection style. Adding a rule
//! means adding a YAML file: the pipeline only ever asks a [`Rule`] whether a record
//! matches, which literal needles prove a record cannot match (see [`Rule::needles`]),
//! and how to render its alert fields.
//!
//! Modules, in the order a rule file travels: `model` (the YAML and its validation),
//! `condition` (the `Detection:` tree), `path` (field paths, split once at load),
//! `template` (`{...}` texts, parsed once at load), `output` (what an alert and a
//! roll-up carry), `enrich` (lookups at alert time, their escalations, the
//! containment), `lists`, `select` (which rules run) and `pattern` (the
//! EventBridge event pattern of the real-time path, derived from the rules). This
//! module holds the loaded [`Rule`] and the [`RuleSet`].

mod condition;
mod enrich;
mod lists;
mod model;
mod output;
mod path;
mod pattern;
mod select;
mod template;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

pub use condition::{Condition, Test};
pub use enrich::{
    present_text, Containment, ContainmentAction, EnrichmentSpec, Facts, Requirement, SourceField,
    SourceKind,
};
pub use output::{
    AlertField, Distinct, DistinctSource, EmailRow, Output, RollupSpec, RowContent,
    ALERT_RECORD_FIELDS,
};
pub use path::{arn_account, arn_name, first_present, lookup, scalar_text, FieldPath};
pub use pattern::{event_pattern, PatternError};
pub use select::parse_rule_list;
pub use template::{FieldTemplate, RecordTemplate};

/// The rules compiled into the binary (file name, YAML text).
pub const EMBEDDED_RULES: &[(&str, &str)] = &[
    (
        "aws_rds_snapshot_export.yml",
        include_str!("../../rules/aws_rds_snapshot_export.yml"),
    ),
    (
        "aws_rds_snapshot_shared.yml",
        include_str!("../../rules/aws_rds_snapshot_shared.yml"),
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
    title: RecordTemplate,
    subject: RecordTemplate,
    /// Alert fields, e-mail rows and roll-up lists (see [`output`]).
    pub output: Output,
    /// `Enabled: false` rules load only when named (`TRAILWATCH_RULES`, `--rules`).
    pub enabled: bool,
    pub escalations: Vec<Escalation>,
    /// Lookups at alert time and the escalations over them (`Enrichment:`).
    pub enrichment: Option<EnrichmentSpec>,
    /// The containment the rule proposes (`Containment:`).
    pub containment: Option<Containment>,
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
        let raw: model::RawRule =
            serde_yaml_ng::from_str(text).map_err(|source| RuleError::Yaml {
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

    /// Every record path the rule reads: its conditions and escalations, its
    /// group-by, alert fields, roll-up lists and the title and subject templates.
    /// A record is evaluated on these fields alone (see `detect`).
    pub fn field_paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::new();
        self.detection.paths(&mut out);
        for escalation in &self.escalations {
            escalation.condition.paths(&mut out);
        }
        out.extend(self.group_by.iter().cloned());
        self.output.record_paths(&mut out);
        for template in [&self.title, &self.subject] {
            out.extend(template.keys().flatten().cloned());
        }
        out
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
        self.title.render(record)
    }

    /// The short subject line, before the severity tag and length limit.
    pub fn subject_for(&self, record: &Value) -> String {
        self.subject.render(record)
    }
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
