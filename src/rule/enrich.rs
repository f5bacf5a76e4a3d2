//! What a rule asks for beyond its record: lookups in the account of the event at
//! alert time (`Enrichment:`), the escalations their answers allow, and the one
//! containment action it proposes (`Containment:`).
//!
//! The rule says which of its alert fields feed which lookup and which answers
//! matter; [`crate::enrich`] makes the calls and [`crate::respond`] acts. Neither
//! knows a rule's field names. YAML:
//!
//! ```yaml
//! Enrichment:
//!   ExportTask: exportTaskIdentifier   # rds:DescribeExportTasks for this alert field
//!   Source: snapshotArn                # DescribeDBSnapshots or DescribeDBClusterSnapshots, told by the ARN
//!   # or identifiers that are not ARNs, the first present wins:
//!   # Source:
//!   #   - {Field: dbSnapshot, Kind: DbSnapshot}
//!   #   - {Field: clusterSnapshot, Kind: ClusterSnapshot}
//!   Bucket: s3Bucket                   # s3:HeadBucket, ExpectedBucketOwner = the event's account
//!   Escalations:                       # the rule's Escalations: style, over the facts (below)
//!     - Severity: Critical
//!       Reason: the destination bucket is not confirmed ...
//!       Detection:
//!         - DeepKey: [enrichment, bucket, owner]
//!           Condition: Equals
//!           Value: unconfirmed
//! Containment:
//!   Action: CancelExportTask           # the typed action set: CancelExportTask
//!   Target: exportTaskIdentifier       # the alert field naming what it acts on
//!   Requires:                          # every one must hold; the first that does not is the reason
//!     - That: the export is still restoring or writing
//!       Detection:
//!         - DeepKey: [enrichment, exportTask, status]
//!           Condition: IsIn
//!           Values: [starting, in_progress]
//!   NotAllowListed: [principal.arn, principal.issuerArn, iamRoleArn, s3Bucket]  # none in TRAILWATCH_ALLOW
//! ```
//!
//! Escalations and requirements are evaluated over [`Facts`]: the alert's fields by
//! name, `account`, `region`, `principal.arn`, `principal.issuerArn`, and
//! `enrichment` (`exportTask`, `source`, `bucket`, `errors`, as the alert document
//! shows them).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::condition::Condition;
use super::model::{all_of, RawEscalation};
use super::output::Output;
use super::path::{dotted, lookup, FieldPath};
use super::{Escalation, Severity};

/// The lookups a rule declares, and the escalations over their answers.
#[derive(Debug, Clone, Default)]
pub struct EnrichmentSpec {
    /// The alert field holding the export task's identifier.
    pub export_task: Option<String>,
    /// Alert fields naming the source snapshot, tried in turn (first present wins).
    pub source: Vec<SourceField>,
    /// The alert field holding the destination bucket's name.
    pub bucket: Option<String>,
    /// Raised severities over the facts (enrichment included).
    pub escalations: Vec<Escalation>,
}

/// How a source field names its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SourceKind {
    /// An RDS ARN: `:snapshot:` (DB snapshot) or `:cluster-snapshot:`.
    Arn,
    /// A DB snapshot identifier.
    DbSnapshot,
    /// A DB cluster snapshot identifier.
    ClusterSnapshot,
}

/// One alert field that names a source snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceField {
    pub field: String,
    pub kind: SourceKind,
}

/// The typed set of containment actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ContainmentAction {
    /// `rds:CancelExportTask` on the export task the target field names.
    CancelExportTask,
}

impl ContainmentAction {
    pub fn name(self) -> &'static str {
        match self {
            ContainmentAction::CancelExportTask => "CancelExportTask",
        }
    }
}

/// One condition a containment needs, with the words that say what it checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    pub that: String,
    pub condition: Condition,
}

/// The containment a rule proposes, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Containment {
    pub action: ContainmentAction,
    /// The alert field naming the target (the export task).
    pub target: String,
    /// Every one must hold.
    pub requires: Vec<Requirement>,
    /// Fact paths whose values must not be in `TRAILWATCH_ALLOW`.
    pub not_allow_listed: Vec<FieldPath>,
}

impl EnrichmentSpec {
    /// The severity after the enrichment escalations: the highest of `severity` and
    /// of every escalation that holds over `facts`, with its reason (the given
    /// reason when none raises it further).
    pub fn escalate(
        &self,
        severity: Severity,
        reason: Option<String>,
        facts: &Facts,
    ) -> (Severity, Option<String>) {
        self.escalations
            .iter()
            .filter(|e| e.severity > severity && e.condition.holds(facts.value()))
            .max_by_key(|e| e.severity)
            .map_or((severity, reason), |e| (e.severity, Some(e.reason.clone())))
    }

