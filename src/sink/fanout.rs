//! One alert, several sinks: SNS and, when enabled, Security Hub.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AlertSink, SinkError};
use crate::alert::Notification;
use crate::config::Config;

/// Publishes to every sink; fails when any failed, after trying them all, so that
/// the dedup claim is released and the retry reaches the sink that failed (the
/// others receive the same `alertId` again: SNS subscribers see a repeat, Security
/// Hub updates the same finding).
pub struct FanOut {
    sinks: Vec<Arc<dyn AlertSink>>,
}

impl FanOut {
    pub fn new(sinks: Vec<Arc<dyn AlertSink>>) -> Self {
        FanOut { sinks }
    }
}

#[async_trait]
impl AlertSink for FanOut {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError> {
        let mut errors = Vec::new();
        let mut cause = None;
        for sink in &self.sinks {
            if let Err(e) = sink.publish(notification).await {
                // The first failure's cause stands for the whole (SNS comes first).
                cause.get_or_insert(e.cause);
                errors.push(e.message);
            }
        }
        match cause {
            None => Ok(()),
            Some(cause) => Err(SinkError {
                alert_id: notification.alert_id.clone(),
                cause,
                message: errors.join("; "),
            }),
        }
    }
}

/// The sinks of Lambda mode: the SNS topic, plus Security Hub when
/// `TRAILWATCH_SECURITYHUB=true` (the topic's account and region import the
/// findings, through their default product ARN).
pub fn lambda_sink(
    config: &Config,
    aws: &aws_config::SdkConfig,
    topic_arn: &str,
) -> Arc<dyn AlertSink> {
    let sns: Arc<dyn AlertSink> = Arc::new(super::SnsSink::new(
        aws_sdk_sns::Client::new(aws),
        topic_arn,
    ));
    #[cfg(feature = "securityhub")]
    if let Some(product_arn) = config.securityhub_product_arn() {
        let hub = super::securityhub::SecurityHubSink::new(
            aws_sdk_securityhub::Client::new(aws),
            product_arn,
        );
        return Arc::new(FanOut::new(vec![sns, Arc::new(hub)]));
    }
    #[cfg(not(feature = "securityhub"))]
    let _ = config;
    sns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;

    struct Failing;

    #[async_trait]
    impl AlertSink for Failing {
        async fn publish(&self, n: &Notification) -> Result<(), SinkError> {
            Err(SinkError {
                alert_id: n.alert_id.clone(),
                cause: crate::aws_error::Cause::Throttled,
                message: "down".into(),
            })
        }
    }

    #[tokio::test]
    async fn every_sink_is_tried_and_a_failure_fails_the_whole() {
        let rule = crate::rule::RuleSet::embedded().rules[0].clone();
        let record = rule.tests[0].log.clone();
        let m = crate::detect::Match {
            rule: 0,
            raw: Some(serde_json::value::RawValue::from_string(record.to_string()).unwrap()),
            record,
            parse_warnings: Vec::new(),
            source: "s3://b/k".into(),
            offset: 0,
            event_time_ms: Some(0),
            event_id: "e".into(),
            path: crate::detect::DeliveryPath::S3,
            fingerprint: None,
        };
        let n = crate::alert::build_alert(&rule, &m, "k", 0, 60_000);
        let (a, b) = (Arc::new(MemorySink::new()), Arc::new(MemorySink::new()));
        let fan = FanOut::new(vec![a.clone(), Arc::new(Failing), b.clone()]);
        let err = fan.publish(&n).await.unwrap_err();
        assert!(err.message.contains("down"));
        assert_eq!((a.notifications().len(), b.notifications().len()), (1, 1));
        let fine = FanOut::new(vec![a.clone(), b.clone()]);
        assert!(fine.publish(&n).await.is_ok());
    }
}
