//! Containment, opt-in: cancel an export to an untrusted bucket while it is still
//! restoring, before it writes a byte.
//!
//! The rule declares the action and when it applies (`Containment:`, see
//! [`crate::rule::Containment`]); this module decides over the alert's [`Facts`]
//! (its fields and enrichment) and, only in `cancel` mode, calls AWS:
//!
//! - `TRAILWATCH_RESPONSE=off`: nothing is decided or reported;
//! - `report` (the default): decides exactly as `cancel` would, says `would-cancel`,
//!   calls nothing;
//! - `cancel`: calls `rds:CancelExportTask` in the account of the event (through the
//!   member role, [`crate::enrich::MemberAccounts`]).
//!
//! Guard rails: every requirement of the rule must hold, none of the rule's
//! `NotAllowListed` values (caller, role, bucket) may be in `TRAILWATCH_ALLOW`, and a
//! circuit breaker ([`CancelBreaker`]) admits at most
//! `TRAILWATCH_RESPONSE_MAX_PER_HOUR` cancels per account in any hour, counted in
//! the dedup table so concurrent instances share it; past it the response falls
//! back to `would-cancel` and says why. A task already `canceling` or `canceled`
//! is a success, so a retried invocation never cancels twice, and the breaker
//! counts a task once.
//!
//! The alert never waits on the response beyond its deadline (the enrichment
//! budget): [`Responder::respond`] returns by then, with outcome `pending` when the
//! cancel is still in flight, and a [`FollowUp`] to publish once it completes (same
//! `alertId`). AWS sits behind [`ExportTasks`] and [`CancelBreaker`], each with an
//! SDK implementation and an in-memory one.

mod aws;
mod breaker;
pub mod fake;
mod render;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use aws::AwsExportTasks;
pub use breaker::{Admission, CancelBreaker, DynamoBreaker, MemoryBreaker, BREAKER_KIND, HOUR_MS};
pub use render::FollowUp;

pub use crate::config::ResponseMode;
use crate::config::{AllowList, ResponseSettings};
use crate::enrich::{CallError, Place};
use crate::rule::{Containment, ContainmentAction, Facts};
use crate::time::{format_ms, now_ms};

/// The call, as logs and outcomes name it.
pub const CANCEL_EXPORT_TASK: &str = "rds:CancelExportTask";

/// What `rds:CancelExportTask` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelAnswer {
    /// The cancel was accepted; the task's status after it (`canceling`).
    Accepted { status: String },
    /// `InvalidExportTaskStateFault`: the task is not in a state that can be
    /// cancelled (already complete, failed, canceling or canceled).
    WrongState,
    /// `ExportTaskNotFoundFault`.
    NotFound,
}

/// The export-task calls containment makes, in the account and region given.
#[async_trait]
pub trait ExportTasks: Send + Sync {
    async fn cancel(&self, at: &Place, task: &str) -> Result<CancelAnswer, CallError>;
    /// The task's status, lower-cased (`complete`, `canceled`...); `None` when there
    /// is no such task.
    async fn status(&self, at: &Place, task: &str) -> Result<Option<String>, CallError>;
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The task is `canceling` or `canceled` (by this call or before it).
    Canceled,
    /// Every condition holds; `report` mode, or the circuit breaker is open.
    WouldCancel,
    /// A condition does not hold (`reason` says which); nothing was called.
    NotApplicable,
    /// The cancel was attempted and did not happen (`cause` says why).
    Failed,
    /// The cancel is still in flight when the alert is published; a follow-up
    /// message gives the outcome.
    Pending,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Canceled => "canceled",
            Outcome::WouldCancel => "would-cancel",
            Outcome::NotApplicable => "not-applicable",
            Outcome::Failed => "failed",
            Outcome::Pending => "pending",
        }
    }
}

