//! The alert: one JSON document for machines, one plain-text e-mail for people.
//!
//! [`Notification`] is what every sink receives: the document (SNS `default`
//! variant, NDJSON line of `scan`), the e-mail text (SNS `email` variant), the
//! subject and the message attributes subscribers filter on.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::dedup::Rollup;
use crate::detect::Match;
use crate::rule::{first_present, lookup, scalar_text, Rule, Severity};
use crate::text::truncate_marked;
use crate::time::format_ms;
use crate::UNKNOWN;

/// SNS's limit for one publish request: the message (every variant, as sent), the
/// subject and the message attributes together.
pub const SNS_PUBLISH_LIMIT: usize = 262_144;
/// Field caps tried in turn when a notification is too large for SNS (see
/// [`fit_to_sns`]): `None` leaves out only the optional bulk (the raw event).
const SHRINK_STEPS: [Option<usize>; 5] = [None, Some(4096), Some(1024), Some(256), Some(64)];
/// SNS subject limit.
pub const MAX_SUBJECT_CHARS: usize = 100;

/// Who made the call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Principal {
    pub arn: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `userName`, the role session issuer's name, or the `principalId`.
    pub name: String,
}

impl Principal {
    pub fn of(record: &Value) -> Principal {
        let field = |path: &[&str]| {
            let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
            lookup(record, &path)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Principal {
            arn: field(&["userIdentity", "arn"]).unwrap_or_else(|| UNKNOWN.into()),
            kind: field(&["userIdentity", "type"]).unwrap_or_else(|| UNKNOWN.into()),
            name: field(&["userIdentity", "userName"])
                .or_else(|| {
                    field(&[
                        "userIdentity",
                        "sessionContext",
                        "sessionIssuer",
                        "userName",
                    ])
                })
                .or_else(|| field(&["userIdentity", "principalId"]))
                .unwrap_or_else(|| UNKNOWN.into()),
        }
    }

    /// The most specific identifier available.
    pub fn display(&self) -> &str {
        if self.arn != UNKNOWN {
            &self.arn
        } else {
            &self.name
        }
    }
}

/// The alert document (SPEC §5).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertDocument {
    pub kind: &'static str,
    pub alert_id: String,
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity_reason: Option<String>,
    pub description: String,
    pub runbook: String,
    pub reference: String,
    pub mitre: Vec<String>,
    pub dedup_key: String,
    pub window_start: String,
    pub window_minutes: i64,
    pub event_time: String,
    pub event_id: String,
    pub account: String,
    pub region: String,
    pub principal: Principal,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    /// The rule's `AlertContext` fields (`snapshotArn`, `s3Bucket`, ...).
    #[serde(flatten)]
    pub context: Map<String, Value>,
    pub source: String,
    /// The matched record as it was, or absent when too large for SNS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub event_omitted: bool,
    /// What the lenient parse repaired in the record (see `decode::repair`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parse_warnings: Vec<String>,
    /// Fields cut to fit SNS's message size (each ends with a `[truncated ...]` mark).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated_fields: Vec<String>,
}

/// Records which fields [`truncate_marked`] cut.
struct Cutter {
    max: usize,
    cut: Vec<String>,
}

impl Cutter {
    fn text(&mut self, name: &str, value: &mut String) {
        if let std::borrow::Cow::Owned(short) = truncate_marked(value, self.max) {
            *value = short;
            self.cut.push(name.to_owned());
        }
    }

    /// A non-string value too long as JSON text becomes its cut text.
    fn value(&mut self, name: &str, value: &mut Value) {
        match value {
            Value::String(text) => self.text(name, text),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
            other => {
                let mut text = other.to_string();
                if text.len() > self.max {
                    self.text(name, &mut text);
                    *other = Value::String(text);
                }
            }
        }
    }

    fn list(&mut self, name: &str, items: &mut [String]) {
        for item in items {
            self.text(name, item);
        }
    }

