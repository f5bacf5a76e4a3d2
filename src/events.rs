//! Notable events, each logged and counted in one place: the log lines, the
//! invocation's summary and its CloudWatch metrics (Embedded Metric Format) come
//! from the same calls, so they always agree (SPEC §10).
//!
//! In Lambda a steady-state invocation writes one line: its summary, which is
//! also its EMF document (a counter is both a field of the summary and the value
//! of a metric), so the log bill is one short line per invocation and the metrics
//! cannot disagree with the summary. Counters that are zero are left out (a sum
//! over missing data is the same), except `Objects`, so every invocation leaves a
//! data point. Warnings and errors are logged as they happen, as separate lines.
//! Outside Lambda the summary is a `tracing` line.
//!
//! [`METRICS`] lists every metric the code emits: the template's dashboard and
//! alarms may name only these (checked by a test against `template.yaml`).

use std::io::Write;
use std::time::Instant;

use serde_json::json;

use crate::aws_error::Cause;
use crate::counters::{Counters, PublishFailure};
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

/// The namespace of every trailwatch metric.
pub const NAMESPACE: &str = "trailwatch";

/// A CloudWatch unit, as EMF spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// A metric the function emits in the [`NAMESPACE`], with the names of its
/// dimensions (none: the function-wide series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub dimensions: &'static [&'static str],
}

const fn count(name: &'static str) -> Metric {
    Metric {
        name,
        unit: Unit::Count,
        dimensions: &[],
    }
}

/// Every metric the code emits. A dashboard widget or an alarm on any other
/// metric of the namespace would show nothing; one emitted here and shown nowhere
/// would go unseen (`tests/it/template.rs` checks both against `template.yaml`).
pub const METRICS: &[Metric] = &[
    count("Objects"),
    Metric {
        name: "DecodedBytes",
        unit: Unit::Bytes,
        dimensions: &[],
    },
    count("Records"),
    count("Skipped"),
    count("MissingObjects"),
    count("FailedObjects"),
    count("LenientRecords"),
    count("Matches"),
    count("Alerts"),
    count("Suppressed"),
    count("Allowed"),
    count("Rollups"),
    count("Errors"),
    count("PublishFailures"),
    count("ThrottledErrors"),
    count("AccessDeniedErrors"),
    count("NotFoundErrors"),
    count("TimeoutErrors"),
    count("NetworkErrors"),
    count("ServerErrors"),
    count("RejectedErrors"),
    count("OtherErrors"),
    // Lookups at alert time (src/enrich): matches enriched, calls that failed
    // (also counted by cause above), severities an enrichment escalation raised.
    count("Enriched"),
    count("EnrichmentErrors"),
    count("EnrichmentEscalations"),
    // Containment (src/respond): cancels that took effect, responses decided
    // without a cancel (not applicable, would cancel), cancels that failed.
    count("ResponsesTaken"),
    count("ResponsesSkipped"),
    count("ResponseFailures"),
    // The invocation's worst publication delay after the event happened
    // (CloudTrail delivery included).
    Metric {
        name: "AlertLatency",
        unit: Unit::Milliseconds,
        dimensions: &[],
    },
    // Every published alert's latency, by delivery path (`s3`, `eventbridge`): what
    // the real-time path buys. Emitted in documents of its own
    // ([`alert_latency_metrics`]), only by invocations that alerted.
    Metric {
        name: "AlertLatencyMs",
        unit: Unit::Milliseconds,
        dimensions: &["Path"],
    },
];

/// The metric counting failed calls to AWS of one cause.
pub fn cause_metric(cause: Cause) -> &'static str {
    match cause {
        Cause::Throttled => "ThrottledErrors",
        Cause::AccessDenied => "AccessDeniedErrors",
        Cause::NotFound => "NotFoundErrors",
        Cause::Timeout => "TimeoutErrors",
        Cause::Network => "NetworkErrors",
        Cause::ServerError => "ServerErrors",
        Cause::Rejected => "RejectedErrors",
        Cause::Other => "OtherErrors",
    }
}

