//! Notable events, each logged and counted in one place: the log lines, the
//! invocation's summary line and its CloudWatch metrics (Embedded Metric Format)
//! come from the same calls, so they always agree (SPEC §10).

use std::time::Instant;

use serde_json::json;

use crate::aws_error::Cause;
use crate::pipeline::{Counters, PublishFailure};
use crate::source::{ObjectRef, SourceError};
use crate::time::now_ms;
use crate::trigger::KeyKind;

/// A key that is not a CloudTrail log file (digest, insight, other): skipped.
pub fn key_skipped(counters: &mut Counters, object: &ObjectRef, kind: KeyKind) {
    counters.skipped_keys += 1;
    tracing::debug!(object = %object, ?kind, "not a CloudTrail log file, skipped");
}

/// An object deleted before it was read: counted, not retried.
pub fn object_missing(counters: &mut Counters, object: &ObjectRef) {
    counters.missing_objects += 1;
    tracing::warn!(object = %object, "object not found (deleted before it was read?), skipped");
}

/// An object that could not be fetched, counted by cause.
pub fn fetch_failed(counters: &mut Counters, error: &SourceError) {
    let cause = error.cause();
    counters.failed_objects += 1;
    *counters.errors_by_cause.entry(cause).or_default() += 1;
    tracing::error!(error = %error, cause = cause.label(), transient = cause.is_transient(), "object could not be fetched");
}

/// An alert or roll-up that was not published (its claim was released, so the retry
/// alerts), counted by cause.
pub fn publish_failed(counters: &mut Counters, failure: &PublishFailure) {
    counters.publish_failures += 1;
    *counters.errors_by_cause.entry(failure.cause).or_default() += 1;
    tracing::error!(
        source = %failure.source,
        cause = failure.cause.label(),
        transient = failure.cause.is_transient(),
        error = %failure.message,
        "alert not published"
    );
}

/// One line per invocation with every counter, plus CloudWatch Embedded Metric
/// Format metrics when running in Lambda.
pub fn invocation_summary(trigger: &str, c: &Counters, errors: usize, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        trigger,
        objects = c.objects,
        skipped_keys = c.skipped_keys,
        missing_objects = c.missing_objects,
        failed_objects = c.failed_objects,
        decoded_bytes = c.decoded_bytes,
        records = c.records,
        invalid_records = c.invalid_records,
        lenient_records = c.lenient_records,
        matches = c.matches,
        alerts = c.alerts,
        suppressed = c.suppressed,
        redeliveries = c.redeliveries,
        allowed = c.allowed,
        rollups = c.rollups,
        max_alert_latency_ms = c.max_alert_latency_ms,
        errors,
        publish_failures = c.publish_failures,
        errors_by_cause = ?c.errors_by_cause,
        elapsed_ms,
        "invocation summary"
    );
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{}", emf_metrics(c, errors as u64));
        for line in alert_latency_metrics(c) {
            println!("{line}");
        }
    }
}

// ---- alert latency by delivery path ------------------------------------------------

/// Values one EMF metric may carry in one document (CloudWatch's limit).
const EMF_MAX_VALUES: usize = 100;

/// `AlertLatencyMs` in Embedded Metric Format, with the delivery path (`s3`,
/// `eventbridge`) as the `Path` dimension: one document per path (a document has
/// one value per dimension) holding every published alert's latency, so a
/// dashboard shows percentiles of what the real-time path buys. None without alerts.
pub fn alert_latency_metrics(c: &Counters) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, latencies) in &c.alert_latency_ms {
        for chunk in latencies.chunks(EMF_MAX_VALUES) {
            let doc = json!({
                "_aws": {
                    "Timestamp": now_ms(),
                    "CloudWatchMetrics": [{
                        "Namespace": "trailwatch",
                        "Dimensions": [["Path"]],
                        "Metrics": [{"Name": "AlertLatencyMs", "Unit": "Milliseconds"}],
                    }],
                },
                "Path": path.label(),
                "AlertLatencyMs": chunk,
            });
            lines.push(doc.to_string());
        }
    }
    lines
}