    /// Names of the cut fields, each once, in the order they were cut.
    fn into_names(self, mut already: Vec<String>) -> Vec<String> {
        for name in self.cut {
            if !already.contains(&name) {
                already.push(name);
            }
        }
        already
    }
}

impl AlertDocument {
    /// Cuts every field a record fills to `max` bytes.
    fn truncate_fields(&mut self, max: usize) {
        let mut cut = Cutter {
            max,
            cut: Vec::new(),
        };
        cut.text("title", &mut self.title);
        cut.text("dedupKey", &mut self.dedup_key);
        cut.text("eventTime", &mut self.event_time);
        cut.text("eventId", &mut self.event_id);
        cut.text("account", &mut self.account);
        cut.text("region", &mut self.region);
        cut.text("principal.arn", &mut self.principal.arn);
        cut.text("principal.type", &mut self.principal.kind);
        cut.text("principal.name", &mut self.principal.name);
        cut.text("sourceIPAddress", &mut self.source_ip_address);
        cut.text("userAgent", &mut self.user_agent);
        cut.text("source", &mut self.source);
        for (name, value) in self.context.iter_mut() {
            cut.value(name, value);
        }
        cut.list("parseWarnings", &mut self.parse_warnings);
        self.truncated_fields = cut.into_names(std::mem::take(&mut self.truncated_fields));
    }
}

/// The roll-up document: what a window suppressed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollupDocument {
    pub kind: &'static str,
    pub alert_id: String,
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    pub description: String,
    pub runbook: String,
    pub dedup_key: String,
    pub window_start: String,
    pub window_end: String,
    pub account: String,
    pub region: String,
    /// The `eventID` that opened the window (and alerted).
    pub first_alert_event_id: String,
    pub suppressed: u64,
    pub first_event_time: String,
    pub last_event_time: String,
    pub snapshots: Vec<String>,
    pub buckets: Vec<String>,
    pub principals: Vec<String>,
    /// Fields cut to fit SNS's message size (each ends with a `[truncated ...]` mark).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated_fields: Vec<String>,
}

impl RollupDocument {
    /// Cuts every field a record fills to `max` bytes.
    fn truncate_fields(&mut self, max: usize) {
        let mut cut = Cutter {
            max,
            cut: Vec::new(),
        };
        cut.text("title", &mut self.title);
        cut.text("dedupKey", &mut self.dedup_key);
        cut.text("account", &mut self.account);
        cut.text("region", &mut self.region);
        cut.text("firstAlertEventId", &mut self.first_alert_event_id);
        cut.list("snapshots", &mut self.snapshots);
        cut.list("buckets", &mut self.buckets);
        cut.list("principals", &mut self.principals);
        self.truncated_fields = cut.into_names(std::mem::take(&mut self.truncated_fields));
    }
}

/// What a sink publishes.
#[derive(Debug, Clone)]
pub struct Notification {
    /// `alert` or `rollup`.
    pub kind: &'static str,
    pub alert_id: String,
    pub subject: String,
    /// The JSON document (compact).
    pub document: String,
    /// The plain-text e-mail.
    pub email: String,
    pub severity: Severity,
    pub rule_id: String,
    pub account: String,
    pub region: String,
}

