//! What an invocation or a scan counted: objects, records, matches and what
//! became of them, failed calls by cause, enrichment and response outcomes.
//!
//! Below both `pipeline` (which counts) and `events` (which reports the counts
//! as log lines and EMF metrics), so neither imports the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aws_error::Cause;
use crate::detect::{DeliveryPath, ObjectReport};
use crate::enrich::{EnrichCounters, Enrichment};
use crate::respond::ResponseCounters;

/// Counts for one invocation or scan (SPEC §10).
/// Deserialize: a resumable history scan keeps the counts of finished prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub objects: u64,
    pub skipped_keys: u64,
    pub missing_objects: u64,
    pub failed_objects: u64,
    pub decoded_bytes: u64,
    pub records: u64,
    pub candidates: u64,
    pub non_object_records: u64,
    pub objects_without_records: u64,
    pub invalid_records: u64,
    /// Candidate records evaluated after a lenient parse (input AWS should never
    /// write; see `decode::repair`).
    pub lenient_records: u64,
    /// Records over the size limit (skipped, or evaluated on their first bytes).
    #[serde(default)]
    pub oversized_records: u64,
    /// Elements of `Records` and root-level members that are not valid JSON (skipped).
    #[serde(default)]
    pub invalid_elements: u64,
    /// gzip objects with data after their last member (ignored).
    #[serde(default)]
    pub trailing_data_objects: u64,
    pub matches: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub redeliveries: u64,
    pub allowed: u64,
    pub publish_failures: u64,
    pub rollups: u64,
    /// Worst alert latency: publication time minus the record's `eventTime`.
    pub max_alert_latency_ms: u64,
    /// Failed calls to AWS (fetches, publications, dedup writes) by cause.
    pub errors_by_cause: BTreeMap<Cause, u64>,
    /// EventBridge "AWS API Call via CloudTrail" events read (one record each).
    #[serde(default)]
    pub api_calls: u64,
    /// Each published alert's `alertLatencyMs`, by the path its record came on.
    #[serde(default)]
    pub alert_latency_ms: BTreeMap<DeliveryPath, Vec<u64>>,
    /// Lookups at alert time: matches enriched, failed calls, escalations.
    #[serde(default)]
    pub enrichment: EnrichCounters,
    /// Responses by outcome (a `pending` one counts when its follow-up is known).
    #[serde(default)]
    pub responses: ResponseCounters,
    /// Follow-up messages published (the outcome of a cancel still running at
    /// publication, or of a suppressed export's response).
    #[serde(default)]
    pub follow_ups: u64,
    /// Follow-up messages that could not be published (logged, and counted by
    /// cause; the alert they follow was published).
    #[serde(default)]
    pub follow_up_failures: u64,
}

impl Counters {
    /// Adds another set of counts (an SQS batch sums its messages).
    pub fn absorb(&mut self, other: &Counters) {
        let Counters {
            objects,
            skipped_keys,
            missing_objects,
            failed_objects,
            decoded_bytes,
            records,
            candidates,
            non_object_records,
            objects_without_records,
            invalid_records,
            lenient_records,
            oversized_records,
            invalid_elements,
            trailing_data_objects,
            matches,
            alerts,
            suppressed,
            redeliveries,
            allowed,
            publish_failures,
            rollups,
            max_alert_latency_ms,
            errors_by_cause,
            api_calls,
            alert_latency_ms,
            enrichment,
            responses,
            follow_ups,
            follow_up_failures,
        } = other;
        self.objects += objects;
        self.skipped_keys += skipped_keys;
        self.missing_objects += missing_objects;
        self.failed_objects += failed_objects;
        self.decoded_bytes += decoded_bytes;
        self.records += records;
        self.candidates += candidates;
        self.non_object_records += non_object_records;
        self.objects_without_records += objects_without_records;
        self.invalid_records += invalid_records;
        self.lenient_records += lenient_records;
        self.oversized_records += oversized_records;
        self.invalid_elements += invalid_elements;
        self.trailing_data_objects += trailing_data_objects;
        self.matches += matches;
        self.alerts += alerts;
        self.suppressed += suppressed;
        self.redeliveries += redeliveries;
        self.allowed += allowed;
        self.publish_failures += publish_failures;
        self.rollups += rollups;
        self.max_alert_latency_ms = self.max_alert_latency_ms.max(*max_alert_latency_ms);
        for (cause, n) in errors_by_cause {
            *self.errors_by_cause.entry(*cause).or_default() += n;
        }
        self.api_calls += api_calls;
        for (path, latencies) in alert_latency_ms {
            self.alert_latency_ms
                .entry(*path)
                .or_default()
                .extend(latencies);
        }
        self.enrichment.absorb(enrichment);
        self.responses.absorb(responses);
        self.follow_ups += follow_ups;
        self.follow_up_failures += follow_up_failures;
    }

    /// Counts a match's enrichment; its failed calls are failed calls to AWS too.
    pub fn add_enrichment(&mut self, enrichment: &Enrichment) {
        self.enrichment.add(enrichment);
        for error in &enrichment.errors {
            *self.errors_by_cause.entry(error.cause).or_default() += 1;
        }
    }

    /// Failed calls to AWS of one cause.
    pub fn errors_of(&self, cause: Cause) -> u64 {
        self.errors_by_cause.get(&cause).copied().unwrap_or(0)
    }

    /// Adds the counts of one record EventBridge delivered (not an object).
    pub fn add_api_call(&mut self, report: &ObjectReport) {
        self.api_calls += 1;
        self.records += report.stats.records;
        self.candidates += report.stats.candidates;
        self.non_object_records += report.stats.non_object_records;
        self.invalid_records += report.invalid_records;
        self.lenient_records += report.lenient_records;
    }

    /// Adds the counts of one object read.
    pub fn add_object(&mut self, report: &ObjectReport) {
        self.objects += 1;
        self.decoded_bytes += report.stats.decoded_bytes;
        self.records += report.stats.records;
        self.candidates += report.stats.candidates;
        self.non_object_records += report.stats.non_object_records;
        self.invalid_records += report.invalid_records;
        self.lenient_records += report.lenient_records;
        self.oversized_records += report.stats.oversized_records;
        self.invalid_elements += report.stats.invalid_elements;
        self.trailing_data_objects += u64::from(report.stats.trailing_data);
        if report.stats.records_arrays == 0 && report.error.is_none() {
            self.objects_without_records += 1;
        }
        if report.error.is_some() {
            self.failed_objects += 1;
        }
    }
}

/// A publication that failed (its claim was released so a retry alerts).
#[derive(Debug, Clone)]
pub struct PublishFailure {
    /// The log file of the match, or the roll-up's dedup key.
    pub source: String,
    pub cause: Cause,
    pub message: String,
}

impl std::fmt::Display for PublishFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

impl std::error::Error for PublishFailure {}
