//! Rule matches -> enrichment -> dedup decision -> alert -> response -> sink.
//!
//! Shared by the Lambda handler, `trailwatch invoke` and `trailwatch scan`: given
//! matches in (eventTime, eventID) order, look up what the rules declare
//! (concurrently, each match under its own deadline), decide each against the dedup
//! store with its final severity, build and publish the alerts with the response
//! decided for them, and keep the counts that reconcile (matches = alerts +
//! suppressed + redeliveries + allowed + failed publications).
//!
//! Enrichment comes before the dedup decision because what it finds can raise a
//! match's severity (an export to a bucket the exporting account is not confirmed
//! to own is `Critical`), and a worse match breaks through an open window. The
//! response comes after the decision and before publication, on the same
//! deadline as the enrichment: an alert never waits longer for it, and a cancel
//! still running then is reported in a follow-up message with the same `alertId`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::alert::{alert_latency_ms, build_alert_from, build_rollup, AlertInput, Notification};
use crate::aws_error::Cause;
use crate::config::AllowList;
use crate::counters::{Counters, PublishFailure};
use crate::dedup::{Claim, Decision, DedupKey, DedupStore};
use crate::detect::Match;
use crate::enrich::{Enricher, Enrichment, Place};
use crate::respond::{FollowUp, Outcome, Responder, Response};
use crate::rule::{scalar_text, Facts, RollupSpec, Rule, RuleSet, Severity};
use crate::sink::AlertSink;

/// Matches enriched at once, at most (each makes up to three calls, and one more
/// per trusted account).
pub const ENRICH_CONCURRENCY: usize = 8;
/// How long a cancel still running when its alert was published may take before
/// its follow-up says that it did not complete.
pub const FOLLOW_UP_WAIT: Duration = Duration::from_secs(30);

/// The dedup and alerting half of the pipeline, with the lookups and the
/// response the rules declare when they are on.
#[derive(Clone)]
pub struct Alerter {
    pub rules: Arc<RuleSet>,
    pub dedup: Arc<dyn DedupStore>,
    pub sink: Arc<dyn AlertSink>,
    pub allow: AllowList,
    /// Overrides every rule's `DedupPeriodMinutes`.
    pub window_minutes: Option<u32>,
    /// Lookups at alert time (`Enrichment:` of the rules); `None`: none (a local
    /// `invoke`, a `scan` without `--enrich`).
    pub enricher: Option<Arc<Enricher>>,
    /// Containment (`Containment:` of the rules); `None`: none is decided.
    pub responder: Option<Responder>,
}

/// What enrichment found for a match, and the deadline the match's alert runs on.
struct Lookup {
    enrichment: Option<Enrichment>,
    /// The enrichment budget from when the lookups started: the response must be
    /// decided by then too.
    deadline: tokio::time::Instant,
}

/// A response whose outcome is published after the alerts, as a follow-up.
struct FollowUpJob {
    alert_id: String,
    rule_id: String,
    severity: Severity,
    /// The response as known when the alert was decided.
    response: Response,
    /// The cancel still running then, if any.
    in_flight: Option<JoinHandle<Response>>,
    /// `false` when the alert itself was not published: the running cancel is
    /// awaited (and counted), but there is nothing to follow up (the retry alerts
    /// with its outcome).
    publish: bool,
}

/// What the pipeline decided about a match before building its alert.
struct Decided<'a> {
    rule: &'a Rule,
    severity: Severity,
    reason: Option<String>,
    enrichment: Option<Enrichment>,
    facts: Facts,
    place: Place,
    deadline: tokio::time::Instant,
}

/// A record's account and region (`unknown` when missing).
fn place_of(record: &Value) -> Place {
    Place::new(
        scalar_text(record.get("recipientAccountId")),
        scalar_text(record.get("awsRegion")),
    )
}

impl Alerter {
    /// An alerter without lookups or response.
    pub fn new(
        rules: Arc<RuleSet>,
        dedup: Arc<dyn DedupStore>,
        sink: Arc<dyn AlertSink>,
        allow: AllowList,
        window_minutes: Option<u32>,
    ) -> Alerter {
        Alerter {
            rules,
            dedup,
            sink,
            allow,
            window_minutes,
            enricher: None,
            responder: None,
        }
    }

    fn window_ms(&self, rule: &Rule) -> i64 {
        i64::from(self.window_minutes.unwrap_or(rule.dedup_minutes)) * 60_000
    }

    /// The dedup key: the rule and its `GroupBy` values (`unknown` for a missing field).
    pub fn dedup_key(rule: &Rule, record: &Value) -> DedupKey {
        DedupKey::new(rule.id.clone(), rule.group_values(record))
    }