impl Notification {
    /// SNS message attributes: `severity`, `rule_id`, `account`, `region`.
    pub fn attributes(&self) -> [(&'static str, &str); 4] {
        [
            ("severity", self.severity.label()),
            ("rule_id", &self.rule_id),
            ("account", &self.account),
            ("region", &self.region),
        ]
    }

    /// The SNS `MessageStructure=json` message: `default` and `email` variants.
    pub fn sns_message(&self) -> String {
        serde_json::json!({"default": self.document, "email": self.email}).to_string()
    }

    /// Bytes SNS counts against [`SNS_PUBLISH_LIMIT`]: the message as sent (the
    /// document escaped inside it), the subject, and each attribute's name, data
    /// type and value.
    pub fn publish_bytes(&self) -> usize {
        let attributes: usize = self
            .attributes()
            .iter()
            .map(|(name, value)| name.len() + "String".len() + value.len())
            .sum();
        self.sns_message().len() + self.subject.len() + attributes
    }

    /// Last resort when the rule's own texts are too long: cut the e-mail (the
    /// document stays whole and valid).
    fn cut_email_to_fit(&mut self) {
        while self.publish_bytes() > SNS_PUBLISH_LIMIT && self.email.len() > 64 {
            let max = self.email.len() * 3 / 4;
            self.email = truncate_marked(&self.email, max).into_owned();
        }
    }
}

/// Renders a document, shrinking it step by step ([`SHRINK_STEPS`]) until the
/// publish request fits SNS: a message SNS refuses is an alert lost, so every
/// field a record fills is cut before that can happen, and the cut is marked.
fn fit_to_sns<D>(
    document: &mut D,
    render: impl Fn(&D) -> Notification,
    shrink: impl Fn(&mut D, Option<usize>),
) -> Notification {
    let mut notification = render(document);
    for step in SHRINK_STEPS {
        if notification.publish_bytes() <= SNS_PUBLISH_LIMIT {
            return notification;
        }
        shrink(document, step);
        notification = render(document);
    }
    notification.cut_email_to_fit();
    notification
}

/// Stable id of a window's alert: the same rule, key and window always give the same
/// id, so a retried publication is recognisable downstream.
pub fn alert_id(rule_id: &str, dedup_key: &str, window_start_ms: i64, kind: &str) -> String {
    let digest = Sha256::digest(format!("{rule_id}\n{dedup_key}\n{window_start_ms}\n{kind}"));
    digest[..16]
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `[HIGH] text`, ASCII only, one line, at most 100 characters.
pub fn subject_line(severity: Severity, text: &str) -> String {
    let full = format!("[{}] {}", severity.label(), text);
    let ascii: String = full
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            '\t' | '\n' | '\r' => ' ',
            _ => '?',
        })
        .collect();
    if ascii.len() <= MAX_SUBJECT_CHARS {
        ascii
    } else {
        format!("{}...", &ascii[..MAX_SUBJECT_CHARS - 3])
    }
}

/// Builds the alert for a match that opened (or stands outside) a window.
pub fn build_alert(
    rule: &Rule,
    m: &Match,
    dedup_key: &str,
    window_start_ms: i64,
    window_ms: i64,
) -> Notification {
    let record = &m.record;
    let (severity, reason) = rule.severity_for(record);
    let text = |key: &str| scalar_text(record.get(key));
    let context: Map<String, Value> = rule
        .alert_context
        .iter()
        .map(|(name, paths)| {
            let value = first_present(record, paths).cloned();
            let value = match (name.as_str(), value) {
                // Absent `exportOnly` means the whole snapshot was exported.
                ("exportOnly", None) => Value::Null,
                (_, Some(v)) => v,
                (_, None) => Value::String(UNKNOWN.into()),
            };
            (name.clone(), value)
        })
        .collect();
    let mut document = AlertDocument {
        kind: "alert",
        alert_id: alert_id(&rule.id, dedup_key, window_start_ms, "alert"),
        rule_id: rule.id.clone(),
        title: rule.title_for(record),
        severity,
        severity_reason: reason.map(str::to_owned),
        description: rule.description.clone(),
        runbook: rule.runbook.clone(),
        reference: rule.reference.clone(),
        mitre: rule.mitre.clone(),
        dedup_key: dedup_key.to_owned(),
        window_start: format_ms(window_start_ms),
        window_minutes: window_ms / 60_000,
        event_time: text("eventTime"),
        event_id: m.event_id.clone(),
        account: text("recipientAccountId"),
        region: text("awsRegion"),
        principal: Principal::of(record),
        source_ip_address: text("sourceIPAddress"),
        user_agent: text("userAgent"),
        context,
        source: m.source.clone(),
        event: Some(m.raw.clone()),
        event_omitted: false,
        parse_warnings: m.parse_warnings.clone(),
        truncated_fields: Vec::new(),
    };
    let subject = subject_line(severity, &rule.subject_for(record));
    let render = |document: &AlertDocument| Notification {
        kind: "alert",
        subject: subject.clone(),
        alert_id: document.alert_id.clone(),
        document: serde_json::to_string(document).expect("alert documents serialize"),
        email: alert_email(rule, document),
        severity,
        rule_id: rule.id.clone(),
        account: document.account.clone(),
        region: document.region.clone(),
    };
    fit_to_sns(&mut document, render, |document, step| {
        document.event = None;
        document.event_omitted = true;
        if let Some(max) = step {
            document.truncate_fields(max);
        }
    })
}

