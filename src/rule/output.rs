//! What a rule puts in its alerts: the alert fields it copies from the record, the
//! rows of its e-mail and what its roll-ups count, all declared in the rule's YAML.
//!
//! The alert and dedup code only ever walk these declarations, so a second rule
//! gets e-mails and roll-ups that speak of its own fields. YAML:
//!
//! ```yaml
//! AlertFields:                 # into the alert document, in this order
//!   - Name: snapshotArn
//!     Path: [requestParameters.sourceArn, responseElements.sourceArn]  # first present wins
//!     Label: Snapshot          # shown in the e-mail under this label (absent: not shown)
//!     Resource: AwsRdsDbSnapshot   # the ASFF resource type of a Security Hub finding
//!   - Name: exportOnly
//!     Path: requestParameters.exportOnly
//!     Default: null            # document value when absent (`unknown` unless said)
//!     Label: Tables
//!     EmailDefault: the whole snapshot   # e-mail text when absent, null or empty
//! Email:
//!   What: "rds:StartExportTask succeeded at {eventTime}"
//!   Repeats: exports           # "further exports for <key> ... are counted"
//!   Rows:                      # e-mail order: a field's name, or a composed row
//!     - snapshotArn
//!     - Label: To
//!       Template: "s3://{s3Bucket}/{s3Prefix#relative}"
//! RollupDistinct:              # distinct values a roll-up lists, at most 20 each
//!   - Name: snapshots
//!     Field: snapshotArn       # an alert field, or `Path:` into the record
//!     Heading: Snapshots
//! RollupSubject: "{suppressed} more RDS snapshot export(s) in {account}/{region} (roll-up)"
//! ```
//!
//! A rule with only the older `AlertContext: {name: [paths]}` map gets one field per
//! entry, none of them in the e-mail.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::path::{dotted, first_present, scalar_text, FieldPath};
use super::template::FieldTemplate;
use super::Severity;

/// The record fields every alert reads whatever its rule (time, account, region,
/// source address, user agent and the principal: `crate::alert::Principal`),
/// besides the rule's own ([`crate::rule::Rule::field_paths`]): the detector
/// keeps these too when it parses a record.
pub const ALERT_RECORD_FIELDS: &[&[&str]] = &[
    &["eventTime"],
    &["recipientAccountId"],
    &["awsRegion"],
    &["sourceIPAddress"],
    &["userAgent"],
    &["userIdentity", "arn"],
    &["userIdentity", "type"],
    &["userIdentity", "userName"],
    &[
        "userIdentity",
        "sessionContext",
        "sessionIssuer",
        "userName",
    ],
    &["userIdentity", "principalId"],
];

/// One field copied from the record into the alert document.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertField {
    pub name: String,
    /// Tried in turn: the first present, non-null value wins.
    pub paths: Vec<FieldPath>,
    /// The document's value when no path is present.
    pub default: Value,
    /// The e-mail label; `None` keeps the field out of the e-mail's rows.
    pub label: Option<String>,
    /// The e-mail's text when the value is absent, null or an empty list.
    pub email_default: Option<String>,
    /// ASFF resource type (`AwsRdsDbSnapshot`, `AwsS3Bucket`, `Other`...).
    pub resource: Option<String>,
}

/// One row of the alert e-mail after `Who`, `From` and `Where`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailRow {
    pub label: String,
    pub content: RowContent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowContent {
    /// An alert field's value as the document holds it.
    Field(String),
    /// A template over the document's fields.
    Template(FieldTemplate),
}

/// Where a roll-up's distinct values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DistinctSource {
    Field(String),
    Paths(Vec<FieldPath>),
}

/// One list of distinct values in a roll-up (`snapshots`, `principals`...).
#[derive(Debug, Clone, PartialEq)]
pub struct Distinct {
    pub name: String,
    pub source: DistinctSource,
    pub heading: String,
}