    /// The first present source field's value and kind.
    pub fn source_of<'a>(&self, fields: &'a Map<String, Value>) -> Option<(&'a str, SourceKind)> {
        self.source
            .iter()
            .find_map(|s| present_text(fields, &s.field).map(|text| (text, s.kind)))
    }
}

/// A field's text when the alert has a real value for it (not `unknown`, not null).
pub fn present_text<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty() && *text != crate::UNKNOWN)
}

impl Containment {
    /// The first requirement that does not hold over `facts`, with the values its
    /// conditions read: `requires that the export is still restoring or writing
    /// (starting or in_progress), but enrichment.exportTask.status = "complete"`.
    pub fn unmet(&self, facts: &Facts) -> Option<String> {
        let failed = self
            .requires
            .iter()
            .find(|r| !r.condition.holds(facts.value()))?;
        let mut paths = Vec::new();
        condition_paths(&failed.condition, &mut paths);
        paths.dedup();
        let values: Vec<String> = paths
            .iter()
            .map(|path| {
                let value = lookup(facts.value(), path)
                    .map_or_else(|| "absent".to_owned(), Value::to_string);
                format!("{} = {value}", path.join("."))
            })
            .collect();
        Some(if values.is_empty() {
            format!("requires that {}", failed.that)
        } else {
            format!("requires that {}, but {}", failed.that, values.join(", "))
        })
    }

    /// The values at the `NotAllowListed` paths, for the allow-list check.
    pub fn allow_list_values<'a>(&self, facts: &'a Facts) -> Vec<(String, &'a str)> {
        self.not_allow_listed
            .iter()
            .filter_map(|path| {
                let text = lookup(facts.value(), path)?.as_str()?;
                Some((path.join("."), text))
            })
            .collect()
    }
}

fn condition_paths(condition: &Condition, out: &mut Vec<FieldPath>) {
    match condition {
        Condition::All(all) | Condition::Any(all) => {
            all.iter().for_each(|c| condition_paths(c, out));
        }
        Condition::Field { path, .. } => {
            if !out.contains(path) {
                out.push(path.clone());
            }
        }
    }
}

/// What enrichment escalations and containment requirements are evaluated over.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts(Value);

impl Facts {
    /// The alert's fields (by their `AlertFields` names), account and region.
    pub fn new(fields: &Map<String, Value>, account: &str, region: &str) -> Facts {
        let mut map = fields.clone();
        map.insert("account".into(), Value::String(account.to_owned()));
        map.insert("region".into(), Value::String(region.to_owned()));
        Facts(Value::Object(map))
    }

    /// The caller: its ARN and, for a role session, the role's ARN.
    pub fn with_principal(mut self, arn: &str, issuer_arn: Option<&str>) -> Facts {
        let mut principal = Map::new();
        principal.insert("arn".into(), Value::String(arn.to_owned()));
        if let Some(issuer) = issuer_arn {
            principal.insert("issuerArn".into(), Value::String(issuer.to_owned()));
        }
        self.insert("principal", Value::Object(principal));
        self
    }

    /// The enrichment as the alert document shows it (`exportTask`, `source`,
    /// `bucket`, `errors`).
    pub fn with_enrichment(mut self, enrichment: Value) -> Facts {
        self.insert("enrichment", enrichment);
        self
    }

    fn insert(&mut self, name: &str, value: Value) {
        if let Value::Object(map) = &mut self.0 {
            map.insert(name.to_owned(), value);
        }
    }

    pub fn value(&self) -> &Value {
        &self.0
    }
}

// ---- YAML model -------------------------------------------------------------