fn context_text(doc: &AlertDocument, name: &str) -> String {
    match doc.context.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => UNKNOWN.into(),
        Some(other) => other.to_string(),
    }
}

fn push_list(out: &mut String, heading: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{heading}");
    for item in items {
        let _ = writeln!(out, "  - {item}");
    }
}

/// The e-mail: what happened, who, from where, what went where, then what to do.
fn alert_email(rule: &Rule, doc: &AlertDocument) -> String {
    let mut out = String::new();
    let tables = match doc.context.get("exportOnly") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| scalar_text(Some(v)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "the whole snapshot".into(),
    };
    let _ = writeln!(out, "{} alert: {}", doc.severity.label(), rule.display_name);
    if let Some(reason) = &doc.severity_reason {
        let _ = writeln!(
            out,
            "Raised to {} because {}.",
            doc.severity.label(),
            reason
        );
    }
    let _ = writeln!(out, "\n{}\n", doc.title);
    let rows = [
        (
            "What",
            format!("rds:StartExportTask succeeded at {}", doc.event_time),
        ),
        (
            "Who",
            format!(
                "{} ({}, {})",
                doc.principal.display(),
                doc.principal.kind,
                doc.principal.name
            ),
        ),
        (
            "From",
            format!("{} with {}", doc.source_ip_address, doc.user_agent),
        ),
        (
            "Where",
            format!("account {}, region {}", doc.account, doc.region),
        ),
        ("Snapshot", context_text(doc, "snapshotArn")),
        (
            "To",
            format!(
                "s3://{}/{}",
                context_text(doc, "s3Bucket"),
                context_text(doc, "s3Prefix").trim_start_matches('/')
            ),
        ),
        ("Tables", tables),
        ("Task", context_text(doc, "exportTaskIdentifier")),
        ("KMS key", context_text(doc, "kmsKeyId")),
        ("Role", context_text(doc, "iamRoleArn")),
        ("Event", format!("{} in {}", doc.event_id, doc.source)),
        (
            "Alert",
            format!(
                "{} (further exports for {} within {} minutes of {} are counted, not re-sent)",
                doc.alert_id, doc.dedup_key, doc.window_minutes, doc.window_start
            ),
        ),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "{:<9} {}", format!("{label}:"), value);
    }
    let _ = write!(out, "\nRunbook\n{}", indent(&doc.runbook));
    push_list(&mut out, "Triage checklist", &rule.triage);
    push_list(&mut out, "Likely false positives", &rule.false_positives);
    push_list(&mut out, "If it was not authorised", &rule.response);
    let _ = writeln!(
        out,
        "\nMITRE ATT&CK: {}   Reference: {}",
        doc.mitre.join(", "),
        doc.reference
    );
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Builds the roll-up for a closed window.
pub fn build_rollup(rule: &Rule, rollup: &Rollup) -> Notification {
    let w = &rollup.window;
    let mut parts = rollup.key.rsplitn(3, ':');
    let account = parts.next().unwrap_or(UNKNOWN).to_owned();
    let region = parts.next().unwrap_or(UNKNOWN).to_owned();
    let list = |set: &std::collections::BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
    let mut doc = RollupDocument {
        kind: "rollup",
        alert_id: alert_id(&rule.id, &rollup.key, w.open_ms, "rollup"),
        rule_id: rule.id.clone(),
        title: format!(
            "{}: {} more matching event(s) suppressed in {}/{}",
            rule.display_name, w.suppressed, account, region
        ),
        severity: rule.severity,
        description: rule.description.clone(),
        runbook: rule.runbook.clone(),
        dedup_key: rollup.key.clone(),
        window_start: format_ms(w.open_ms),
        window_end: format_ms(w.end_ms()),
        account: account.clone(),
        region: region.clone(),
        first_alert_event_id: w.first_event_id.clone(),
        suppressed: w.suppressed,
        first_event_time: w
            .first_suppressed_ms
            .map_or_else(|| UNKNOWN.into(), format_ms),
        last_event_time: w
            .last_suppressed_ms
            .map_or_else(|| UNKNOWN.into(), format_ms),
        snapshots: list(&w.snapshots),
        buckets: list(&w.buckets),
        principals: list(&w.principals),
        truncated_fields: Vec::new(),
    };
    let subject = subject_line(
        rule.severity,
        &format!(
            "{} more RDS snapshot export(s) in {}/{} (roll-up)",
            w.suppressed, account, region
        ),
    );
    let render = |doc: &RollupDocument| Notification {
        kind: "rollup",
        alert_id: doc.alert_id.clone(),
        subject: subject.clone(),
        document: serde_json::to_string(doc).expect("roll-up documents serialize"),
        email: rollup_email(rule, doc),
        severity: rule.severity,
        rule_id: rule.id.clone(),
        account: doc.account.clone(),
        region: doc.region.clone(),
    };
    fit_to_sns(&mut doc, render, |doc, step| {
        if let Some(max) = step {
            doc.truncate_fields(max);
        }
    })
}

