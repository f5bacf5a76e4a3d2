//! Rule matches -> dedup decision -> alert -> sink.
//!
//! Shared by the Lambda handler, `trailwatch invoke` and `trailwatch scan`: given
//! matches in (eventTime, eventID) order, decide each against the dedup store,
//! build and publish the alerts, and keep the counts that reconcile
//! (matches = alerts + suppressed + redeliveries + allowed + failed publications).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alert::{alert_latency_ms, build_alert_as, build_rollup, Notification};
use crate::aws_error::Cause;
use crate::config::AllowList;
use crate::dedup::{Claim, Decision, DedupKey, DedupStore};
use crate::detect::{DeliveryPath, Match, ObjectReport};
use crate::rule::{RollupSpec, Rule, RuleSet};
use crate::sink::AlertSink;

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

/// The dedup and alerting half of the pipeline.
pub struct Alerter {
    pub rules: Arc<RuleSet>,
    pub dedup: Arc<dyn DedupStore>,
    pub sink: Arc<dyn AlertSink>,
    pub allow: AllowList,
    /// Overrides every rule's `DedupPeriodMinutes`.
    pub window_minutes: Option<u32>,
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

impl Alerter {
    fn window_ms(&self, rule: &Rule) -> i64 {
        i64::from(self.window_minutes.unwrap_or(rule.dedup_minutes)) * 60_000
    }

    /// The dedup key: the rule and its `GroupBy` values (`unknown` for a missing field).
    pub fn dedup_key(rule: &Rule, record: &Value) -> DedupKey {
        DedupKey::new(rule.id.clone(), rule.group_values(record))
    }

    /// Decides and publishes, in (eventTime, eventID) order. `now_ms` stands in for a
    /// missing `eventTime`. Returns the failed publications; the counters say the rest.
    pub async fn process(
        &self,
        mut matches: Vec<Match>,
        now_ms: i64,
        counters: &mut Counters,
    ) -> Vec<PublishFailure> {
        for m in &mut matches {
            m.event_time_ms.get_or_insert(now_ms);
        }
        matches.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let mut failures = Vec::new();
        for m in matches {
            counters.matches += 1;
            if let Err(failure) = self.process_one(&m, counters).await {
                crate::events::publish_failed(counters, &failure);
                failures.push(failure);
            }
        }
        failures
    }

    async fn process_one(&self, m: &Match, counters: &mut Counters) -> Result<(), PublishFailure> {
        let rule = &self.rules.rules[m.rule];
        let failure = |cause: Cause, message: String| PublishFailure {
            source: m.source.clone(),
            cause,
            message,
        };
        if let Some(entry) = self.allow.allows(&m.record) {
            counters.allowed += 1;
            tracing::info!(rule = %rule.id, event_id = %m.event_id, allowed_by = %entry, "match allowed, not alerted");
            return Ok(());
        }
        let key = Self::dedup_key(rule, &m.record);
        let (severity, _) = rule.severity_for(&m.record);
        let claim = Claim {
            key: key.clone(),
            event_time_ms: m.event_time_ms.unwrap_or_default(),
            event_id: m.event_id.clone(),
            fingerprint: m.fingerprint.clone(),
            severity,
            window_ms: self.window_ms(rule),
            distinct: rule.output.distinct_values(&m.record),
            spec: rule.rollup_spec(),
        };
        let decision = self
            .dedup
            .decide(&claim)
            .await
            .map_err(|e| failure(e.cause, e.to_string()))?;
        match decision {
            Decision::Alert { window_start_ms }
            | Decision::Escalated {
                window_start_ms, ..
            } => {
                let published_ms = crate::time::now_ms();
                // A worse match than the window's alerts has an alert of its own.
                let id_kind = match decision {
                    Decision::Escalated { severity, .. } => format!("alert:{}", severity.label()),
                    _ => "alert".to_owned(),
                };
                let notification = build_alert_as(
                    rule,
                    m,
                    &key.to_string(),
                    window_start_ms,
                    claim.window_ms,
                    &id_kind,
                    published_ms,
                );
                if let Err(e) = self.sink.publish(&notification).await {
                    if let Err(release) = self.dedup.release(&claim, decision).await {
                        tracing::error!(error = %release, "could not release the dedup claim");
                    }
                    return Err(failure(e.cause, e.to_string()));
                }
                if let Err(e) = self.dedup.confirm(&claim, decision).await {
                    // Published all the same: at worst it is re-sent, with the same alertId.
                    tracing::warn!(error = %e, alert_id = %notification.alert_id, "alert published but not confirmed in the dedup store");
                }
                counters.alerts += 1;
                let latency = crate::time::now_ms()
                    .saturating_sub(claim.event_time_ms)
                    .max(0) as u64;
                counters.max_alert_latency_ms = counters.max_alert_latency_ms.max(latency);
                if let Some(latency) = alert_latency_ms(&m.record, published_ms) {
                    counters
                        .alert_latency_ms
                        .entry(m.path)
                        .or_default()
                        .push(latency);
                }
                tracing::info!(alert_id = %notification.alert_id, rule = %rule.id, key = %key, event_id = %m.event_id, source = %m.source, "alert published");
            }
            Decision::Suppressed { window_start_ms } => {
                counters.suppressed += 1;
                tracing::debug!(key = %key, event_id = %m.event_id, window_start_ms, "match suppressed");
            }
            Decision::Redelivery => {
                counters.redeliveries += 1;
                tracing::debug!(key = %key, event_id = %m.event_id, "redelivered event ignored");
            }
        }
        Ok(())
    }

    /// Publishes roll-ups of closed windows (all windows when `all`).
    pub async fn flush_rollups(
        &self,
        now_ms: i64,
        all: bool,
        counters: &mut Counters,
    ) -> Vec<PublishFailure> {
        let rollups = match self.dedup.take_rollups(now_ms, all).await {
            Ok(rollups) => rollups,
            Err(e) => {
                let failure = PublishFailure {
                    source: "dedup store".into(),
                    cause: e.cause,
                    message: e.to_string(),
                };
                crate::events::publish_failed(counters, &failure);
                return vec![failure];
            }
        };
        let mut failures = Vec::new();
        for rollup in rollups {
            // A rule no longer loaded: the window kept what its roll-up needs.
            let spec = match self.rules.get(&rollup.key.rule_id) {
                Some(rule) => rule.rollup_spec(),
                None => rollup
                    .window
                    .spec
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| RollupSpec::unloaded(&rollup.key.rule_id)),
            };
            let notification: Notification = build_rollup(&spec, &rollup);
            match self.sink.publish(&notification).await {
                Ok(()) => {
                    counters.rollups += 1;
                    if let Err(e) = self.dedup.confirm_rollup(&rollup).await {
                        tracing::warn!(error = %e, alert_id = %notification.alert_id, "roll-up published but not confirmed in the dedup store");
                    }
                }
                Err(e) => {
                    let failure = PublishFailure {
                        source: rollup.key.to_string(),
                        cause: e.cause,
                        message: e.to_string(),
                    };
                    crate::events::publish_failed(counters, &failure);
                    failures.push(failure);
                }
            }
        }
        failures
    }
}
