//! The alert: one JSON document for machines, one plain-text e-mail for people.
//!
//! [`Notification`] is what every sink receives: the document (SNS `default`
//! variant, NDJSON line of `scan`), the e-mail text (SNS `email` variant), the
//! subject and the message attributes subscribers filter on.
//!
//! The document is JSON, where any text is inert. The e-mail and the subject are
//! plain text whose lines a reader trusts, so every value taken from a record is
//! shown on one line with its control characters escaped
//! ([`crate::text::one_line`]): a record cannot add lines, nor move a terminal's
//! cursor, nor reorder what is read.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::dedup::Rollup;
use crate::detect::{DeliveryPath, Match};
use crate::enrich::{Enrichment, Known};
use crate::respond::{FollowUp, Response, ResponseMode};
use crate::rule::{lookup, RollupSpec, RowContent, Rule, Severity};
use crate::text::{one_line, truncate_marked};
use crate::time::format_ms;
use crate::UNKNOWN;

/// SNS's limit for one publish request: the message (every variant, as sent), the
/// subject and the message attributes together.
pub const SNS_PUBLISH_LIMIT: usize = 262_144;
// The detector keeps a record's text for `event` only up to this size.
const _: () = assert!(crate::detect::MAX_EVENT_BYTES == SNS_PUBLISH_LIMIT);
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
            lookup(record, path)
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
    /// The rule's alert fields (`AlertFields`), in its order.
    #[serde(flatten)]
    pub context: Map<String, Value>,
    /// What was looked up at alert time: the members `enrichment` and, when a
    /// call failed, `enrichmentErrors` (absent when the rule declares no lookup or
    /// enrichment is off).
    #[serde(flatten)]
    pub enrichment: Option<Enrichment>,
    /// The containment decided for the alert (absent when the rule declares none
    /// or `TRAILWATCH_RESPONSE=off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    pub source: String,
    /// How the record arrived: `s3` (a log file) or `eventbridge` (real time).
    pub path: DeliveryPath,
    /// Publication time minus the record's `eventTime`, in milliseconds; `null`
    /// when the record has no valid `eventTime`.
    pub alert_latency_ms: Option<u64>,
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
    /// A cutter that has already cut the fields both documents share.
    fn with_common(max: usize, title: &mut String, dedup_key: &mut String) -> Cutter {
        let mut cut = Cutter {
            max,
            cut: Vec::new(),
        };
        cut.text("title", title);
        cut.text("dedupKey", dedup_key);
        cut
    }

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
        let mut cut = Cutter::with_common(max, &mut self.title, &mut self.dedup_key);
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
        if let Some(enrichment) = &mut self.enrichment {
            cut_enrichment(&mut cut, enrichment);
        }
        if let Some(response) = &mut self.response {
            cut.text("response.target", &mut response.target);
            for (name, text) in [
                ("response.reason", &mut response.reason),
                ("response.cause", &mut response.cause),
            ] {
                if let Some(text) = text {
                    cut.text(name, text);
                }
            }
        }
        self.truncated_fields = cut.into_names(std::mem::take(&mut self.truncated_fields));
    }
}