/// The roll-up e-mail: the window, what it suppressed, the runbook.
fn rollup_email(rule: &Rule, doc: &RollupDocument) -> String {
    let mut email = String::new();
    let _ = writeln!(
        email,
        "{} roll-up: {}\n\n{}\n",
        doc.severity.label(),
        rule.display_name,
        doc.title
    );
    let _ = writeln!(
        email,
        "Window:     {} to {} (key {})",
        doc.window_start, doc.window_end, doc.dedup_key
    );
    let _ = writeln!(email, "First alert: event {}", doc.first_alert_event_id);
    let _ = writeln!(
        email,
        "Suppressed: {} between {} and {}",
        doc.suppressed, doc.first_event_time, doc.last_event_time
    );
    push_list(&mut email, "Snapshots", &doc.snapshots);
    push_list(&mut email, "Buckets", &doc.buckets);
    push_list(&mut email, "Principals", &doc.principals);
    let _ = write!(email, "\nRunbook\n{}", indent(&doc.runbook));
    email
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleSet;

    fn seed_match() -> (Rule, Match) {
        let rule = RuleSet::embedded().rules[0].clone();
        let record = rule.tests[0].log.clone();
        let raw = RawValue::from_string(record.to_string()).unwrap();
        let m = Match {
            rule: 0,
            event_time_ms: crate::time::parse_event_time("2024-01-15T10:30:00Z"),
            event_id: "f1e2d3c4-b5a6-7890-1234-567890abcdef".into(),
            record,
            raw,
            parse_warnings: Vec::new(),
            source: "s3://trail/AWSLogs/123456789012/CloudTrail/us-east-1/x.json.gz".into(),
            offset: 0,
        };
        (rule, m)
    }

    #[test]
    fn document_has_the_spec_fields() {
        let (rule, m) = seed_match();
        let n = build_alert(
            &rule,
            &m,
            "AWS.RDS.SnapshotExport:us-east-1:123456789012",
            m.event_time_ms.unwrap(),
            3_600_000,
        );
        let doc: Value = serde_json::from_str(&n.document).unwrap();
        for field in [
            "kind",
            "alertId",
            "ruleId",
            "title",
            "severity",
            "description",
            "runbook",
            "reference",
            "mitre",
            "dedupKey",
            "windowStart",
            "eventTime",
            "eventId",
            "account",
            "region",
            "principal",
            "sourceIPAddress",
            "userAgent",
            "snapshotArn",
            "exportTaskIdentifier",
            "s3Bucket",
            "s3Prefix",
            "kmsKeyId",
            "iamRoleArn",
            "exportOnly",
            "source",
            "event",
        ] {
            assert!(doc.get(field).is_some(), "missing {field}");
        }
        assert_eq!(doc["kind"], "alert");
        assert_eq!(doc["severity"], "High");
        assert_eq!(doc["mitre"][0], "TA0010:T1537");
        assert_eq!(
            doc["snapshotArn"],
            "arn:aws:rds:us-east-1:123456789012:snapshot:my-db-snapshot"
        );
        assert_eq!(doc["exportOnly"][1], "schema1.table2");
        assert_eq!(
            doc["principal"]["arn"],
            "arn:aws:sts::123456789012:assumed-role/Admin/user"
        );
        assert_eq!(doc["event"], m.record);
        assert_eq!(
            n.subject,
            "[HIGH] RDS snapshot my-db-snapshot exported to S3 in 123456789012/us-east-1"
        );
        assert_eq!(n.attributes()[0], ("severity", "HIGH"));
    }

    #[test]
    fn alert_id_is_stable_per_window() {
        let a = alert_id("R", "R:us-east-1:1", 5, "alert");
        assert_eq!(a, alert_id("R", "R:us-east-1:1", 5, "alert"));
        assert_ne!(a, alert_id("R", "R:us-east-1:1", 6, "alert"));
        assert_ne!(a, alert_id("R", "R:us-east-1:2", 5, "alert"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn subjects_are_ascii_single_line_and_short() {
        let s = subject_line(
            Severity::Critical,
            &format!("snapshot é\n{}", "x".repeat(200)),
        );
        assert!(s.len() <= MAX_SUBJECT_CHARS);
        assert!(s.is_ascii() && !s.contains('\n'));
        assert!(s.starts_with("[CRITICAL] snapshot ? "));
    }

    #[test]
    fn email_names_what_who_where_and_the_triage() {
        let (rule, m) = seed_match();
        let n = build_alert(&rule, &m, "k", 0, 3_600_000);
        for needle in [
            "my-db-snapshot",
            "s3://my-export-bucket/exports/2024-01-15/",
            "1.2.3.4",
            "Triage checklist",
            "schema1.table1",
            "Runbook",
        ] {
            assert!(
                n.email.contains(needle),
                "e-mail lacks {needle}:\n{}",
                n.email
            );
        }
        let msg: Value = serde_json::from_str(&n.sns_message()).unwrap();
        assert_eq!(msg["email"], n.email);
        assert_eq!(msg["default"], n.document);
    }

    /// The request size counted from what SnsSink sends, independently of
    /// `publish_bytes`: the message JSON, the subject, each attribute.
    fn request_bytes(n: &Notification) -> usize {
        let message = serde_json::json!({"default": n.document, "email": n.email}).to_string();
        let attributes: usize = [
            ("severity", n.severity.label()),
            ("rule_id", n.rule_id.as_str()),
            ("account", n.account.as_str()),
            ("region", n.region.as_str()),
        ]
        .iter()
        .map(|(name, value)| name.len() + 6 + value.len())
        .sum();
        message.len() + n.subject.len() + attributes
    }

    #[test]
    fn a_large_event_is_kept_when_it_fits() {
        let (rule, mut m) = seed_match();
        m.record["requestParameters"]["s3Prefix"] = Value::String("p".repeat(60_000));
        m.raw = RawValue::from_string(m.record.to_string()).unwrap();
        let n = build_alert(&rule, &m, "k", 0, 3_600_000);
        let doc: Value = serde_json::from_str(&n.document).unwrap();
        assert_eq!(doc["event"], m.record);
        assert!(doc.get("eventOmitted").is_none());
        assert!(doc.get("truncatedFields").is_none());
        assert!(request_bytes(&n) <= SNS_PUBLISH_LIMIT);
    }

    #[test]
    fn huge_events_are_left_out_and_huge_fields_cut_to_fit_sns() {
        let (rule, mut m) = seed_match();
        // Control characters escape to six bytes, twice over (document, message).
        let hostile = "\u{1}".repeat(300_000);
        for (field, value) in [
            ("s3Prefix", "p".repeat(300_000)),
            ("s3Prefix", hostile.clone()),
            ("kmsKeyId", hostile.clone()),
        ] {
            m.record["requestParameters"][field] = Value::String(value.clone());
            m.record["userAgent"] = Value::String(value);
            m.record["awsRegion"] = Value::String(hostile.clone());
            m.raw = RawValue::from_string(m.record.to_string()).unwrap();
            let n = build_alert(&rule, &m, "k", 0, 3_600_000);
            let size = request_bytes(&n);
            assert!(size <= SNS_PUBLISH_LIMIT, "{field}: {size} bytes");
            assert_eq!(size, n.publish_bytes());
            let doc: Value = serde_json::from_str(&n.document).unwrap();
            assert!(doc.get("event").is_none());
            assert_eq!(doc["eventOmitted"], true);
            let cut: Vec<&str> = doc["truncatedFields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            for name in [field, "userAgent", "region"] {
                assert!(cut.contains(&name), "{name} not in {cut:?}");
            }
            assert!(doc["userAgent"]
                .as_str()
                .unwrap()
                .ends_with("...[truncated from 300000 bytes]"));
            assert!(n.email.contains("[truncated from 300000 bytes]"));
        }
    }

    #[test]
    fn rollups_of_huge_values_fit_sns() {
        let (rule, _) = seed_match();
        let hostile = "\u{1}".repeat(300_000);
        let mut window = crate::dedup::Window::default();
        for i in 0..crate::dedup::MAX_DISTINCT {
            let value = format!("{i}{hostile}");
            window.absorb(&crate::dedup::Claim {
                key: String::new(),
                event_time_ms: 0,
                event_id: String::new(),
                window_ms: 0,
                snapshot: value.clone(),
                bucket: value.clone(),
                principal: value,
            });
        }
        let stored = window.snapshots.iter().next().unwrap();
        assert_eq!(
            stored.len(),
            crate::dedup::MAX_DISTINCT_BYTES,
            "capped when stored"
        );
        let rollup = Rollup {
            key: format!("{}:{hostile}:{hostile}", rule.id),
            window,
        };
        let n = build_rollup(&rule, &rollup);
        assert!(
            request_bytes(&n) <= SNS_PUBLISH_LIMIT,
            "{}",
            request_bytes(&n)
        );
        let doc: Value = serde_json::from_str(&n.document).unwrap();
        assert_eq!(
            doc["snapshots"].as_array().unwrap().len(),
            crate::dedup::MAX_DISTINCT
        );
        assert!(doc["truncatedFields"]
            .as_array()
            .unwrap()
            .contains(&Value::from("snapshots")));
    }

    #[test]
    fn missing_fields_read_unknown() {
        let (rule, mut m) = seed_match();
        m.record =
            serde_json::json!({"eventSource": "rds.amazonaws.com", "eventName": "StartExportTask"});
        let n = build_alert(&rule, &m, "k", 0, 3_600_000);
        let doc: Value = serde_json::from_str(&n.document).unwrap();
        assert_eq!(doc["account"], "unknown");
        assert_eq!(doc["principal"]["arn"], "unknown");
        assert_eq!(doc["s3Bucket"], "unknown");
        assert_eq!(doc["exportOnly"], Value::Null);
    }
}
