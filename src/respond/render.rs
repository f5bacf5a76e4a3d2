//! A response in words: the e-mail's first lines, Security Hub's `ProductFields`,
//! and the follow-up document for a cancel that completed after its alert (its
//! notification is rendered by `alert`, as every other notification is).

use serde::Serialize;

use super::{Outcome, Response};
use crate::rule::Severity;

impl Response {
    /// The e-mail's first lines, right under its heading: what was done, in words.
    pub fn email_lines(&self) -> Vec<String> {
        let task = &self.target;
        let mut lines = match self.outcome {
            Outcome::Canceled => vec![format!(
                "RESPONSE: export task {task} in account {} CANCELED at {} ({}). Data already \
                 written to the bucket is not removed.",
                self.account,
                self.at,
                self.reason.as_deref().unwrap_or("cancel requested")
            )],
            Outcome::WouldCancel if self.breaker_open => vec![format!(
                "RESPONSE: export task {task} would be cancelled, but was NOT: {}.",
                self.reason.as_deref().unwrap_or("circuit breaker open")
            )],
            Outcome::WouldCancel => vec![format!(
                "RESPONSE (report mode): would cancel export task {task} in account {}; \
                 TRAILWATCH_RESPONSE=cancel acts on it.",
                self.account
            )],
            Outcome::NotApplicable => vec![format!(
                "Response: not applicable, {}.",
                self.reason
                    .as_deref()
                    .unwrap_or("a condition does not hold")
            )],
            Outcome::Failed => vec![format!(
                "RESPONSE FAILED: export task {task} was NOT cancelled: {}.",
                self.cause.as_deref().unwrap_or("unknown cause")
            )],
            Outcome::Pending => vec![format!(
                "RESPONSE: cancel of export task {task} requested; its outcome follows in a \
                 separate message with this alert's ID."
            )],
        };
        if matches!(self.outcome, Outcome::Failed | Outcome::WouldCancel) {
            lines.push(format!(
                "          To cancel it by hand: aws rds cancel-export-task \
                 --export-task-identifier {task} --region {}",
                self.region
            ));
        }
        lines
    }

    /// Security Hub `ProductFields` (`trailwatch/response/...`).
    pub fn product_fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![
            ("mode", self.mode.label().to_owned()),
            ("action", self.action.name().to_owned()),
            ("target", self.target.clone()),
            ("outcome", self.outcome.label().to_owned()),
            ("at", self.at.clone()),
        ];
        if let Some(reason) = &self.reason {
            fields.push(("reason", reason.clone()));
        }
        if let Some(cause) = &self.cause {
            fields.push(("cause", cause.clone()));
        }
        fields
            .into_iter()
            .map(|(name, value)| (format!("trailwatch/response/{name}"), value))
            .collect()
    }
}

/// The message for a response that completed after its alert was published: the
/// same `alertId`, `kind` `response`, so subscribers join it to the alert.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    pub kind: &'static str,
    pub alert_id: String,
    pub rule_id: String,
    pub account: String,
    pub region: String,
    pub response: Response,
    #[serde(skip)]
    pub severity: Severity,
}

impl FollowUp {
    pub fn new(alert_id: &str, rule_id: &str, severity: Severity, response: Response) -> FollowUp {
        FollowUp {
            kind: "response",
            alert_id: alert_id.to_owned(),
            rule_id: rule_id.to_owned(),
            account: response.account.clone(),
            region: response.region.clone(),
            response,
            severity,
        }
    }
}