/// The texts of an enrichment that a record fills (the task, snapshot and bucket
/// names are the record's) or that AWS wrote (causes, messages).
fn cut_enrichment(cut: &mut Cutter, enrichment: &mut Enrichment) {
    if let Some(task) = &mut enrichment.export_task {
        cut.text("enrichment.exportTask.id", &mut task.id);
        if let Known::Value(Some(cause)) = &mut task.failure_cause {
            cut.text("enrichment.exportTask.failureCause", cause);
        }
    }
    if let Some(source) = &mut enrichment.source {
        cut.text("enrichment.source.identifier", &mut source.identifier);
        if let Some(arn) = &mut source.arn {
            cut.text("enrichment.source.arn", arn);
        }
    }
    if let Some(bucket) = &mut enrichment.bucket {
        cut.text("enrichment.bucket.name", &mut bucket.name);
        cut.text("enrichment.bucket.detail", &mut bucket.detail);
    }
    for error in &mut enrichment.errors {
        cut.text("enrichmentErrors.message", &mut error.message);
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
    /// The rule's `RollupDistinct` lists, each under its name, in its order.
    #[serde(flatten)]
    pub distinct: DistinctLists,
    /// Fields cut to fit SNS's message size (each ends with a `[truncated ...]` mark).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated_fields: Vec<String>,
}

impl RollupDocument {
    /// Cuts every field a record fills to `max` bytes.
    fn truncate_fields(&mut self, max: usize) {
        let mut cut = Cutter::with_common(max, &mut self.title, &mut self.dedup_key);
        cut.text("account", &mut self.account);
        cut.text("region", &mut self.region);
        cut.text("firstAlertEventId", &mut self.first_alert_event_id);
        for (name, items) in &mut self.distinct.0 {
            cut.list(name, items);
        }
        self.truncated_fields = cut.into_names(std::mem::take(&mut self.truncated_fields));
    }
}

/// A roll-up's distinct-value lists: serialized as one JSON member per list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistinctLists(pub Vec<(String, Vec<String>)>);

impl Serialize for DistinctLists {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, items) in &self.0 {
            map.serialize_entry(name, items)?;
        }
        map.end()
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
    /// The resources the alert is about, as the rule's alert fields declare them
    /// (`Resource:`); empty for roll-ups. Security Hub findings list them.
    pub resources: Vec<AlertResource>,
    /// Security Hub `ProductFields` beyond those every finding carries: the
    /// enrichment's and the response's (`trailwatch/enrichment/...`,
    /// `trailwatch/response/...`).
    pub product_fields: Vec<(String, String)>,
}

/// A resource an alert names: its ASFF resource type (from the rule) and the value
/// the record gave (an ARN or a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertResource {
    pub kind: String,
    pub id: String,
}

