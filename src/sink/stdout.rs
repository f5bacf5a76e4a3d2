//! Prints notifications: NDJSON documents, one-line text, or the SNS publish request.

use std::io::Write;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{AlertSink, SinkError};
use crate::alert::Notification;

/// How notifications are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One alert document per line (NDJSON), exactly what SNS subscribers get as `default`.
    Json,
    /// One readable line per alert.
    Text,
    /// The whole SNS publish request: subject, attributes, e-mail and JSON variants.
    Sns,
}

/// Renders one notification in a format (without trailing newline handling).
pub fn render(notification: &Notification, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => format!("{}\n", notification.document),
        OutputFormat::Text => format!("{}  {}\n", notification.subject, notification.alert_id),
        OutputFormat::Sns => {
            let attributes: serde_json::Map<String, serde_json::Value> = notification
                .attributes()
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        serde_json::json!({"DataType": "String", "StringValue": v}),
                    )
                })
                .collect();
            let document: serde_json::Value =
                serde_json::from_str(&notification.document).unwrap_or(serde_json::Value::Null);
            format!(
                "==== SNS Publish (MessageStructure=json) ====\nSubject: {}\nMessageAttributes: {}\n---- email ----\n{}---- default ----\n{}\n",
                notification.subject,
                serde_json::Value::Object(attributes),
                notification.email,
                serde_json::to_string_pretty(&document).unwrap_or_default(),
            )
        }
    }
}

/// Writes notifications to standard output (or any writer).
pub struct StdoutSink {
    format: OutputFormat,
    out: Mutex<Box<dyn Write + Send>>,
}

impl StdoutSink {
    pub fn new(format: OutputFormat) -> Self {
        Self::to_writer(format, Box::new(std::io::stdout()))
    }

    pub fn to_writer(format: OutputFormat, out: Box<dyn Write + Send>) -> Self {
        StdoutSink {
            format,
            out: Mutex::new(out),
        }
    }
}

#[async_trait]
impl AlertSink for StdoutSink {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError> {
        let text = render(notification, self.format);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| SinkError {
                alert_id: notification.alert_id.clone(),
                cause: crate::aws_error::Cause::Other,
                message: e.to_string(),
            })
    }
}