/// What a roll-up needs of its rule: stored with the window, so that a window whose
/// rule is no longer loaded is still reported as the rule described it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupSpec {
    pub rule_id: String,
    pub display_name: String,
    pub severity: Option<Severity>,
    pub description: String,
    pub runbook: String,
    /// Template with `{suppressed}`, `{account}`, `{region}`, `{key}`, `{ruleName}`.
    pub subject: FieldTemplate,
    /// The rule's `GroupBy` paths, dotted (to find the account and region in a key).
    pub group_by: Vec<String>,
    /// (name, e-mail heading) of each distinct list, in the rule's order.
    pub distinct: Vec<(String, String)>,
}

impl RollupSpec {
    /// For a window stored without its rule's description, whose rule is gone.
    pub fn unloaded(rule_id: &str) -> RollupSpec {
        RollupSpec {
            rule_id: rule_id.to_owned(),
            display_name: rule_id.to_owned(),
            description: format!("Roll-up of rule {rule_id}, which is no longer loaded."),
            subject: "{suppressed} more match(es) of {ruleName} (roll-up)".into(),
            ..RollupSpec::default()
        }
    }

    /// The value of the group-by field `path` in a key's values.
    pub fn group_value<'a>(&self, values: &'a [String], path: &str) -> Option<&'a str> {
        let at = self.group_by.iter().position(|p| p == path)?;
        values.get(at).map(String::as_str)
    }
}

/// A rule's output declarations.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub fields: Vec<AlertField>,
    /// The e-mail's `What:` line.
    pub what: FieldTemplate,
    /// The noun for further matches in the e-mail's `Alert:` line.
    pub repeats: String,
    pub rows: Vec<EmailRow>,
    pub distinct: Vec<Distinct>,
    pub rollup_subject: FieldTemplate,
}

impl Output {
    /// The alert document's fields for a record, in declaration order.
    pub fn field_values(&self, record: &Value) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|f| {
                let value = first_present(record, &f.paths)
                    .cloned()
                    .unwrap_or_else(|| f.default.clone());
                (f.name.clone(), value)
            })
            .collect()
    }

    /// Every record path the alert fields and roll-up lists read.
    pub(super) fn record_paths(&self, out: &mut Vec<FieldPath>) {
        for field in &self.fields {
            out.extend(field.paths.iter().cloned());
        }
        for distinct in &self.distinct {
            if let DistinctSource::Paths(paths) = &distinct.source {
                out.extend(paths.iter().cloned());
            }
        }
    }

    pub fn field(&self, name: &str) -> Option<&AlertField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// A field's text for a record (`unknown` when undeclared or absent).
    pub fn field_text(&self, record: &Value, name: &str) -> String {
        let paths = self.field(name).map(|f| f.paths.as_slice());
        scalar_text(paths.and_then(|paths| first_present(record, paths)))
    }

    /// The roll-up's distinct values of a record, (name, value) in declaration order.
    pub fn distinct_values(&self, record: &Value) -> Vec<(String, String)> {
        self.distinct
            .iter()
            .map(|d| {
                let paths = match &d.source {
                    DistinctSource::Field(name) => self.field(name).map(|f| f.paths.as_slice()),
                    DistinctSource::Paths(paths) => Some(paths.as_slice()),
                };
                let value = match paths.and_then(|paths| first_present(record, paths)) {
                    // A list (the accounts a grant names) is one value, its items joined.
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| scalar_text(Some(item)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => scalar_text(other),
                };
                (d.name.clone(), value)
            })
            .collect()
    }

    /// E-mail text of a field's value as a document holds it.
    pub fn email_text(&self, name: &str, value: Option<&Value>) -> String {
        let absent = || {
            self.field(name)
                .and_then(|f| f.email_default.clone())
                .unwrap_or_else(|| crate::UNKNOWN.into())
        };
        match value {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => absent(),
            Some(Value::Array(items)) if items.is_empty() => absent(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Array(_) | Value::Object(_) => v.to_string(),
                    scalar => scalar_text(Some(scalar)),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Some(other) => other.to_string(),
        }
    }
}

// ---- YAML model -------------------------------------------------------------

/// The output keys of a rule file (flattened into the rule's YAML model).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawOutput {
    #[serde(default)]
    alert_fields: Vec<RawField>,
    #[serde(default)]
    alert_context: serde_yaml_ng::Mapping,
    email: Option<RawEmail>,
    #[serde(default)]
    rollup_distinct: Vec<RawDistinct>,
    rollup_subject: Option<String>,
}