/// The response of one alert, as the alert document's `response` member shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The configured mode, `report` or `cancel`.
    pub mode: ResponseMode,
    pub action: ContainmentAction,
    /// What the action is aimed at: the export task's identifier.
    pub target: String,
    pub account: String,
    pub region: String,
    pub outcome: Outcome,
    /// Why: the unmet condition, the allow-list entry, report mode, the breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `failed`: the failed call's cause and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// `cancel` mode fell back to `would-cancel` at the circuit breaker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub breaker_open: bool,
    /// When the outcome was reached (RFC 3339).
    pub at: String,
}

/// Counts for an invocation's summary and EMF metrics (part of
/// [`crate::counters::Counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResponseCounters {
    /// Cancels that took effect (`canceled`).
    pub taken: u64,
    /// Responses decided without a cancel: `not-applicable`, `would-cancel`.
    pub skipped: u64,
    /// Cancels that failed.
    pub failures: u64,
}

impl ResponseCounters {
    /// Counts a final response (a `pending` one is counted by its follow-up).
    pub fn add(&mut self, response: &Response) {
        match response.outcome {
            Outcome::Canceled => self.taken += 1,
            Outcome::WouldCancel | Outcome::NotApplicable => self.skipped += 1,
            Outcome::Failed => self.failures += 1,
            Outcome::Pending => {}
        }
    }

    pub fn absorb(&mut self, other: &ResponseCounters) {
        self.taken += other.taken;
        self.skipped += other.skipped;
        self.failures += other.failures;
    }

    /// EMF metrics: `ResponsesTaken`, `ResponsesSkipped`, `ResponseFailures`.
    pub fn metrics(&self) -> [(&'static str, u64); 3] {
        [
            ("ResponsesTaken", self.taken),
            ("ResponsesSkipped", self.skipped),
            ("ResponseFailures", self.failures),
        ]
    }
}

/// A response as the alert carries it, and the cancel still in flight, if any:
/// await it after publishing the alert, then publish its [`FollowUp`].
pub struct Responding {
    pub response: Response,
    pub in_flight: Option<tokio::task::JoinHandle<Response>>,
}

/// The wall clock (tests pin it).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Decides and carries out a rule's containment.
#[derive(Clone)]
pub struct Responder {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ResponseSettings,
    tasks: Arc<dyn ExportTasks>,
    breaker: Arc<dyn CancelBreaker>,
    allow: AllowList,
    clock: Clock,
}

/// A decision made without calling AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every condition holds: act on `target`.
    Act { target: String },
    /// Nothing to do, and why.
    NotApplicable { target: String, reason: String },
}

impl Responder {
    pub fn new(
        settings: ResponseSettings,
        tasks: Arc<dyn ExportTasks>,
        breaker: Arc<dyn CancelBreaker>,
        allow: AllowList,
    ) -> Responder {
        Responder {
            inner: Arc::new(Inner {
                settings,
                tasks,
                breaker,
                allow,
                clock: Arc::new(now_ms),
            }),
        }
    }

    /// The responder of a deployment: cancels through `accounts` (the member
    /// roles), the breaker in the dedup table (`TRAILWATCH_DEDUP_TABLE`; in memory
    /// without one), the allow-list of `TRAILWATCH_ALLOW`.
    pub fn for_aws(
        config: &crate::config::Config,
        aws: &aws_config::SdkConfig,
        accounts: Arc<crate::enrich::MemberAccounts>,
    ) -> Responder {
        let breaker: Arc<dyn CancelBreaker> = match &config.dedup_table {
            Some(table) => Arc::new(DynamoBreaker::new(
                aws_sdk_dynamodb::Client::new(aws),
                table.clone(),
            )),
            None => Arc::new(MemoryBreaker::new()),
        };
        Responder::new(
            config.response.clone(),
            Arc::new(AwsExportTasks::new(accounts)),
            breaker,
            config.allow.clone(),
        )
    }

    /// The same responder on another clock.
    pub fn with_clock(self, clock: Clock) -> Responder {
        let inner = &self.inner;
        Responder {
            inner: Arc::new(Inner {
                settings: inner.settings.clone(),
                tasks: Arc::clone(&inner.tasks),
                breaker: Arc::clone(&inner.breaker),
                allow: inner.allow.clone(),
                clock,
            }),
        }
    }

