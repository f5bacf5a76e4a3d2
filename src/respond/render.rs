//! A response in words: the e-mail's first lines, Security Hub's `ProductFields`,
//! and the follow-up message for a cancel that completed after its alert.

use serde::Serialize;

use super::{Outcome, Response, ResponseMode};
use crate::alert::{subject_line, Notification};
use crate::rule::Severity;
use crate::text::one_line;

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