/// One path, or a list tried in turn.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawPaths {
    One(String),
    Many(Vec<String>),
}

impl RawPaths {
    fn paths(self) -> Vec<FieldPath> {
        match self {
            RawPaths::One(p) => vec![dotted(&p)],
            RawPaths::Many(ps) => ps.iter().map(|p| dotted(p)).collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawField {
    name: String,
    path: RawPaths,
    /// Present-but-null (`Default: null`) differs from absent: `Some(Null)`.
    #[serde(default, deserialize_with = "present")]
    default: Option<serde_yaml_ng::Value>,
    label: Option<String>,
    email_default: Option<String>,
    resource: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_yaml_ng::Value>, D::Error> {
    serde_yaml_ng::Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawEmail {
    what: Option<String>,
    repeats: Option<String>,
    rows: Option<Vec<RawRow>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRow {
    Field(String),
    Template {
        #[serde(rename = "Label")]
        label: String,
        #[serde(rename = "Template")]
        template: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawDistinct {
    name: String,
    field: Option<String>,
    path: Option<RawPaths>,
    heading: Option<String>,
}

impl RawOutput {
    pub(super) fn into_output(self, rule_name: &str) -> Result<Output, String> {
        let mut fields = Vec::new();
        for f in self.alert_fields {
            let default = match f.default {
                None => Value::String(crate::UNKNOWN.into()),
                Some(v) => serde_json::to_value(v)
                    .map_err(|e| format!("AlertFields {}: Default: {e}", f.name))?,
            };
            fields.push(AlertField {
                name: f.name,
                paths: f.path.paths(),
                default,
                label: f.label,
                email_default: f.email_default,
                resource: f.resource,
            });
        }
        for (name, paths) in &self.alert_context {
            let name = name
                .as_str()
                .ok_or("AlertContext keys must be strings")?
                .to_owned();
            let paths = serde_yaml_ng::from_value::<RawPaths>(paths.clone())
                .map_err(|e| format!("AlertContext {name}: {e}"))?;
            fields.push(AlertField {
                name,
                paths: paths.paths(),
                default: Value::String(crate::UNKNOWN.into()),
                label: None,
                email_default: None,
                resource: None,
            });
        }
        if let Some(dup) = fields
            .iter()
            .enumerate()
            .find(|(i, f)| fields[..*i].iter().any(|o| o.name == f.name))
        {
            return Err(format!("alert field {} is declared twice", dup.1.name));
        }
        let email = self.email.unwrap_or(RawEmail {
            what: None,
            repeats: None,
            rows: None,
        });
        let labelled = |name: &str| -> Result<EmailRow, String> {
            let field = fields
                .iter()
                .find(|f| f.name == name)
                .ok_or(format!("Email Rows: {name} is not an alert field"))?;
            Ok(EmailRow {
                label: field.label.clone().unwrap_or_else(|| name.to_owned()),
                content: RowContent::Field(name.to_owned()),
            })
        };
        let rows = match email.rows {
            None => fields
                .iter()
                .filter(|f| f.label.is_some())
                .map(|f| labelled(&f.name))
                .collect::<Result<_, _>>()?,
            Some(rows) => rows
                .into_iter()
                .map(|row| match row {
                    RawRow::Field(name) => labelled(&name),
                    RawRow::Template { label, template } => Ok(EmailRow {
                        content: RowContent::Template(
                            FieldTemplate::over_fields(&template)
                                .map_err(|e| format!("Email Rows {label}: {e}"))?,
                        ),
                        label,
                    }),
                })
                .collect::<Result<_, _>>()?,
        };
        let distinct = self
            .rollup_distinct
            .into_iter()
            .map(|d| {
                let source = match (d.field, d.path) {
                    (Some(field), None) if fields.iter().any(|f| f.name == field) => {
                        DistinctSource::Field(field)
                    }
                    (Some(field), None) => {
                        return Err(format!(
                            "RollupDistinct {}: {field} is not an alert field",
                            d.name
                        ))
                    }
                    (None, Some(path)) => DistinctSource::Paths(path.paths()),
                    _ => {
                        return Err(format!(
                            "RollupDistinct {}: needs exactly one of Field or Path",
                            d.name
                        ))
                    }
                };
                Ok(Distinct {
                    heading: d.heading.unwrap_or_else(|| d.name.clone()),
                    name: d.name,
                    source,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let what = email
            .what
            .unwrap_or_else(|| format!("{rule_name} matched at {{eventTime}}"));
        let rollup_subject = self.rollup_subject.unwrap_or_else(|| {
            "{suppressed} more match(es) of {ruleName} in {account}/{region} (roll-up)".into()
        });
        Ok(Output {
            fields,
            what: FieldTemplate::over_fields(&what).map_err(|e| format!("Email What: {e}"))?,
            repeats: email.repeats.unwrap_or_else(|| "matches".into()),
            rows,
            distinct,
            rollup_subject: FieldTemplate::over_fields(&rollup_subject)
                .map_err(|e| format!("RollupSubject: {e}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn output(yaml: &str) -> Result<Output, String> {
        let raw: RawOutput = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        raw.into_output("R")
    }

    #[test]
    fn fields_take_the_first_present_path_or_their_default() {
        let out = output(
            "AlertFields:\n  - Name: a\n    Path: [x.y, z]\n  - Name: b\n    Path: w\n    Default: null\n    Label: B\n    EmailDefault: all of it\n",
        )
        .unwrap();
        let doc = out.field_values(&json!({"x": {"y": null}, "z": 3}));
        assert_eq!(doc["a"], 3);
        assert_eq!(doc["b"], Value::Null);
        assert_eq!(
            out.field_values(&json!({}))["a"],
            json!(crate::UNKNOWN),
            "absent without a Default reads unknown"
        );
        assert_eq!(out.email_text("b", Some(&Value::Null)), "all of it");
        assert_eq!(out.email_text("b", Some(&json!([]))), "all of it");
        assert_eq!(out.email_text("b", Some(&json!(["t1", 2]))), "t1, 2");
        assert_eq!(out.email_text("a", None), "unknown");
        assert_eq!(out.rows.len(), 1, "only labelled fields are e-mail rows");
        assert_eq!(out.rows[0].label, "B");
    }

    #[test]
    fn rows_and_distinct_must_name_declared_fields() {
        let e = output("AlertFields: []\nEmail:\n  Rows: [nope]\n").unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let e = output("RollupDistinct:\n  - Name: d\n    Field: nope\n").unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let e = output("RollupDistinct:\n  - Name: d\n").unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = output("AlertFields:\n  - Name: a\n    Path: x\nAlertContext:\n  a: [y]\n")
            .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn distinct_values_follow_the_declaration() {
        let out = output(
            "AlertFields:\n  - Name: a\n    Path: x\nRollupDistinct:\n  - Name: as\n    Field: a\n  - Name: who\n    Path: [u.arn, u.id]\n    Heading: Who\n",
        )
        .unwrap();
        assert_eq!(
            out.distinct_values(&json!({"x": "1", "u": {"id": "p"}})),
            vec![("as".into(), "1".into()), ("who".into(), "p".into())]
        );
        assert_eq!(out.distinct[0].heading, "as");
    }
}
