//! The integrity alert: one notification per digest that shows a problem (a log
//! file it lists is missing or differs, or the digest itself is unsigned, moved or
//! unchained), severity High, under its own rule id so that subscribers can route
//! it. It goes through the same sinks as the rule alerts, with the same SNS shape
//! (`default` and `email` variants, subject, message attributes) and within the
//! same size limit; in Security Hub it is a finding whose resources are the digest
//! and the log files it names.

use std::fmt::Write as _;

use serde::Serialize;

use crate::alert::{alert_id, subject_line, AlertResource, Notification, SNS_PUBLISH_LIMIT};
use crate::rule::Severity;
use crate::time::format_ms;

/// The rule id integrity alerts carry (`rule_id` message attribute).
pub const RULE_ID: &str = "Trailwatch.CloudTrail.Integrity";
const DISPLAY_NAME: &str = "CloudTrail log integrity";
/// MITRE ATT&CK: Defense Evasion, Indicator Removal (deleted or altered logs).
const MITRE: &[&str] = &["TA0005:T1070"];
/// Objects named as finding resources (Security Hub takes 32 per finding, one
/// is the account).
const MAX_RESOURCES: usize = 20;
/// Findings listed in one alert; the rest are counted.
const MAX_FINDINGS: usize = 50;

/// What is wrong with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingKind {
    /// A listed log file is not in the bucket.
    Missing,
    /// A listed log file's content is not what CloudTrail hashed.
    Modified,
    /// The digest itself: unreadable, moved, unsigned or signed by an unknown key.
    InvalidDigest,
    /// The digest's link to the previous one does not hold.
    BrokenChain,
}

impl FindingKind {
    fn label(self) -> &'static str {
        match self {
            FindingKind::Missing => "Missing",
            FindingKind::Modified => "Modified",
            FindingKind::InvalidDigest => "Invalid digest",
            FindingKind::BrokenChain => "Broken chain",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    /// `s3://bucket/key`.
    pub object: String,
    pub detail: String,
}

/// What the alert is about: the digest and its hour.
#[derive(Debug, Clone, Default)]
pub struct DigestContext {
    /// `s3://bucket/key` of the digest.
    pub digest: String,
    pub account: String,
    pub region: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IntegrityDocument<'a> {
    kind: &'static str,
    alert_id: &'a str,
    rule_id: &'static str,
    title: &'a str,
    severity: Severity,
    description: &'static str,
    runbook: &'static str,
    mitre: &'static [&'static str],
    account: &'a str,
    region: &'a str,
    digest: &'a str,
    digest_start: Option<String>,
    digest_end: Option<String>,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "is_zero")]
    findings_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

const DESCRIPTION: &str = "CloudTrail's signed digest for this account, region and hour does not match the log files in the bucket, or the digest itself cannot be trusted. A log file that is missing, changed, or was never delivered to trailwatch is one whose events were never checked: an RDS snapshot export (rds:StartExportTask) recorded there would have raised no alert, and anyone reading the bucket now sees the altered history.";

const RUNBOOK: &str = "1. Look at the listed objects in S3 (versions, if versioning is on) and S3 server access logs or CloudTrail data events for who deleted or overwrote them\n2. Run `trailwatch verify s3://BUCKET --since HOUR --until HOUR` (or `aws cloudtrail validate-logs`) over the hour to see every file of it\n3. Search the same account and region in CloudTrail Lake or Event history (90 days, independent of the bucket) for StartExportTask in that hour\n4. Check who can write to the trail bucket and whether its bucket policy, Object Lock or notification configuration changed";

/// Builds the alert for one digest's findings (none: no alert).
pub fn build(context: &DigestContext, findings: &[Finding]) -> Option<Notification> {
    if findings.is_empty() {
        return None;
    }
    let mut ids = String::new();
    for f in findings {
        let _ = writeln!(ids, "{:?} {}", f.kind, f.object);
    }
    let id = alert_id(
        RULE_ID,
        &format!("{}\n{ids}", context.digest),
        context.end_ms.unwrap_or_default(),
        "integrity",
    );
    let hour = context
        .start_ms
        .map_or_else(|| "an unknown hour".to_owned(), format_ms);
    let headline = match findings {
        [one] => format!("{}: {}", one.kind.label(), one.object),
        many => format!("{} log integrity problems", many.len()),
    };
    let title = format!(
        "CloudTrail integrity: {headline} (account {}, region {}, hour from {hour})",
        context.account, context.region
    );
    let subject_text = match findings {
        [one] => format!(
            "CloudTrail log file {}: {}/{}",
            match one.kind {
                FindingKind::Missing => "missing",
                FindingKind::Modified => "modified",
                FindingKind::InvalidDigest => "digest invalid",
                FindingKind::BrokenChain => "digest chain broken",
            },
            context.account,
            context.region
        ),
        many => format!(
            "{} CloudTrail integrity problems: {}/{}",
            many.len(),
            context.account,
            context.region
        ),
    };
    let subject = subject_line(Severity::High, &subject_text);
    let mut shown = findings.len().min(MAX_FINDINGS);
    loop {
        let document = IntegrityDocument {
            kind: "integrity",
            alert_id: &id,
            rule_id: RULE_ID,
            title: &title,
            severity: Severity::High,
            description: DESCRIPTION,
            runbook: RUNBOOK,
            mitre: MITRE,
            account: &context.account,
            region: &context.region,
            digest: &context.digest,
            digest_start: context.start_ms.map(format_ms),
            digest_end: context.end_ms.map(format_ms),
            findings: &findings[..shown],
            findings_omitted: findings.len() - shown,
        };
        let notification = Notification {
            kind: "integrity",
            alert_id: id.clone(),
            subject: subject.clone(),
            document: serde_json::to_string(&document).expect("integrity documents serialize"),
            email: email(context, &title, &findings[..shown], findings.len() - shown),
            severity: Severity::High,
            rule_id: RULE_ID.to_owned(),
            account: context.account.clone(),
            region: context.region.clone(),
            resources: resources(context, findings),
            product_fields: product_fields(context, findings),
        };
        if notification.publish_bytes() <= SNS_PUBLISH_LIMIT || shown <= 1 {
            return Some(notification);
        }
        shown /= 2;
    }
}