/// The rule file's `Enrichment:` and `Containment:` (flattened into the rule's
/// YAML model).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawActions {
    enrichment: Option<RawEnrichment>,
    containment: Option<RawContainment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawEnrichment {
    export_task: Option<String>,
    source: Option<RawSource>,
    bucket: Option<String>,
    #[serde(default)]
    escalations: Vec<RawEscalation>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Arn(String),
    One(RawSourceField),
    Many(Vec<RawSourceField>),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawSourceField {
    field: String,
    #[serde(default = "arn_kind")]
    kind: SourceKind,
}

fn arn_kind() -> SourceKind {
    SourceKind::Arn
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawContainment {
    action: ContainmentAction,
    target: String,
    #[serde(default)]
    requires: Vec<RawRequirement>,
    #[serde(default)]
    not_allow_listed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawRequirement {
    that: String,
    detection: Vec<super::model::RawCondition>,
}

/// Checks that a name is one of the rule's alert fields.
fn alert_field(output: &Output, what: &str, name: String) -> Result<String, String> {
    if output.field(&name).is_some() {
        Ok(name)
    } else {
        Err(format!("{what}: {name} is not an alert field"))
    }
}

impl RawActions {
    pub(super) fn compile(
        self,
        output: &Output,
    ) -> Result<(Option<EnrichmentSpec>, Option<Containment>), String> {
        let enrichment = self.enrichment.map(|raw| raw.compile(output)).transpose()?;
        let containment = self
            .containment
            .map(|raw| raw.compile(output))
            .transpose()?;
        Ok((enrichment, containment))
    }
}

impl RawEnrichment {
    fn compile(self, output: &Output) -> Result<EnrichmentSpec, String> {
        let field = |what: &str, name: Option<String>| {
            name.map(|n| alert_field(output, what, n)).transpose()
        };
        let source = match self.source {
            None => Vec::new(),
            Some(RawSource::Arn(field)) => vec![RawSourceField {
                field,
                kind: SourceKind::Arn,
            }],
            Some(RawSource::One(one)) => vec![one],
            Some(RawSource::Many(many)) => many,
        }
        .into_iter()
        .map(|s| {
            Ok(SourceField {
                field: alert_field(output, "Enrichment Source", s.field)?,
                kind: s.kind,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
        let spec = EnrichmentSpec {
            export_task: field("Enrichment ExportTask", self.export_task)?,
            bucket: field("Enrichment Bucket", self.bucket)?,
            source,
            escalations: self
                .escalations
                .into_iter()
                .map(|e| {
                    e.compile()
                        .map_err(|m| format!("Enrichment Escalations: {m}"))
                })
                .collect::<Result<_, _>>()?,
        };
        if spec.export_task.is_none() && spec.source.is_empty() && spec.bucket.is_none() {
            return Err("Enrichment declares no lookup (ExportTask, Source or Bucket)".into());
        }
        Ok(spec)
    }
}

impl RawContainment {
    fn compile(self, output: &Output) -> Result<Containment, String> {
        let target = alert_field(output, "Containment Target", self.target)?;
        // An action on a customer's account never applies unconditionally.
        if self.requires.is_empty() {
            return Err(format!(
                "Containment {}: Requires must list at least one condition",
                self.action.name()
            ));
        }
        let requires = self
            .requires
            .into_iter()
            .map(|r| {
                Ok(Requirement {
                    condition: Condition::All(
                        all_of(r.detection)
                            .map_err(|m| format!("Containment Requires {:?}: {m}", r.that))?,
                    ),
                    that: r.that,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Containment {
            action: self.action,
            target,
            requires,
            not_allow_listed: self.not_allow_listed.iter().map(|p| dotted(p)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Rule, RuleSet};
    use serde_json::json;

    fn export_rule() -> Rule {
        RuleSet::embedded()
            .get("AWS.RDS.SnapshotExport")
            .unwrap()
            .clone()
    }

    fn shared_rule() -> Rule {
        RuleSet::every_embedded()
            .get("AWS.RDS.SnapshotShared")
            .unwrap()
            .clone()
    }

    fn facts(enrichment: Value) -> Facts {
        let fields = json!({"exportTaskIdentifier": "t1", "s3Bucket": "b", "iamRoleArn": "arn:aws:iam::1:role/r"});
        Facts::new(fields.as_object().unwrap(), "111122223333", "us-east-1")
            .with_principal(
                "arn:aws:sts::1:assumed-role/R/s",
                Some("arn:aws:iam::1:role/R"),
            )
            .with_enrichment(enrichment)
    }

    #[test]
    fn the_export_rule_declares_its_lookups_and_containment() {
        let rule = export_rule();
        let spec = rule.enrichment.as_ref().expect("the export rule enriches");
        assert_eq!(spec.export_task.as_deref(), Some("exportTaskIdentifier"));
        assert_eq!(spec.bucket.as_deref(), Some("s3Bucket"));
        assert_eq!(
            spec.source,
            vec![SourceField {
                field: "snapshotArn".into(),
                kind: SourceKind::Arn
            }]
        );
        let containment = rule.containment.as_ref().expect("the export rule contains");
        assert_eq!(containment.action, ContainmentAction::CancelExportTask);
        assert_eq!(containment.target, "exportTaskIdentifier");
        assert_eq!(containment.requires.len(), 2);
        let shared = shared_rule();
        assert!(shared.containment.is_none(), "a share is not an export");
        let source = &shared.enrichment.as_ref().unwrap().source;
        assert_eq!(source.len(), 2);
        assert_eq!(source[1].kind, SourceKind::ClusterSnapshot);
    }

    #[test]
    fn an_unconfirmed_untrusted_bucket_raises_the_export_to_critical() {
        let spec = export_rule().enrichment.unwrap();
        let unconfirmed = facts(json!({"bucket": {"owner": "unconfirmed", "trusted": false}}));
        let (severity, reason) = spec.escalate(Severity::High, None, &unconfirmed);
        assert_eq!(severity, Severity::Critical);
        assert!(reason.unwrap().contains("not confirmed"));
        for bucket in [
            json!({"owner": "confirmed", "trusted": false}),
            json!({"owner": "unconfirmed", "trusted": true}),
            json!({"owner": "unknown", "trusted": false}),
        ] {
            let (severity, reason) = spec.escalate(
                Severity::High,
                None,
                &facts(json!({ "bucket": bucket.clone() })),
            );
            assert_eq!((severity, reason), (Severity::High, None), "{bucket}");
        }
        // A record escalation already at Critical keeps its own reason.
        let kept = spec.escalate(Severity::Critical, Some("root".into()), &unconfirmed);
        assert_eq!(kept, (Severity::Critical, Some("root".into())));
    }

    #[test]
    fn containment_names_the_first_requirement_that_does_not_hold() {
        let containment = export_rule().containment.unwrap();
        let running = json!({"exportTask": {"status": "starting"}, "bucket": {"owner": "unconfirmed", "trusted": false}});
        assert_eq!(containment.unmet(&facts(running)), None);
        let complete = json!({"exportTask": {"status": "complete"}, "bucket": {"owner": "unconfirmed", "trusted": false}});
        let reason = containment.unmet(&facts(complete)).unwrap();
        assert!(
            reason.contains("enrichment.exportTask.status = \"complete\""),
            "{reason}"
        );
        let confirmed = json!({"exportTask": {"status": "in_progress"}, "bucket": {"owner": "confirmed", "trusted": false}});
        let reason = containment.unmet(&facts(confirmed)).unwrap();
        assert!(reason.contains("bucket"), "{reason}");
        let unknown = json!({"exportTask": {"status": "unknown"}});
        assert!(containment.unmet(&facts(unknown)).is_some());
        let empty = facts(json!({}));
        let values = containment.allow_list_values(&empty);
        let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "principal.arn",
                "principal.issuerArn",
                "iamRoleArn",
                "s3Bucket"
            ]
        );
    }

    fn load(extra: &str) -> Result<Rule, String> {
        let base = "RuleID: T\nSeverity: High\nDetection:\n  - Key: eventName\n    Condition: Equals\n    Value: X\nAlertFields:\n  - Name: task\n    Path: a\n  - Name: bucket\n    Path: b\n";
        Rule::from_yaml("t.yml", &format!("{base}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn declarations_must_name_alert_fields_and_guard_the_action() {
        assert!(load("Enrichment:\n  ExportTask: task\n  Bucket: bucket\n").is_ok());
        let e = load("Enrichment:\n  Bucket: nope\n").unwrap_err();
        assert!(e.contains("nope is not an alert field"), "{e}");
        let e = load("Enrichment:\n  Escalations: []\n").unwrap_err();
        assert!(e.contains("no lookup"), "{e}");
        let e = load("Enrichment:\n  Bucket: bucket\n  Extra: 1\n").unwrap_err();
        assert!(e.contains("Extra"), "{e}");
        let e = load("Containment:\n  Action: CancelExportTask\n  Target: task\n").unwrap_err();
        assert!(e.contains("Requires"), "{e}");
        let e = load("Containment:\n  Action: DeleteBucket\n  Target: task\n  Requires: []\n")
            .unwrap_err();
        assert!(e.contains("DeleteBucket"), "{e}");
        let ok = load("Containment:\n  Action: CancelExportTask\n  Target: task\n  Requires:\n    - That: it runs\n      Detection:\n        - DeepKey: [enrichment, exportTask, status]\n          Condition: Equals\n          Value: starting\n").unwrap();
        assert_eq!(ok.containment.unwrap().requires[0].that, "it runs");
        let e =
            load("Enrichment:\n  Source:\n    - Field: task\n      Kind: Volume\n").unwrap_err();
        assert!(
            e.contains("Source") || e.contains("Volume") || e.contains("variant"),
            "{e}"
        );
    }
}