    pub fn mode(&self) -> ResponseMode {
        self.inner.settings.mode
    }

    /// The rule's conditions and the allow-list over the facts; calls nothing.
    pub fn decide(&self, containment: &Containment, facts: &Facts) -> Decision {
        let target = crate::rule::lookup(facts.value(), &[containment.target.as_str()])
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty() && *t != crate::UNKNOWN);
        let Some(target) = target else {
            return Decision::NotApplicable {
                target: crate::UNKNOWN.into(),
                reason: format!("the alert names no {}", containment.target),
            };
        };
        let target = target.to_owned();
        if let Some(reason) = containment.unmet(facts) {
            return Decision::NotApplicable { target, reason };
        }
        if let Some((name, value)) = containment
            .allow_list_values(facts)
            .into_iter()
            .find(|(_, value)| self.inner.allow.lists(value))
        {
            return Decision::NotApplicable {
                target,
                reason: format!("{name} {value} is in TRAILWATCH_ALLOW"),
            };
        }
        Decision::Act { target }
    }

    /// The response for an alert: `None` in `off` mode. Returns by `deadline`; a
    /// cancel still running then is `pending`, its final response in `in_flight`.
    pub async fn respond(
        &self,
        containment: &Containment,
        facts: &Facts,
        place: &Place,
        deadline: tokio::time::Instant,
    ) -> Option<Responding> {
        let mode = self.inner.settings.mode;
        if mode == ResponseMode::Off {
            return None;
        }
        let response = |target: String, outcome: Outcome, reason: Option<String>| Response {
            mode,
            action: containment.action,
            target,
            account: place.account.clone(),
            region: place.region.clone(),
            outcome,
            reason,
            cause: None,
            breaker_open: false,
            at: format_ms((self.inner.clock)()),
        };
        let target = match self.decide(containment, facts) {
            Decision::NotApplicable { target, reason } => {
                let done = response(target, Outcome::NotApplicable, Some(reason));
                log(&done);
                return Some(Responding {
                    response: done,
                    in_flight: None,
                });
            }
            Decision::Act { target } => target,
        };
        if mode == ResponseMode::Report {
            let done = response(
                target,
                Outcome::WouldCancel,
                Some("TRAILWATCH_RESPONSE=report: decided, not acted on".into()),
            );
            log(&done);
            return Some(Responding {
                response: done,
                in_flight: None,
            });
        }
        let inner = Arc::clone(&self.inner);
        let action = containment.action;
        let (place, task) = (place.clone(), target.clone());
        let mut running = tokio::spawn(async move {
            let done = inner.cancel(action, &place, &task).await;
            log(&done);
            done
        });
        match tokio::time::timeout_at(deadline, &mut running).await {
            Ok(Ok(done)) => Some(Responding {
                response: done,
                in_flight: None,
            }),
            Ok(Err(join)) => {
                let mut failed = response(target, Outcome::Failed, None);
                failed.cause = Some(format!("the cancel did not complete: {join}"));
                log(&failed);
                Some(Responding {
                    response: failed,
                    in_flight: None,
                })
            }
            Err(_) => {
                let pending = response(
                    target,
                    Outcome::Pending,
                    Some("the cancel was still running when the alert was published; its outcome follows".into()),
                );
                tracing::info!(target = %pending.target, account = %pending.account, "export task cancel still running at the alert's deadline");
                Some(Responding {
                    response: pending,
                    in_flight: Some(running),
                })
            }
        }
    }
}