    /// The deadline of an alert whose lookups start now (or would have).
    fn deadline(&self) -> tokio::time::Instant {
        let budget = self
            .enricher
            .as_ref()
            .map_or(crate::config::DEFAULT_ENRICH_BUDGET, |e| {
                e.settings().budget
            });
        tokio::time::Instant::now() + budget
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
        // Every match is looked up at once (bounded), each on its own deadline;
        // they are decided in order as their lookups complete.
        let lookups = self.start_lookups(&matches);
        let mut failures = Vec::new();
        let mut follow_ups = Vec::new();
        for (m, lookup) in matches.iter().zip(lookups) {
            counters.matches += 1;
            if let Err(failure) = self.process_one(m, lookup, counters, &mut follow_ups).await {
                crate::events::publish_failed(counters, &failure);
                failures.push(failure);
            }
        }
        // Every alert is out: now the responses that finish later.
        self.follow_up(follow_ups, counters).await;
        failures
    }

    /// Starts the lookups of every match that will need them: not allow-listed,
    /// of a rule that declares some, with enrichment on. In match order.
    fn start_lookups(&self, matches: &[Match]) -> Vec<Option<JoinHandle<Lookup>>> {
        let enricher = self.enricher.as_ref().filter(|e| e.settings().enabled);
        let permits = Arc::new(Semaphore::new(ENRICH_CONCURRENCY));
        matches
            .iter()
            .map(|m| {
                let enricher = Arc::clone(enricher?);
                let rule = &self.rules.rules[m.rule];
                if rule.enrichment.is_none() || self.allow.allows(&m.record).is_some() {
                    return None;
                }
                let rules = Arc::clone(&self.rules);
                let index = m.rule;
                let fields = rule.output.field_values(&m.record);
                let place = place_of(&m.record);
                let permits = Arc::clone(&permits);
                Some(tokio::spawn(async move {
                    // (The semaphore is never closed.)
                    let _permit = permits.acquire_owned().await.ok();
                    let deadline = enricher.deadline();
                    let spec = rules.rules[index].enrichment.as_ref();
                    let enrichment = enricher
                        .enrich_alert(spec, &fields, &place.account, &place.region, deadline)
                        .await;
                    Lookup {
                        enrichment,
                        deadline,
                    }
                }))
            })
            .collect()
    }

