//! Alert -> AWS Security Hub: each alert also becomes an ASFF finding, imported
//! with `BatchImportFindings` (`TRAILWATCH_SECURITYHUB=true`).
//!
//! The finding's `Id` is derived from the alert's `alertId`, which is stable per
//! window: a retried publication re-imports the same finding, which Security Hub
//! updates in place, never a second one. Roll-ups are not findings (they count
//! matches of a finding already raised).

use crate::aws_error::{classify, Cause};
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_securityhub::types::{AwsSecurityFinding, Resource, Severity, SeverityLabel};
use aws_sdk_securityhub::Client;
use serde_json::Value;

use super::{AlertSink, SinkError};
use crate::alert::Notification;
use crate::rule;
use crate::text::truncate_marked;

/// ASFF limits, in bytes (Security Hub counts characters: bytes are never fewer).
const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 1024;
const MAX_PRODUCT_FIELD: usize = 2048;
/// Security Hub takes at most 50 product fields per finding.
const MAX_PRODUCT_FIELDS: usize = 50;
const MAX_RESOURCE_ID: usize = 512;
/// Security Hub takes at most 32 resources per finding.
const MAX_RESOURCES: usize = 32;

/// Imports findings into the Security Hub of the account and region of `product_arn`.
pub struct SecurityHubSink {
    client: Client,
    product_arn: String,
}

impl SecurityHubSink {
    pub fn new(client: Client, product_arn: impl Into<String>) -> Self {
        SecurityHubSink {
            client,
            product_arn: product_arn.into(),
        }
    }
}

/// The default product ARN through which an account imports its own findings.
pub fn product_arn(partition: &str, region: &str, account: &str) -> String {
    format!("arn:{partition}:securityhub:{region}:{account}:product/{account}/default")
}

/// The finding's id for an alert: the same alert, the same finding.
pub fn finding_id(alert_id: &str) -> String {
    format!("trailwatch/alert/{alert_id}")
}

/// ASFF `Types` for a rule's MITRE ATT&CK entries (`TA0010:T1537` ->
/// `TTPs/Exfiltration/T1537`); `TTPs` when no tactic is known.
pub fn finding_types(mitre: &[String]) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for entry in mitre {
        let (tactic, technique) = entry.split_once(':').unwrap_or((entry.as_str(), ""));
        let Some(category) = tactic_category(tactic) else {
            continue;
        };
        let text = if technique.is_empty() {
            format!("TTPs/{category}")
        } else {
            format!("TTPs/{category}/{technique}")
        };
        if !types.contains(&text) {
            types.push(text);
        }
    }
    if types.is_empty() {
        types.push("TTPs".into());
    }
    types
}

/// The ASFF `TTPs` category of a MITRE ATT&CK tactic.
fn tactic_category(tactic: &str) -> Option<&'static str> {
    Some(match tactic {
        "TA0001" => "Initial Access",
        "TA0002" => "Execution",
        "TA0003" => "Persistence",
        "TA0004" => "Privilege Escalation",
        "TA0005" => "Defense Evasion",
        "TA0006" => "Credential Access",
        "TA0007" => "Discovery",
        "TA0008" => "Lateral Movement",
        "TA0009" => "Collection",
        "TA0010" => "Exfiltration",
        "TA0011" => "Command and Control",
        "TA0040" => "Impact",
        _ => return None,
    })
}

fn severity_label(severity: rule::Severity) -> SeverityLabel {
    match severity {
        rule::Severity::Info => SeverityLabel::Informational,
        rule::Severity::Low => SeverityLabel::Low,
        rule::Severity::Medium => SeverityLabel::Medium,
        rule::Severity::High => SeverityLabel::High,
        rule::Severity::Critical => SeverityLabel::Critical,
    }
}

fn cut(text: &str, max: usize) -> String {
    truncate_marked(text, max).into_owned()
}