/// The resources a record's alert fields name: each field with a `Resource` type
/// whose value is present (every item of a list).
fn resources_of(rule: &Rule, context: &Map<String, Value>) -> Vec<AlertResource> {
    let mut out = Vec::new();
    for field in &rule.output.fields {
        let (Some(kind), Some(value)) = (&field.resource, context.get(&field.name)) else {
            continue;
        };
        let items = match value {
            Value::Array(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        for item in items {
            if let Some(id) = item.as_str().filter(|id| !id.is_empty() && *id != UNKNOWN) {
                out.push(AlertResource {
                    kind: kind.clone(),
                    id: id.to_owned(),
                });
            }
        }
    }
    out
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

/// `[HIGH] text`, ASCII only, one line (control characters shown escaped), at
/// most 100 characters.
pub fn subject_line(severity: Severity, text: &str) -> String {
    let full = format!("[{}] {}", severity.label(), one_line(text));
    let ascii: String = full
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    if ascii.len() <= MAX_SUBJECT_CHARS {
        ascii
    } else {
        format!("{}...", &ascii[..MAX_SUBJECT_CHARS - 3])
    }
}

/// Milliseconds from the record's `eventTime` to `published_ms` (0 for a clock
/// behind the event's), or `None` without a valid `eventTime`.
pub fn alert_latency_ms(record: &Value, published_ms: i64) -> Option<u64> {
    let event_ms = record
        .get("eventTime")
        .and_then(Value::as_str)
        .and_then(crate::time::parse_event_time)?;
    Some(published_ms.saturating_sub(event_ms).max(0) as u64)
}

/// What an alert is made of: the match and its window, and what the pipeline
/// decided about it (its final severity, what enrichment found, the response).
#[derive(Clone, Copy)]
pub struct AlertInput<'a> {
    pub rule: &'a Rule,
    pub m: &'a Match,
    pub dedup_key: &'a str,
    pub window_start_ms: i64,
    pub window_ms: i64,
    /// What the `alertId` is made of besides the window: `alert` for a window's
    /// first alert, `alert:CRITICAL` for the alert of a match worse than the
    /// window's earlier alerts (an id of its own, stable across retries).
    pub id_kind: &'a str,
    /// When it is published (its `alertLatencyMs`).
    pub published_ms: i64,
    /// The final severity: the rule's, raised by its record escalations and then
    /// by its enrichment escalations.
    pub severity: Severity,
    /// Why it was raised, when it was.
    pub severity_reason: Option<&'a str>,
    pub enrichment: Option<&'a Enrichment>,
    pub response: Option<&'a Response>,
}

impl<'a> AlertInput<'a> {
    /// The alert as the record alone makes it (the rule's record escalations, no
    /// lookup, no response): a window's first alert, published now.
    pub fn of_record(
        rule: &'a Rule,
        m: &'a Match,
        dedup_key: &'a str,
        window_start_ms: i64,
        window_ms: i64,
    ) -> AlertInput<'a> {
        let (severity, severity_reason) = rule.severity_for(&m.record);
        AlertInput {
            rule,
            m,
            dedup_key,
            window_start_ms,
            window_ms,
            id_kind: "alert",
            published_ms: crate::time::now_ms(),
            severity,
            severity_reason,
            enrichment: None,
            response: None,
        }
    }
}

/// Builds the alert for a match that opened (or stands outside) a window, to be
/// published now, from its record alone (see [`AlertInput::of_record`]).
pub fn build_alert(
    rule: &Rule,
    m: &Match,
    dedup_key: &str,
    window_start_ms: i64,
    window_ms: i64,
) -> Notification {
    build_alert_from(&AlertInput::of_record(
        rule,
        m,
        dedup_key,
        window_start_ms,
        window_ms,
    ))
}

/// Builds an alert from everything the pipeline decided about its match.
pub fn build_alert_from(input: &AlertInput<'_>) -> Notification {
    let AlertInput { rule, m, .. } = *input;
    let record = &m.record;
    let severity = input.severity;
    let text = |key: &str| crate::rule::scalar_text(record.get(key));
    let context: Map<String, Value> = rule.output.field_values(record);
    let resources = resources_of(rule, &context);
    let mut product_fields = Vec::new();
    if let Some(enrichment) = input.enrichment {
        product_fields.extend(enrichment.product_fields());
    }
    if let Some(response) = input.response {
        product_fields.extend(response.product_fields());
    }
    let mut document = AlertDocument {
        kind: "alert",
        alert_id: alert_id(
            &rule.id,
            input.dedup_key,
            input.window_start_ms,
            input.id_kind,
        ),
        rule_id: rule.id.clone(),
        title: rule.title_for(record),
        severity,
        severity_reason: input.severity_reason.map(str::to_owned),
        description: rule.description.clone(),
        runbook: rule.runbook.clone(),
        reference: rule.reference.clone(),
        mitre: rule.mitre.clone(),
        dedup_key: input.dedup_key.to_owned(),
        window_start: format_ms(input.window_start_ms),
        window_minutes: input.window_ms / 60_000,
        event_time: text("eventTime"),
        event_id: m.event_id.clone(),
        account: text("recipientAccountId"),
        region: text("awsRegion"),
        principal: Principal::of(record),
        source_ip_address: text("sourceIPAddress"),
        user_agent: text("userAgent"),
        context,
        enrichment: input.enrichment.cloned(),
        response: input.response.cloned(),
        source: m.source.clone(),
        path: m.path,
        alert_latency_ms: alert_latency_ms(record, input.published_ms),
        event: m.raw.clone(),
        event_omitted: m.raw.is_none(),
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
        resources: resources.clone(),
        product_fields: product_fields.clone(),
    };
    fit_to_sns(&mut document, render, |document, step| {
        document.event = None;
        document.event_omitted = true;
        if let Some(max) = step {
            document.truncate_fields(max);
        }
    })
}

fn push_list(out: &mut String, heading: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{heading}");
    for item in items {
        let _ = writeln!(out, "  - {}", one_line(item));
    }
}

/// A document field for e-mail templates: an alert field (as the rule says it
/// reads), or one of the fields every alert has.
fn document_text(rule: &Rule, doc: &AlertDocument, name: &str) -> Option<String> {
    if doc.context.contains_key(name) {
        return Some(rule.output.email_text(name, doc.context.get(name)));
    }
    let text = match name {
        "eventTime" => doc.event_time.as_str(),
        "eventId" => doc.event_id.as_str(),
        "account" => doc.account.as_str(),
        "region" => doc.region.as_str(),
        "sourceIPAddress" => doc.source_ip_address.as_str(),
        "userAgent" => doc.user_agent.as_str(),
        "source" => doc.source.as_str(),
        "principal" => doc.principal.display(),
        "title" => doc.title.as_str(),
        _ => return None,
    };
    Some(text.to_owned())
}

/// The e-mail: what happened, who, from where, the rule's own rows, then what to do.
fn alert_email(rule: &Rule, doc: &AlertDocument) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} alert: {}", doc.severity.label(), rule.display_name);
    if let Some(reason) = &doc.severity_reason {
        let _ = writeln!(
            out,
            "Raised to {} because {}.",
            doc.severity.label(),
            one_line(reason)
        );
    }
    // What was done about it comes first, in words.
    if let Some(response) = &doc.response {
        for line in response.email_lines() {
            let _ = writeln!(out, "{}", one_line(&line));
        }
    }
    let _ = writeln!(out, "\n{}\n", one_line(&doc.title));
    let lookup = |name: &str| document_text(rule, doc, name);
    let mut rows = vec![
        ("What".to_owned(), rule.output.what.render(lookup)),
        (
            "Who".to_owned(),
            format!(
                "{} ({}, {})",
                doc.principal.display(),
                doc.principal.kind,
                doc.principal.name
            ),
        ),
        (
            "From".to_owned(),
            format!("{} with {}", doc.source_ip_address, doc.user_agent),
        ),
        (
            "Where".to_owned(),
            format!("account {}, region {}", doc.account, doc.region),
        ),
    ];
    for row in &rule.output.rows {
        let value = match &row.content {
            RowContent::Field(name) => rule.output.email_text(name, doc.context.get(name)),
            RowContent::Template(template) => template.render(lookup),
        };
        rows.push((row.label.clone(), value));
    }
    if let Some(enrichment) = &doc.enrichment {
        rows.extend(
            enrichment
                .email_rows()
                .into_iter()
                .map(|(label, text)| (label.to_owned(), text)),
        );
    }
    rows.push((
        "Event".to_owned(),
        format!("{} in {}", doc.event_id, doc.source),
    ));
    rows.push((
        "Alert".to_owned(),
        format!(
            "{} (further {} for {} within {} minutes of {} are counted, not re-sent)",
            doc.alert_id, rule.output.repeats, doc.dedup_key, doc.window_minutes, doc.window_start
        ),
    ));
    for (label, value) in rows {
        let _ = writeln!(out, "{:<9} {}", format!("{label}:"), one_line(&value));
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

/// Builds the roll-up for a closed window, from what `spec` says of its rule (the
/// loaded rule's, or the one stored with the window when the rule is gone).
pub fn build_rollup(spec: &RollupSpec, rollup: &Rollup) -> Notification {
    let w = &rollup.window;
    let key = rollup.key.to_string();
    let values = &rollup.key.values;
    let account = spec
        .group_value(values, "recipientAccountId")
        .unwrap_or(UNKNOWN)
        .to_owned();
    let region = spec
        .group_value(values, "awsRegion")
        .unwrap_or(UNKNOWN)
        .to_owned();
    let severity = spec.severity.unwrap_or(Severity::Medium);
    let distinct = spec
        .distinct
        .iter()
        .map(|(name, _)| {
            let set = w.distinct.get(name);
            (name.clone(), set.into_iter().flatten().cloned().collect())
        })
        .collect();
    let mut doc = RollupDocument {
        kind: "rollup",
        alert_id: alert_id(&rollup.key.rule_id, &key, w.open_ms, "rollup"),
        rule_id: rollup.key.rule_id.clone(),
        title: format!(
            "{}: {} more matching event(s) suppressed in {}/{}",
            spec.display_name, w.suppressed, account, region
        ),
        severity,
        description: spec.description.clone(),
        runbook: spec.runbook.clone(),
        dedup_key: key.clone(),
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
        distinct: DistinctLists(distinct),
        truncated_fields: Vec::new(),
    };
    let subject = subject_line(
        severity,
        &spec.subject.render(|name| match name {
            "suppressed" => Some(w.suppressed.to_string()),
            "account" => Some(account.clone()),
            "region" => Some(region.clone()),
            "key" => Some(key.clone()),
            "ruleName" => Some(spec.display_name.clone()),
            _ => None,
        }),
    );
    let render = |doc: &RollupDocument| Notification {
        kind: "rollup",
        alert_id: doc.alert_id.clone(),
        subject: subject.clone(),
        document: serde_json::to_string(doc).expect("roll-up documents serialize"),
        email: rollup_email(spec, doc),
        severity,
        rule_id: doc.rule_id.clone(),
        account: doc.account.clone(),
        region: doc.region.clone(),
        resources: Vec::new(),
        product_fields: Vec::new(),
    };
    fit_to_sns(&mut doc, render, |doc, step| {
        if let Some(max) = step {
            doc.truncate_fields(max);
        }
    })
}

/// The roll-up e-mail: the window, what it suppressed, the runbook.
fn rollup_email(spec: &RollupSpec, doc: &RollupDocument) -> String {
    let mut email = String::new();
    let _ = writeln!(
        email,
        "{} roll-up: {}\n\n{}\n",
        doc.severity.label(),
        spec.display_name,
        one_line(&doc.title)
    );
    let _ = writeln!(
        email,
        "Window:     {} to {} (key {})",
        doc.window_start,
        doc.window_end,
        one_line(&doc.dedup_key)
    );
    let _ = writeln!(
        email,
        "First alert: event {}",
        one_line(&doc.first_alert_event_id)
    );
    let _ = writeln!(
        email,
        "Suppressed: {} between {} and {}",
        doc.suppressed, doc.first_event_time, doc.last_event_time
    );
    for ((_, heading), (_, items)) in spec.distinct.iter().zip(&doc.distinct.0) {
        push_list(&mut email, heading, items);
    }
    let _ = write!(email, "\nRunbook\n{}", indent(&doc.runbook));
    email
}

/// A follow-up is published as alerts are: rendered here, so the response
/// module knows nothing of notifications.
impl FollowUp {
    /// What a sink publishes: the document, a short e-mail, the alert's attributes.
    /// Security Hub ignores it (not an `alert`).
    pub fn notification(&self) -> Notification {
        let r = &self.response;
        let subject = subject_line(
            self.severity,
            &format!(
                "Response to alert {}: export task {} {}",
                self.alert_id,
                r.target,
                r.outcome.label()
            ),
        );
        let mut email = format!(
            "Follow-up to alert {} ({})\n\n",
            self.alert_id, self.rule_id
        );
        // The task, account and region are the record's: shown inert, one line each.
        for line in r.email_lines() {
            email.push_str(&one_line(&line));
            email.push('\n');
        }
        email.push_str(&format!(
            "\nMode:     {}\nAccount:  {}, region {}\nAt:       {}\n",
            match r.mode {
                ResponseMode::Cancel => "cancel",
                ResponseMode::Report => "report",
                ResponseMode::Off => "off",
            },
            one_line(&r.account),
            one_line(&r.region),
            r.at
        ));
        Notification {
            kind: "response",
            alert_id: self.alert_id.clone(),
            subject,
            document: serde_json::to_string(self).expect("follow-ups serialize"),
            email,
            severity: self.severity,
            rule_id: self.rule_id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            resources: Vec::new(),
            product_fields: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = subject_line(Severity::Critical, &format!("thing é\n{}", "x".repeat(200)));
        assert!(s.len() <= MAX_SUBJECT_CHARS);
        assert!(s.is_ascii() && !s.contains('\n'));
        assert!(s.starts_with("[CRITICAL] thing ?\\nxx"), "{s}");
        let s = subject_line(Severity::High, "a\r\u{1b}[2J\u{2028}b");
        assert_eq!(s, "[HIGH] a\\r\\u001b[2J\\u2028b");
    }

    #[test]
    fn distinct_lists_serialize_as_members_in_order() {
        let lists = DistinctLists(vec![("zs".into(), vec!["1".into()]), ("as".into(), vec![])]);
        assert_eq!(
            serde_json::to_string(&lists).unwrap(),
            r#"{"zs":["1"],"as":[]}"#
        );
    }
}