/// CloudWatch Embedded Metric Format: one JSON line that CloudWatch Logs turns into
/// metrics in the `trailwatch` namespace. `AlertLatency` is the invocation's worst
/// publication delay after the event happened (CloudTrail delivery included).
pub fn emf_metrics(c: &Counters, errors: u64) -> String {
    let values = [
        ("Objects", c.objects),
        ("DecodedBytes", c.decoded_bytes),
        ("Records", c.records),
        ("LenientRecords", c.lenient_records),
        ("Matches", c.matches),
        ("Alerts", c.alerts),
        ("Suppressed", c.suppressed),
        ("Skipped", c.skipped_keys),
        ("Errors", errors),
        ("PublishFailures", c.publish_failures),
        ("ThrottledErrors", c.errors_of(Cause::Throttled)),
        ("AccessDeniedErrors", c.errors_of(Cause::AccessDenied)),
        ("AlertLatency", c.max_alert_latency_ms),
    ];
    let mut doc = json!({
        "_aws": {
            "Timestamp": now_ms(),
            "CloudWatchMetrics": [{
                "Namespace": "trailwatch",
                "Dimensions": [[]],
                "Metrics": values.iter().map(|(name, _)| json!({
                    "Name": name,
                    "Unit": match *name {
                        "DecodedBytes" => "Bytes",
                        "AlertLatency" => "Milliseconds",
                        _ => "Count",
                    },
                })).collect::<Vec<_>>(),
            }],
        },
    });
    for (name, value) in values {
        doc[name] = json!(value);
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn failures_are_counted_by_cause_and_reach_the_metrics() {
        let mut counters = Counters::default();
        let object = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
        };
        for cause in [Cause::Throttled, Cause::Throttled, Cause::AccessDenied] {
            fetch_failed(
                &mut counters,
                &SourceError::Failed {
                    object: object.clone(),
                    cause,
                    message: "x".into(),
                },
            );
        }
        publish_failed(
            &mut counters,
            &PublishFailure {
                source: "s".into(),
                cause: Cause::Throttled,
                message: "x".into(),
            },
        );
        object_missing(&mut counters, &object);
        assert_eq!(counters.failed_objects, 3);
        assert_eq!(counters.publish_failures, 1);
        assert_eq!(counters.missing_objects, 1);
        assert_eq!(counters.errors_of(Cause::Throttled), 3);
        assert_eq!(counters.errors_of(Cause::AccessDenied), 1);
        assert_eq!(counters.errors_of(Cause::NotFound), 0);
        let doc: Value = serde_json::from_str(&emf_metrics(&counters, 4)).unwrap();
        assert_eq!(doc["ThrottledErrors"], 3);
        assert_eq!(doc["AccessDeniedErrors"], 1);
        assert_eq!(doc["PublishFailures"], 1);
        let mut sum = Counters::default();
        sum.absorb(&counters);
        sum.absorb(&counters);
        assert_eq!(sum.errors_of(Cause::Throttled), 6);
    }

    #[test]
    fn alert_latency_is_a_metric_per_delivery_path() {
        use crate::detect::DeliveryPath;
        let mut counters = Counters::default();
        assert!(alert_latency_metrics(&counters).is_empty());
        counters
            .alert_latency_ms
            .insert(DeliveryPath::EventBridge, vec![1_200, 900]);
        counters
            .alert_latency_ms
            .insert(DeliveryPath::S3, (0..150).collect());
        let docs: Vec<Value> = alert_latency_metrics(&counters)
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(docs.len(), 3, "150 s3 values take two documents");
        for doc in &docs {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "trailwatch");
            assert_eq!(directive["Dimensions"], json!([["Path"]]));
            assert_eq!(directive["Metrics"][0]["Name"], "AlertLatencyMs");
            assert!(doc["AlertLatencyMs"].as_array().unwrap().len() <= EMF_MAX_VALUES);
        }
        assert_eq!(docs[0]["Path"], "s3");
        assert_eq!(docs[0]["AlertLatencyMs"].as_array().unwrap().len(), 100);
        assert_eq!(docs[1]["AlertLatencyMs"].as_array().unwrap().len(), 50);
        assert_eq!(docs[2]["Path"], "eventbridge");
        assert_eq!(docs[2]["AlertLatencyMs"], json!([1_200, 900]));
    }

    #[test]
    fn emf_line_declares_every_metric_it_carries() {
        let counters = Counters {
            objects: 2,
            alerts: 1,
            max_alert_latency_ms: 900_000,
            ..Counters::default()
        };
        let doc: Value = serde_json::from_str(&emf_metrics(&counters, 1)).unwrap();
        let declared = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        for metric in declared {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_u64(), "{name} has no value");
        }
        assert_eq!(doc["Objects"], 2);
        assert_eq!(doc["Errors"], 1);
        assert_eq!(doc["AlertLatency"], 900_000);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "trailwatch"
        );
    }
}