/// The digest and the objects found wrong (each once), as ASFF resources.
fn resources(context: &DigestContext, findings: &[Finding]) -> Vec<AlertResource> {
    let mut objects: Vec<&str> = vec![&context.digest];
    for f in findings {
        if !objects.contains(&f.object.as_str()) {
            objects.push(&f.object);
        }
    }
    objects
        .into_iter()
        .take(MAX_RESOURCES)
        .map(|object| AlertResource {
            kind: "AwsS3Object".to_owned(),
            id: object.to_owned(),
        })
        .collect()
}

/// Security Hub `ProductFields` of an integrity finding (`trailwatch/integrity/...`).
fn product_fields(context: &DigestContext, findings: &[Finding]) -> Vec<(String, String)> {
    let count = |kind: FindingKind| findings.iter().filter(|f| f.kind == kind).count();
    let mut fields = vec![
        ("digest", context.digest.clone()),
        ("findings", findings.len().to_string()),
        ("missing", count(FindingKind::Missing).to_string()),
        ("modified", count(FindingKind::Modified).to_string()),
        (
            "invalidDigest",
            count(FindingKind::InvalidDigest).to_string(),
        ),
        ("brokenChain", count(FindingKind::BrokenChain).to_string()),
    ];
    if let Some(start) = context.start_ms {
        fields.push(("hourStart", format_ms(start)));
    }
    if let Some(end) = context.end_ms {
        fields.push(("hourEnd", format_ms(end)));
    }
    fields
        .into_iter()
        .map(|(name, value)| (format!("trailwatch/integrity/{name}"), value))
        .collect()
}

fn email(context: &DigestContext, title: &str, findings: &[Finding], omitted: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "HIGH alert: {DISPLAY_NAME}\n\n{title}\n");
    let _ = writeln!(
        out,
        "Where:    account {}, region {}",
        context.account, context.region
    );
    let _ = writeln!(
        out,
        "Hour:     log files CloudTrail delivered from {} to {}",
        context.start_ms.map_or_else(|| "?".into(), format_ms),
        context.end_ms.map_or_else(|| "?".into(), format_ms)
    );
    let _ = writeln!(out, "Digest:   {}\n", context.digest);
    for f in findings {
        let _ = writeln!(out, "{}: {}\n  {}", f.kind.label(), f.object, f.detail);
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "... and {omitted} more (see the JSON document or run trailwatch verify)"
        );
    }
    let _ = writeln!(out, "\nWhat it means\n  {DESCRIPTION}");
    let _ = write!(out, "\nRunbook\n");
    for line in RUNBOOK.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> DigestContext {
        DigestContext {
            digest:
                "s3://trail/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/15/d.json.gz"
                    .into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            start_ms: Some(1_710_496_891_000),
            end_ms: Some(1_710_500_491_000),
        }
    }

    #[test]
    fn one_missing_file_reads_as_such() {
        let findings = [Finding {
            kind: FindingKind::Missing,
            object: "s3://trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/15/f.json.gz"
                .into(),
            detail: "listed by the digest, not in the bucket".into(),
        }];
        let n = build(&context(), &findings).unwrap();
        assert_eq!(n.kind, "integrity");
        assert_eq!(n.rule_id, RULE_ID);
        assert_eq!(
            n.subject,
            "[HIGH] CloudTrail log file missing: 111122223333/us-east-1"
        );
        assert!(n.email.contains(
            "Missing: s3://trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/15/f.json.gz"
        ));
        assert!(n.email.contains("account 111122223333, region us-east-1"));
        assert!(n
            .email
            .contains("from 2024-03-15T10:01:31Z to 2024-03-15T11:01:31Z"));
        assert!(n.email.contains("rds:StartExportTask"));
        let doc: serde_json::Value = serde_json::from_str(&n.document).unwrap();
        assert_eq!(doc["findings"][0]["kind"], "missing");
        assert_eq!(doc["severity"], "High");
        assert_eq!(n.alert_id, build(&context(), &findings).unwrap().alert_id);
        assert!(build(&context(), &[]).is_none());
    }

    #[test]
    fn thousands_of_findings_still_fit_sns() {
        let findings: Vec<Finding> = (0..5000)
            .map(|i| Finding {
                kind: FindingKind::Modified,
                object: format!("s3://trail/{}/{i}", "k".repeat(900)),
                detail: "x".repeat(300),
            })
            .collect();
        let n = build(&context(), &findings).unwrap();
        assert!(n.publish_bytes() <= SNS_PUBLISH_LIMIT);
        let doc: serde_json::Value = serde_json::from_str(&n.document).unwrap();
        let shown = doc["findings"].as_array().unwrap().len();
        assert_eq!(
            shown + doc["findingsOmitted"].as_u64().unwrap() as usize,
            5000
        );
    }
}