    /// The severity of a match and what it is decided over: its record's
    /// escalations, then the rule's enrichment escalations over what was found.
    fn decide_severity<'a>(
        &self,
        rule: &'a Rule,
        m: &Match,
        found: Option<Lookup>,
        counters: &mut Counters,
    ) -> Decided<'a> {
        let record = &m.record;
        let place = place_of(record);
        let fields: Map<String, Value> = rule.output.field_values(record);
        let principal = crate::rule::lookup(record, &["userIdentity", "arn"])
            .and_then(Value::as_str)
            .unwrap_or(crate::UNKNOWN);
        let issuer = crate::rule::lookup(
            record,
            &["userIdentity", "sessionContext", "sessionIssuer", "arn"],
        )
        .and_then(Value::as_str);
        let mut facts =
            Facts::new(&fields, &place.account, &place.region).with_principal(principal, issuer);
        let (record_severity, record_reason) = rule.severity_for(record);
        let (mut severity, mut reason) = (record_severity, record_reason.map(str::to_owned));
        let deadline = found
            .as_ref()
            .map_or_else(|| self.deadline(), |l| l.deadline);
        let enrichment = found.and_then(|l| l.enrichment);
        if let Some(found) = &enrichment {
            counters.add_enrichment(found);
            facts = found.add_to(facts);
            if let Some(spec) = &rule.enrichment {
                (severity, reason) = spec.escalate(severity, reason, &facts);
                if severity > record_severity {
                    counters.enrichment.escalations += 1;
                }
            }
        }
        Decided {
            rule,
            severity,
            reason,
            enrichment,
            facts,
            place,
            deadline,
        }
    }

    /// The rule's containment for a match, by its deadline; `None` without a
    /// responder, in `off` mode, or for a rule that declares none.
    async fn respond(&self, decided: &Decided<'_>) -> Option<crate::respond::Responding> {
        let responder = self.responder.as_ref()?;
        let containment = decided.rule.containment.as_ref()?;
        responder
            .respond(
                containment,
                &decided.facts,
                &decided.place,
                decided.deadline,
            )
            .await
    }

    async fn process_one(
        &self,
        m: &Match,
        lookup: Option<JoinHandle<Lookup>>,
        counters: &mut Counters,
        follow_ups: &mut Vec<FollowUpJob>,
    ) -> Result<(), PublishFailure> {
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
        let lookup = match lookup {
            None => None,
            Some(running) => match running.await {
                Ok(lookup) => Some(lookup),
                // Never expected (the lookups do not panic); the alert goes out
                // without its enrichment rather than not at all.
                Err(e) => {
                    tracing::error!(rule = %rule.id, event_id = %m.event_id, error = %e, "enrichment did not complete; alerting without it");
                    None
                }
            },
        };
        let decided = self.decide_severity(rule, m, lookup, counters);
        let key = Self::dedup_key(rule, &m.record);
        let claim = Claim {
            key: key.clone(),
            event_time_ms: m.event_time_ms.unwrap_or_default(),
            event_id: m.event_id.clone(),
            fingerprint: m.fingerprint.clone(),
            severity: decided.severity,
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
                // Decided by the alert's deadline; a cancel still running then
                // finishes while the alert is published.
                let responding = self.respond(&decided).await;
                let published_ms = crate::time::now_ms();
                // A worse match than the window's alerts has an alert of its own.
                let id_kind = match decision {
                    Decision::Escalated { severity, .. } => format!("alert:{}", severity.label()),
                    _ => "alert".to_owned(),
                };
                let dedup_key = key.to_string();
                let notification = build_alert_from(&AlertInput {
                    rule,
                    m,
                    dedup_key: &dedup_key,
                    window_start_ms,
                    window_ms: claim.window_ms,
                    id_kind: &id_kind,
                    published_ms,
                    severity: decided.severity,
                    severity_reason: decided.reason.as_deref(),
                    enrichment: decided.enrichment.as_ref(),
                    response: responding.as_ref().map(|r| &r.response),
                });
                let published = self.sink.publish(&notification).await;
                if let Some(responding) = responding {
                    counters.responses.add(&responding.response);
                    if let Some(running) = responding.in_flight {
                        follow_ups.push(FollowUpJob {
                            alert_id: notification.alert_id.clone(),
                            rule_id: rule.id.clone(),
                            severity: decided.severity,
                            response: responding.response,
                            in_flight: Some(running),
                            publish: published.is_ok(),
                        });
                    }
                }
                if let Err(e) = published {
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
                tracing::info!(alert_id = %notification.alert_id, rule = %rule.id, key = %key, event_id = %m.event_id, source = %m.source, severity = decided.severity.label(), "alert published");
            }
            Decision::Suppressed { window_start_ms } => {
                counters.suppressed += 1;
                tracing::debug!(key = %key, event_id = %m.event_id, window_start_ms, "match suppressed");
                // A suppressed match is another export all the same: it gets its
                // response, reported under the window's alert when it acted or
                // failed to.
                if let Some(responding) = self.respond(&decided).await {
                    counters.responses.add(&responding.response);
                    let worth_telling = responding.in_flight.is_some()
                        || matches!(
                            responding.response.outcome,
                            Outcome::Canceled | Outcome::Failed
                        )
                        || responding.response.breaker_open;
                    if worth_telling {
                        follow_ups.push(FollowUpJob {
                            alert_id: crate::alert::alert_id(
                                &rule.id,
                                &key.to_string(),
                                window_start_ms,
                                "alert",
                            ),
                            rule_id: rule.id.clone(),
                            severity: decided.severity,
                            response: responding.response,
                            in_flight: responding.in_flight,
                            publish: true,
                        });
                    }
                }
            }
            Decision::Redelivery => {
                counters.redeliveries += 1;
                tracing::debug!(key = %key, event_id = %m.event_id, "redelivered event ignored");
            }
        }
        Ok(())
    }

    /// Publishes the follow-ups: each cancel still running is awaited (at most
    /// [`FOLLOW_UP_WAIT`], then reported as not completed), counted, and its
    /// outcome published with its alert's `alertId`. A follow-up that cannot be
    /// published is logged and counted; it never fails the invocation, whose
    /// alerts are out.
    async fn follow_up(&self, jobs: Vec<FollowUpJob>, counters: &mut Counters) {
        for job in jobs {
            let response = match job.in_flight {
                None => job.response,
                Some(mut running) => {
                    let done = match tokio::time::timeout(FOLLOW_UP_WAIT, &mut running).await {
                        Ok(Ok(done)) => done,
                        Ok(Err(e)) => not_completed(
                            &job.response,
                            &format!("the cancel did not complete: {e}"),
                        ),
                        Err(_) => {
                            running.abort();
                            not_completed(
                                &job.response,
                                &format!(
                                    "no answer within {} s of the alert; its outcome is unknown",
                                    FOLLOW_UP_WAIT.as_secs()
                                ),
                            )
                        }
                    };
                    counters.responses.add(&done);
                    done
                }
            };
            if !job.publish {
                continue;
            }
            let notification =
                FollowUp::new(&job.alert_id, &job.rule_id, job.severity, response).notification();
            match self.sink.publish(&notification).await {
                Ok(()) => {
                    counters.follow_ups += 1;
                    tracing::info!(alert_id = %job.alert_id, "response follow-up published");
                }
                Err(e) => {
                    counters.follow_up_failures += 1;
                    *counters.errors_by_cause.entry(e.cause).or_default() += 1;
                    tracing::error!(alert_id = %job.alert_id, cause = e.cause.label(), error = %e, "response follow-up not published (the alert was)");
                }
            }
        }
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

/// The final response of a cancel that did not come back: `failed`, saying why,
/// so that a person checks the task.
fn not_completed(pending: &Response, why: &str) -> Response {
    let mut failed = pending.clone();
    failed.outcome = Outcome::Failed;
    failed.reason = None;
    failed.cause = Some(format!("{}: {why}", crate::respond::CANCEL_EXPORT_TASK));
    failed.at = crate::time::format_ms(crate::time::now_ms());
    tracing::error!(target = %failed.target, account = %failed.account, cause = failed.cause.as_deref().unwrap_or_default(), "export task cancel did not complete");
    failed
}