impl Inner {
    /// `cancel` mode past the decision: the breaker, then the call.
    async fn cancel(&self, action: ContainmentAction, place: &Place, task: &str) -> Response {
        let mut response = Response {
            mode: ResponseMode::Cancel,
            action,
            target: task.to_owned(),
            account: place.account.clone(),
            region: place.region.clone(),
            outcome: Outcome::Failed,
            reason: None,
            cause: None,
            breaker_open: false,
            at: String::new(),
        };
        let limit = self.settings.max_per_hour;
        let admission = self
            .breaker
            .admit(&place.account, task, (self.clock)(), limit)
            .await;
        match admission {
            Err(e) => {
                response.cause = Some(format!(
                    "circuit breaker unavailable ({}: {}); not cancelled",
                    e.cause, e.message
                ));
            }
            Ok(Admission::Refused { recent }) => {
                response.outcome = Outcome::WouldCancel;
                response.breaker_open = true;
                response.reason = Some(format!(
                    "circuit breaker: {recent} cancel(s) in account {} within the last hour \
                     (TRAILWATCH_RESPONSE_MAX_PER_HOUR={limit}); reported instead",
                    place.account
                ));
            }
            Ok(Admission::Admitted { repeat }) => {
                if repeat {
                    tracing::info!(task, account = %place.account, "export task already admitted by the breaker: cancelling again is harmless");
                }
                self.call_cancel(place, task, &mut response).await;
            }
        }
        response.at = format_ms((self.clock)());
        response
    }

    async fn call_cancel(&self, place: &Place, task: &str, response: &mut Response) {
        tracing::info!(task, account = %place.account, region = %place.region, call = CANCEL_EXPORT_TASK, "cancelling export task");
        match self.tasks.cancel(place, task).await {
            Ok(CancelAnswer::Accepted { status }) => {
                response.outcome = Outcome::Canceled;
                response.reason = Some(format!("the task is now {}", status.to_ascii_lowercase()));
            }
            Ok(CancelAnswer::NotFound) => {
                response.cause = Some(format!("{CANCEL_EXPORT_TASK}: no export task {task}"));
            }
            Ok(CancelAnswer::WrongState) => match self.tasks.status(place, task).await {
                Ok(Some(status)) if status == "canceling" || status == "canceled" => {
                    response.outcome = Outcome::Canceled;
                    response.reason = Some(format!("the task was already {status}"));
                }
                Ok(Some(status)) => {
                    response.outcome = Outcome::NotApplicable;
                    response.reason = Some(format!(
                        "the task reached {status} before it could be cancelled"
                    ));
                }
                Ok(None) => {
                    response.cause = Some(format!("{CANCEL_EXPORT_TASK}: no export task {task}"));
                }
                Err(e) => {
                    response.cause = Some(format!(
                        "{CANCEL_EXPORT_TASK} refused the task's state and its status is unknown ({}: {})",
                        e.call(crate::enrich::DESCRIBE_EXPORT_TASKS),
                        e
                    ));
                }
            },
            Err(e) => {
                response.cause = Some(format!("{}: {e}", e.call(CANCEL_EXPORT_TASK)));
            }
        }
    }
}

/// One log line per response, at a level that says whether it needs a person.
fn log(response: &Response) {
    let fields = (
        response.mode.label(),
        response.action.name(),
        response.outcome.label(),
    );
    match response.outcome {
        Outcome::Failed => tracing::error!(
            mode = fields.0, action = fields.1, outcome = fields.2,
            target = %response.target, account = %response.account, region = %response.region,
            cause = response.cause.as_deref().unwrap_or_default(),
            "response failed"
        ),
        Outcome::Canceled | Outcome::WouldCancel => tracing::warn!(
            mode = fields.0, action = fields.1, outcome = fields.2,
            target = %response.target, account = %response.account, region = %response.region,
            reason = response.reason.as_deref().unwrap_or_default(),
            breaker_open = response.breaker_open,
            "response"
        ),
        Outcome::NotApplicable | Outcome::Pending => tracing::info!(
            mode = fields.0, action = fields.1, outcome = fields.2,
            target = %response.target, account = %response.account,
            reason = response.reason.as_deref().unwrap_or_default(),
            "response"
        ),
    }
}

#[cfg(test)]
mod tests;