/// The finding for an alert or an integrity alert; `None` for a roll-up or a
/// follow-up. `now` is the wall-clock `UpdatedAt` (Security Hub keeps the finding
/// with the latest one).
pub fn finding_for(
    notification: &Notification,
    product_arn: &str,
    now: &str,
) -> Result<Option<AwsSecurityFinding>, String> {
    if !matches!(notification.kind, "alert" | "integrity") {
        return Ok(None);
    }
    let doc: Value = serde_json::from_str(&notification.document)
        .map_err(|e| format!("alert document is not JSON: {e}"))?;
    let text = |path: &[&str]| -> String { rule::scalar_text(rule::lookup(&doc, path)) };
    // The importing account: findings imported through the default product belong
    // to the account that imports them; the alert's account is a resource.
    let importer = rule::arn_account(product_arn)
        .ok_or_else(|| format!("{product_arn} is not a Security Hub product ARN"))?;
    let partition = product_arn.split(':').nth(1).unwrap_or("aws");
    let mitre: Vec<String> = doc["mitre"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // An alert is observed when its record happened; an integrity alert at the
    // end of the hour its digest covers.
    let event_time = [text(&["eventTime"]), text(&["digestEnd"])]
        .into_iter()
        .find(|t| crate::time::parse_event_time(t).is_some())
        .unwrap_or_default();
    let observed = if crate::time::parse_event_time(&event_time).is_some() {
        event_time
    } else {
        now.to_owned()
    };
    let mut description = text(&["description"]);
    if let Some(reason) = doc["severityReason"].as_str() {
        description = format!(
            "{description} Raised to {} because {reason}.",
            notification.severity.label()
        );
    }
    let resource = |kind: &str, id: &str| {
        Resource::builder()
            .r#type(kind)
            .id(cut(id, MAX_RESOURCE_ID))
            .partition(aws_sdk_securityhub::types::Partition::from(partition))
            .region(&notification.region)
            .build()
    };
    let mut resources = vec![resource(
        "AwsAccount",
        &format!("AWS::::Account:{}", notification.account),
    )];
    resources.extend(
        notification
            .resources
            .iter()
            .take(MAX_RESOURCES - 1)
            .map(|r| resource(&r.kind, &r.id)),
    );
    // The enrichment's and the response's own fields come after these (at most
    // 32 more: Security Hub takes 50 per finding).
    let field = |path: &[&str]| rule::lookup(&doc, path).map(|v| rule::scalar_text(Some(v)));
    let fields: HashMap<String, String> = [
        ("trailwatch/alertId", field(&["alertId"])),
        ("trailwatch/ruleId", Some(notification.rule_id.clone())),
        ("trailwatch/dedupKey", field(&["dedupKey"])),
        ("trailwatch/eventId", field(&["eventId"])),
        ("trailwatch/eventTime", field(&["eventTime"])),
        ("trailwatch/account", Some(notification.account.clone())),
        ("trailwatch/region", Some(notification.region.clone())),
        ("trailwatch/principalArn", field(&["principal", "arn"])),
        ("trailwatch/principalType", field(&["principal", "type"])),
        ("trailwatch/principalName", field(&["principal", "name"])),
        ("trailwatch/sourceIPAddress", field(&["sourceIPAddress"])),
        ("trailwatch/userAgent", field(&["userAgent"])),
        ("trailwatch/source", field(&["source"])),
    ]
    .into_iter()
    // Only what the document has (an integrity alert has no principal).
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .chain(notification.product_fields.iter().cloned())
    .take(MAX_PRODUCT_FIELDS)
    .map(|(k, v)| (k, cut(&v, MAX_PRODUCT_FIELD)))
    .collect();
    let mut finding = AwsSecurityFinding::builder()
        .schema_version("2018-10-08")
        .id(finding_id(&notification.alert_id))
        .product_arn(product_arn)
        .generator_id(format!("trailwatch/{}", notification.rule_id))
        .aws_account_id(importer)
        .region(&notification.region)
        .created_at(&observed)
        .first_observed_at(&observed)
        .last_observed_at(&observed)
        .updated_at(now)
        .severity(
            Severity::builder()
                .label(severity_label(notification.severity))
                .original(notification.severity.label())
                .build(),
        )
        .title(cut(&text(&["title"]), MAX_TITLE))
        .description(cut(&description, MAX_DESCRIPTION))
        .set_resources(Some(resources))
        .set_product_fields(Some(fields));
    for t in finding_types(&mitre) {
        finding = finding.types(t);
    }
    if let Some(url) = doc["reference"]
        .as_str()
        .filter(|u| u.starts_with("https://"))
    {
        finding = finding.source_url(url);
    }
    Ok(Some(finding.build()))
}

#[async_trait]
impl AlertSink for SecurityHubSink {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError> {
        let fail_with = |cause: Cause, message: String| SinkError {
            alert_id: notification.alert_id.clone(),
            cause,
            message: format!("Security Hub ({}): {message}", self.product_arn),
        };
        let fail = |message: String| fail_with(Cause::Rejected, message);
        let now = crate::time::format_ms(crate::time::now_ms());
        let Some(finding) = finding_for(notification, &self.product_arn, &now).map_err(fail)?
        else {
            return Ok(());
        };
        let output = self
            .client
            .batch_import_findings()
            .findings(finding)
            .send()
            .await
            .map_err(|e| {
                fail_with(
                    classify(&e),
                    aws_sdk_securityhub::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        match output.failed_findings().first() {
            None if output.failed_count().unwrap_or(0) == 0 => Ok(()),
            None => Err(fail("the finding was not imported".into())),
            Some(failed) => Err(fail(format!(
                "finding {} not imported: {} {}",
                failed.id().unwrap_or_default(),
                failed.error_code().unwrap_or_default(),
                failed.error_message().unwrap_or_default()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_rule_tactics() {
        assert_eq!(
            finding_types(&["TA0010:T1537".into(), "TA0010:T1537".into()]),
            ["TTPs/Exfiltration/T1537"]
        );
        assert_eq!(finding_types(&["TA0040".into()]), ["TTPs/Impact"]);
        assert_eq!(finding_types(&["X:Y".into()]), ["TTPs"]);
    }

    #[test]
    fn product_arns_and_ids() {
        assert_eq!(
            product_arn("aws", "eu-west-1", "123456789012"),
            "arn:aws:securityhub:eu-west-1:123456789012:product/123456789012/default"
        );
        assert_eq!(finding_id("abc"), "trailwatch/alert/abc");
    }
}
