//! Publishes to an SNS topic: `MessageStructure=json` with `default` (the JSON
//! document) and `email` (plain text) variants, an ASCII subject, and the message
//! attributes `severity`, `rule_id`, `account`, `region` for subscription filters.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use super::{AlertSink, SinkError};
use crate::alert::Notification;
use crate::aws_error::{classify, Cause};

pub struct SnsSink {
    client: Client,
    topic_arn: String,
}

impl SnsSink {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsSink {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl AlertSink for SnsSink {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError> {
        let fail = |cause: Cause, message: String| SinkError {
            alert_id: notification.alert_id.clone(),
            cause,
            message,
        };
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notification.subject)
            .message_structure("json")
            .message(notification.sns_message());
        for (name, value) in notification.attributes() {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| fail(Cause::Rejected, e.to_string()))?;
            request = request.message_attributes(name, attribute);
        }
        request.send().await.map(|_| ()).map_err(|e| {
            fail(
                classify(&e),
                aws_sdk_sns::error::DisplayErrorContext(e).to_string(),
            )
        })
    }
}