tokio::task_local! {
    /// The Lambda request id of the invocation being handled, for its summary.
    static REQUEST_ID: String;
}

/// Runs `handling` with `request_id` as the id its summary carries (Lambda mode:
/// the summary is then the invocation's only line, so it must name the request).
pub async fn with_request_id<F: std::future::Future>(request_id: String, handling: F) -> F::Output {
    REQUEST_ID.scope(request_id, handling).await
}

/// One Embedded Metric Format document: members that are not metrics (searchable
/// in Logs Insights), and metrics grouped in sets by their dimensions. A document
/// holds one value per member, so one value per dimension name.
#[derive(Debug, Default, Clone)]
pub struct EmfDocument {
    members: serde_json::Map<String, serde_json::Value>,
    /// Each set: its dimension names and its metric names.
    sets: Vec<(Vec<&'static str>, Vec<&'static str>)>,
}

impl EmfDocument {
    /// A member that is not a metric.
    pub fn property(&mut self, name: &str, value: impl Into<serde_json::Value>) -> &mut Self {
        self.members.insert(name.to_owned(), value.into());
        self
    }

    /// Metric `name` (one of [`METRICS`]) with `value`, in the set of `dimensions`
    /// (names and values).
    pub fn metric(
        &mut self,
        name: &'static str,
        value: u64,
        dimensions: &[(&'static str, &str)],
    ) -> &mut Self {
        for (dimension, dimension_value) in dimensions {
            self.property(dimension, *dimension_value);
        }
        let names: Vec<&'static str> = dimensions.iter().map(|(name, _)| *name).collect();
        match self.sets.iter_mut().find(|(set, _)| *set == names) {
            Some((_, metrics)) => metrics.push(name),
            None => self.sets.push((names, vec![name])),
        }
        self.property(name, value)
    }

    /// The members only, without the metric declarations (the summary outside Lambda).
    pub fn members(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.members
    }

    /// The document as one JSON line, stamped `timestamp_ms`.
    pub fn render(&self, timestamp_ms: i64) -> String {
        let sets: Vec<serde_json::Value> = self
            .sets
            .iter()
            .map(|(dimensions, metrics)| {
                let metrics: Vec<serde_json::Value> = metrics
                    .iter()
                    .map(|name| match unit_of(name) {
                        // Count is what a metric without a unit is read as: left out.
                        Unit::Count => json!({ "Name": name }),
                        unit => json!({ "Name": name, "Unit": unit.label() }),
                    })
                    .collect();
                json!({ "Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": metrics })
            })
            .collect();
        let mut doc = serde_json::Map::new();
        doc.insert(
            "_aws".into(),
            json!({ "Timestamp": timestamp_ms, "CloudWatchMetrics": sets }),
        );
        doc.extend(self.members.clone());
        serde_json::Value::Object(doc).to_string()
    }
}

fn unit_of(name: &str) -> Unit {
    METRICS
        .iter()
        .find(|m| m.name == name)
        .map_or(Unit::Count, |m| m.unit)
}

/// The invocation's summary as an EMF document: every counter that is not zero,
/// as a metric when it is one, as a plain member otherwise.
pub fn summary_document(trigger: &str, c: &Counters, errors: u64, elapsed_ms: u64) -> EmfDocument {
    let mut doc = EmfDocument::default();
    doc.property("trigger", trigger);
    if let Ok(id) = REQUEST_ID.try_with(Clone::clone) {
        doc.property("requestId", id);
    }
    doc.metric("Objects", c.objects, &[]);
    let metrics = [
        ("DecodedBytes", c.decoded_bytes),
        ("Records", c.records),
        ("Skipped", c.skipped_keys),
        ("MissingObjects", c.missing_objects),
        ("FailedObjects", c.failed_objects),
        ("LenientRecords", c.lenient_records),
        ("Matches", c.matches),
        ("Alerts", c.alerts),
        ("Suppressed", c.suppressed),
        ("Allowed", c.allowed),
        ("Rollups", c.rollups),
        ("Errors", errors),
        ("PublishFailures", c.publish_failures),
        ("AlertLatency", c.max_alert_latency_ms),
    ];
    let actions = c
        .enrichment
        .metrics()
        .into_iter()
        .chain(c.responses.metrics());
    for (name, value) in metrics.into_iter().chain(actions) {
        if value > 0 {
            doc.metric(name, value, &[]);
        }
    }
    for (cause, n) in &c.errors_by_cause {
        if *n > 0 {
            doc.metric(cause_metric(*cause), *n, &[]);
        }
    }
    for (name, value) in [
        ("invalidRecords", c.invalid_records),
        ("redeliveries", c.redeliveries),
        ("followUps", c.follow_ups),
        ("followUpFailures", c.follow_up_failures),
    ] {
        if value > 0 {
            doc.property(name, value);
        }
    }
    doc.property("elapsedMs", elapsed_ms);
    doc
}

/// The invocation's summary: in Lambda, its one EMF line on stdout; elsewhere a
/// `tracing` line with the same members.
pub fn invocation_summary(trigger: &str, c: &Counters, errors: usize, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let doc = summary_document(trigger, c, errors as u64, elapsed_ms);
    emit(&doc);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        let mut stdout = std::io::stdout().lock();
        for line in alert_latency_metrics(c) {
            let _ = writeln!(stdout, "{line}");
        }
    }
}

/// Values one EMF metric may carry in one document (CloudWatch's limit).
const EMF_MAX_VALUES: usize = 100;

/// `AlertLatencyMs` in Embedded Metric Format, with the delivery path (`s3`,
/// `eventbridge`) as the `Path` dimension: one document per path (a document has
/// one value per dimension) holding every published alert's latency, so a
/// dashboard shows percentiles of what the real-time path buys. None without
/// alerts, so a steady-state invocation still writes its summary line only.
pub fn alert_latency_metrics(c: &Counters) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, latencies) in &c.alert_latency_ms {
        for chunk in latencies.chunks(EMF_MAX_VALUES) {
            let doc = json!({
                "_aws": {
                    "Timestamp": now_ms(),
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
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

/// Writes a summary document where it belongs (see [`invocation_summary`]).
pub fn emit(doc: &EmfDocument) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        let line = doc.render(now_ms());
        // A closed stdout loses the line, never the invocation.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    } else {
        let members = serde_json::Value::Object(doc.members().clone());
        tracing::info!(summary = %members, "invocation summary");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn rendered(doc: &EmfDocument) -> Value {
        serde_json::from_str(&doc.render(1_714_557_600_000)).unwrap()
    }

    /// The declared metric sets of a rendered document: (dimensions, metric names).
    fn declared(doc: &Value) -> Vec<(Vec<String>, Vec<String>)> {
        let names = |v: &Value, key: &str| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    m[key]
                        .as_str()
                        .unwrap_or_else(|| m.as_str().unwrap())
                        .to_owned()
                })
                .collect()
        };
        doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|set| {
                assert_eq!(set["Namespace"], NAMESPACE);
                let dimensions = set["Dimensions"].as_array().unwrap();
                assert_eq!(dimensions.len(), 1, "one dimension set per directive");
                (names(&dimensions[0], ""), names(&set["Metrics"], "Name"))
            })
            .collect()
    }

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
        let doc = rendered(&summary_document("objects", &counters, 4, 12));
        assert_eq!(doc["ThrottledErrors"], 3);
        assert_eq!(doc["AccessDeniedErrors"], 1);
        assert_eq!(doc["PublishFailures"], 1);
        assert_eq!(doc["MissingObjects"], 1);
        assert_eq!(doc["Errors"], 4);
        assert!(doc.get("NotFoundErrors").is_none(), "{doc}");
        let mut sum = Counters::default();
        sum.absorb(&counters);
        sum.absorb(&counters);
        assert_eq!(sum.errors_of(Cause::Throttled), 6);
    }

    /// Every counter set, every cause failed once: the summary then declares
    /// exactly the metrics of [`METRICS`], each with its unit and a value.
    #[test]
    fn the_metric_list_is_what_the_summary_emits() {
        let causes = [
            Cause::Throttled,
            Cause::AccessDenied,
            Cause::NotFound,
            Cause::Timeout,
            Cause::Network,
            Cause::ServerError,
            Cause::Rejected,
            Cause::Other,
        ];
        let counters = Counters {
            objects: 2,
            skipped_keys: 1,
            missing_objects: 1,
            failed_objects: 1,
            decoded_bytes: 9_000,
            records: 30,
            lenient_records: 1,
            matches: 5,
            alerts: 1,
            suppressed: 1,
            allowed: 1,
            rollups: 1,
            publish_failures: 1,
            max_alert_latency_ms: 900_000,
            errors_by_cause: causes.iter().map(|c| (*c, 1)).collect(),
            enrichment: crate::enrich::EnrichCounters {
                enriched: 2,
                errors: 1,
                escalations: 1,
                ..Default::default()
            },
            responses: crate::respond::ResponseCounters {
                taken: 1,
                skipped: 1,
                failures: 1,
            },
            ..Counters::default()
        };
        let doc = rendered(&summary_document("sqs", &counters, 3, 40));
        let sets = declared(&doc);
        assert_eq!(sets.len(), 1, "{doc}");
        let (dimensions, names) = &sets[0];
        assert!(dimensions.is_empty());
        let listed: BTreeSet<&str> = METRICS
            .iter()
            .filter(|m| m.dimensions.is_empty())
            .map(|m| m.name)
            .collect();
        let emitted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(emitted, listed);
        assert_eq!(
            names.len(),
            listed.len(),
            "each metric declared once: {names:?}"
        );
        for metric in METRICS.iter().filter(|m| m.dimensions.is_empty()) {
            assert!(
                doc[metric.name].as_u64().unwrap() > 0,
                "{} has no value",
                metric.name
            );
        }
        let units: BTreeSet<(&str, &str)> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| Some((m["Name"].as_str()?, m["Unit"].as_str()?)))
            .collect();
        let expected = [("AlertLatency", "Milliseconds"), ("DecodedBytes", "Bytes")];
        assert_eq!(units, BTreeSet::from(expected));
        assert_eq!(doc["AlertLatency"], 900_000);
        assert_eq!(doc["trigger"], "sqs");
        assert_eq!(doc["elapsedMs"], 40);
    }

    #[test]
    fn a_quiet_invocation_declares_objects_only() {
        let counters = Counters {
            objects: 1,
            decoded_bytes: 0,
            ..Counters::default()
        };
        let doc = rendered(&summary_document("objects", &counters, 0, 3));
        assert_eq!(declared(&doc), [(vec![], vec!["Objects".to_owned()])]);
        assert_eq!(doc["Objects"], 1);
        assert!(
            doc.get("Alerts").is_none() && doc.get("Errors").is_none(),
            "{doc}"
        );
        assert!(
            doc.get("requestId").is_none(),
            "no request outside a scope: {doc}"
        );
        let idle = rendered(&summary_document("schedule", &Counters::default(), 0, 1));
        assert_eq!(idle["Objects"], 0, "every invocation leaves a data point");
    }

    #[test]
    fn metrics_with_dimensions_get_their_own_set() {
        let mut doc = EmfDocument::default();
        doc.metric("Alerts", 2, &[])
            .metric("AlertLatency", 700, &[("Path", "api-call")])
            .metric("Matches", 3, &[]);
        let doc = rendered(&doc);
        assert_eq!(
            declared(&doc),
            [
                (vec![], vec!["Alerts".to_owned(), "Matches".to_owned()]),
                (vec!["Path".to_owned()], vec!["AlertLatency".to_owned()]),
            ]
        );
        assert_eq!(doc["Path"], "api-call");
        assert_eq!(doc["AlertLatency"], 700);
    }

    #[tokio::test]
    async fn the_summary_names_its_request() {
        let doc = with_request_id("req-1".into(), async {
            summary_document("objects", &Counters::default(), 0, 1)
        })
        .await;
        assert_eq!(doc.members()["requestId"], "req-1");
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
            assert_eq!(directive["Namespace"], NAMESPACE);
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
}
