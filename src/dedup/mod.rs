//! Dedup decision: should this match alert, or is it part of an open window?
//!
//! Semantics (SPEC §4), all in event time so that replays, retries and backfills
//! give the same answer:
//! - the key is the rule and its `GroupBy` values ([`DedupKey`]; the embedded rule
//!   groups by `awsRegion` and `recipientAccountId`);
//! - the first match of a key opens a window at its `eventTime` and alerts;
//! - a match in `[open, open + window)` is suppressed and counted in the window;
//! - a match at or after `open + window` opens a new window and alerts;
//! - a late match (`eventTime < open`) within one window before `open` is
//!   suppressed; older than that it alerts without moving the stored window;
//! - a match in the window whose severity is higher than every alert the window
//!   has sent alerts (and the window remembers it): a routine export never hides
//!   a worse one for the rest of the window;
//! - a match whose `eventID` was already seen for the key, with the same content
//!   ([`fingerprint`]), is a redelivery: neither alert nor suppressed. A record
//!   without `eventID` is never a redelivery.
//!
//! [`transition`] is that table as a pure function; stores only persist its result
//! (atomically, for the DynamoDB store).

pub mod dynamo;
mod fingerprint;
mod key;
mod lease;
pub mod memory;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use crate::aws_error::Cause;
use serde::{Deserialize, Serialize};

use crate::rule::{RollupSpec, Severity};

pub use dynamo::DynamoStore;
pub use fingerprint::{fingerprint, fingerprint_json, Fingerprint, FINGERPRINT_FIELDS};
pub use key::DedupKey;
pub use memory::MemoryStore;

/// At most this many distinct values are kept per list (the rule's `RollupDistinct`)
/// and window.
pub const MAX_DISTINCT: usize = 20;
/// Bytes kept of each distinct value: a record's fields are the caller's to fill,
/// and the window must fit a DynamoDB item and a roll-up in one SNS message.
pub const MAX_DISTINCT_BYTES: usize = 1024;

/// What one match brings to its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: DedupKey,
    pub event_time_ms: i64,
    /// The record's `eventID` (`unknown` when it has none).
    pub event_id: String,
    /// The record's content ([`fingerprint`]); `None` for a record without
    /// `eventID`, which is never taken for a redelivery.
    pub fingerprint: Option<Fingerprint>,
    /// The match's severity, as the pipeline decided it (the rule's escalations,
    /// and whatever raises it further): a worse match breaks through its window.
    pub severity: Severity,
    pub window_ms: i64,
    /// The record's value for each of the rule's `RollupDistinct` lists.
    pub distinct: Vec<(String, String)>,
    /// What a roll-up of the window needs of the rule (kept with the window).
    pub spec: RollupSpec,
}

impl Claim {
    /// Is this claim for the record identified by `event_id` and `fingerprint`?
    /// Never for a record without `eventID` (no fingerprint), on either side.
    pub fn is_record(&self, event_id: &str, fingerprint: Option<&Fingerprint>) -> bool {
        match (&self.fingerprint, fingerprint) {
            (Some(mine), Some(theirs)) => self.event_id == event_id && mine == theirs,
            _ => false,
        }
    }
}

/// The decision for one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Alert; the alert belongs to the window opening at `window_start_ms`.
    Alert { window_start_ms: i64 },
    /// Alert: the match is worse (`severity`) than every alert the window opened
    /// at `window_start_ms` had sent (the worst of them was `previous`).
    Escalated {
        window_start_ms: i64,
        severity: Severity,
        previous: Severity,
    },
    /// Counted against the window opened at `window_start_ms`.
    Suppressed { window_start_ms: i64 },
    /// The same record (`eventID` and content) was already seen for this key.
    Redelivery,
}

impl Decision {
    /// Does the match alert?
    pub fn alerts(&self) -> bool {
        matches!(self, Decision::Alert { .. } | Decision::Escalated { .. })
    }
}

/// The persisted state of a key's current window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub open_ms: i64,
    pub window_ms: i64,
    /// `eventID` of the match that opened the window (and alerted).
    pub first_event_id: String,
    pub suppressed: u64,
    pub first_suppressed_ms: Option<i64>,
    pub last_suppressed_ms: Option<i64>,
    /// Distinct values of the suppressed matches, per `RollupDistinct` list.
    pub distinct: BTreeMap<String, BTreeSet<String>>,
    /// The rule as it was when the window opened; `None` in items written before
    /// windows kept it.
    pub spec: Option<Box<RollupSpec>>,
    /// The highest severity the window has alerted with; `None` in items written
    /// before windows kept it (see [`Window::severity_sent`]).
    pub severity_sent: Option<Severity>,
}

impl Window {
    fn opened_by(claim: &Claim) -> Window {
        Window {
            open_ms: claim.event_time_ms,
            window_ms: claim.window_ms,
            first_event_id: claim.event_id.clone(),
            spec: Some(Box::new(claim.spec.clone())),
            severity_sent: Some(claim.severity),
            ..Window::default()
        }
    }

    pub fn end_ms(&self) -> i64 {
        self.open_ms.saturating_add(self.window_ms)
    }

    /// The highest severity the window has alerted with. A window stored before
    /// windows kept it alerted with its rule's severity (escalations are rare);
    /// without even that, the lowest: a worse match is never hidden.
    pub fn severity_sent(&self) -> Severity {
        self.severity_sent
            .or_else(|| self.spec.as_ref().and_then(|spec| spec.severity))
            .unwrap_or(Severity::Info)
    }

    /// Counts a suppressed match into the window.
    pub fn absorb(&mut self, claim: &Claim) {
        self.suppressed += 1;
        let t = claim.event_time_ms;
        self.first_suppressed_ms = Some(self.first_suppressed_ms.map_or(t, |f| f.min(t)));
        self.last_suppressed_ms = Some(self.last_suppressed_ms.map_or(t, |l| l.max(t)));
        if self.spec.is_none() {
            self.spec = Some(Box::new(claim.spec.clone()));
        }
        for (name, value) in &claim.distinct {
            let set = self.distinct.entry(name.clone()).or_default();
            if set.len() < MAX_DISTINCT {
                set.insert(crate::text::truncate_marked(value, MAX_DISTINCT_BYTES).into_owned());
            }
        }
    }

    /// Forgets what was suppressed once it has been reported in a roll-up: later
    /// (late) matches of the same window start a fresh count.
    pub fn clear_suppressed(&mut self) {
        self.suppressed = 0;
        self.first_suppressed_ms = None;
        self.last_suppressed_ms = None;
        self.distinct.clear();
    }

    /// The roll-up of this window, if it suppressed anything.
    pub fn rollup(&self, key: &DedupKey) -> Option<Rollup> {
        (self.suppressed > 0).then(|| Rollup {
            key: key.clone(),
            window: self.clone(),
        })
    }
}

/// What a decision does to the stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// No window yet, or the match is past the window: store `new` (replacing the
    /// old one, whose roll-up is due if it suppressed anything) and alert.
    Open { new: Window, closed: Option<Window> },
    /// Count the match in the current window.
    Suppress { window: Window },
    /// Alert for a match worse than every alert of the current window, which
    /// becomes `window` (remembering the severity).
    Escalate { window: Window, previous: Severity },
    /// Alert for a match older than the window's reach; the stored window stays.
    AlertLate { window_start_ms: i64 },
}

impl Transition {
    pub fn decision(&self) -> Decision {
        match self {
            Transition::Open { new, .. } => Decision::Alert {
                window_start_ms: new.open_ms,
            },
            Transition::Suppress { window } => Decision::Suppressed {
                window_start_ms: window.open_ms,
            },
            Transition::Escalate { window, previous } => Decision::Escalated {
                window_start_ms: window.open_ms,
                severity: window.severity_sent(),
                previous: *previous,
            },
            Transition::AlertLate { window_start_ms } => Decision::Alert {
                window_start_ms: *window_start_ms,
            },
        }
    }
}

/// SPEC §4 as a function of the current window (redeliveries are checked before).
pub fn transition(current: Option<&Window>, claim: &Claim) -> Transition {
    let t = claim.event_time_ms;
    match current {
        None => Transition::Open {
            new: Window::opened_by(claim),
            closed: None,
        },
        Some(w) if t >= w.end_ms() => Transition::Open {
            new: Window::opened_by(claim),
            closed: Some(w.clone()),
        },
        Some(w) if t >= w.open_ms.saturating_sub(w.window_ms) => {
            let mut window = w.clone();
            let previous = w.severity_sent();
            if claim.severity > previous {
                window.severity_sent = Some(claim.severity);
                return Transition::Escalate { window, previous };
            }
            window.absorb(claim);
            Transition::Suppress { window }
        }
        Some(_) => Transition::AlertLate { window_start_ms: t },
    }
}

/// A closed window that suppressed matches: one roll-up alert lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    pub key: DedupKey,
    pub window: Window,
}

/// A dedup decision that could not be made or recorded, and why (a throttled table
/// is retried by Lambda; access denied wants an IAM fix).
#[derive(Debug, thiserror::Error)]
#[error("dedup store ({cause}): {message}")]
pub struct DedupError {
    pub cause: Cause,
    pub message: String,
}

impl DedupError {
    pub fn new(cause: Cause, message: impl Into<String>) -> Self {
        DedupError {
            cause,
            message: message.into(),
        }
    }
}

/// Where windows live: in memory (CLI, `invoke`) or DynamoDB (Lambda).
#[async_trait]
pub trait DedupStore: Send + Sync {
    /// Decides for one match and records the decision.
    async fn decide(&self, claim: &Claim) -> Result<Decision, DedupError>;

    /// Undoes an `Alert` decision whose publication failed, so that a retry of the
    /// same match alerts again (at-least-once delivery).
    async fn release(&self, claim: &Claim, decision: Decision) -> Result<(), DedupError>;

    /// Roll-ups of windows that closed before `now_ms` (all windows when `all`), each
    /// returned once (a store with leases returns one again if its publication was
    /// not confirmed in time, see `confirm_rollup`).
    async fn take_rollups(&self, now_ms: i64, all: bool) -> Result<Vec<Rollup>, DedupError>;

    /// Records that the alert of an `Alert` decision was published. A store that
    /// holds the claim open while the alert is in flight (DynamoDB: so that a crash
    /// between claim and publication is re-driven) makes it final here.
    async fn confirm(&self, _claim: &Claim, _decision: Decision) -> Result<(), DedupError> {
        Ok(())
    }

    /// Records that a roll-up from `take_rollups` was published. A store that hands
    /// roll-ups out under a lease (DynamoDB) hands an unconfirmed one out again.
    async fn confirm_rollup(&self, _rollup: &Rollup) -> Result<(), DedupError> {
        Ok(())
    }
}

/// The store Lambda mode uses: DynamoDB when `TRAILWATCH_DEDUP_TABLE` is set,
/// otherwise process memory (windows then last only as long as the instance).
pub fn store_for(
    config: &crate::config::Config,
    aws: &aws_config::SdkConfig,
) -> std::sync::Arc<dyn DedupStore> {
    match &config.dedup_table {
        None => std::sync::Arc::new(MemoryStore::new()),
        Some(table) => std::sync::Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            table.clone(),
        )),
    }
}

/// `--no-dedup`: every match alerts, in a window of its own.
pub struct NoDedup;

#[async_trait]
impl DedupStore for NoDedup {
    async fn decide(&self, claim: &Claim) -> Result<Decision, DedupError> {
        Ok(Decision::Alert {
            window_start_ms: claim.event_time_ms,
        })
    }
    async fn release(&self, _: &Claim, _: Decision) -> Result<(), DedupError> {
        Ok(())
    }
    async fn take_rollups(&self, _: i64, _: bool) -> Result<Vec<Rollup>, DedupError> {
        Ok(Vec::new())
    }
}

/// The claim the tests of this module and of its stores decide on: rule `R`, key
/// `us-east-1`/`1`, a one-hour window, a `things` list with a value per event and a
/// `places` list with one value.
#[cfg(test)]
pub(crate) fn test_claim(event_time_ms: i64, event_id: &str) -> Claim {
    Claim {
        key: DedupKey::new("R", vec!["us-east-1".into(), "1".into()]),
        event_time_ms,
        event_id: event_id.into(),
        fingerprint: Some(test_fingerprint(event_id)),
        severity: Severity::High,
        window_ms: 3_600_000,
        distinct: vec![
            ("things".into(), format!("thing-{event_id}")),
            ("places".into(), "b".into()),
        ],
        spec: RollupSpec::default(),
    }
}

/// A fingerprint for the tests: that of a record whose `requestID` is `content`.
#[cfg(test)]
pub(crate) fn test_fingerprint(content: &str) -> Fingerprint {
    fingerprint(&serde_json::json!({ "requestID": content }))
}

#[cfg(test)]
mod tests {
    use super::test_claim as claim;
    use super::*;

    const MIN: i64 = 60_000;
    const W: i64 = 60 * MIN;

    #[test]
    fn first_match_opens_and_alerts() {
        let t = transition(None, &claim(1000, "a"));
        assert_eq!(
            t.decision(),
            Decision::Alert {
                window_start_ms: 1000
            }
        );
    }

    #[test]
    fn window_is_half_open() {
        let open = Window::opened_by(&claim(0, "a"));
        assert_eq!(
            transition(Some(&open), &claim(W - 1, "b")).decision(),
            Decision::Suppressed { window_start_ms: 0 }
        );
        let at_end = transition(Some(&open), &claim(W, "c"));
        assert_eq!(at_end.decision(), Decision::Alert { window_start_ms: W });
    }

    #[test]
    fn late_records_within_one_window_are_suppressed_older_alert_without_moving() {
        let open = Window::opened_by(&claim(10 * W, "a"));
        assert_eq!(
            transition(Some(&open), &claim(9 * W, "b")).decision(),
            Decision::Suppressed {
                window_start_ms: 10 * W
            }
        );
        assert_eq!(
            transition(Some(&open), &claim(9 * W - 1, "c")),
            Transition::AlertLate {
                window_start_ms: 9 * W - 1
            }
        );
    }

    #[test]
    fn suppressed_matches_are_counted_with_distinct_values_bounded() {
        let mut w = Window::opened_by(&claim(0, "a"));
        for i in 0..30 {
            w.absorb(&claim(i * MIN, &i.to_string()));
        }
        assert_eq!(w.suppressed, 30);
        assert_eq!(w.distinct["things"].len(), MAX_DISTINCT);
        assert_eq!(w.distinct["places"].len(), 1);
        assert_eq!(w.first_suppressed_ms, Some(0));
        assert_eq!(w.last_suppressed_ms, Some(29 * MIN));
        let key = claim(0, "a").key;
        assert!(w.rollup(&key).is_some());
        assert!(Window::opened_by(&claim(0, "a")).rollup(&key).is_none());
    }

    #[test]
    fn a_worse_match_breaks_through_and_raises_the_bar() {
        let open = Window::opened_by(&claim(0, "a"));
        let mut critical = claim(MIN, "b");
        critical.severity = Severity::Critical;
        let Transition::Escalate { window, previous } = transition(Some(&open), &critical) else {
            panic!("a critical match in a high window alerts");
        };
        assert_eq!(previous, Severity::High);
        assert_eq!(window.severity_sent(), Severity::Critical);
        assert_eq!(
            window.suppressed, 0,
            "it alerted: not counted as suppressed"
        );
        assert_eq!(
            transition(Some(&window), &critical).decision(),
            Decision::Suppressed { window_start_ms: 0 },
            "equal is suppressed"
        );
        assert_eq!(
            transition(Some(&window), &claim(2 * MIN, "c")).decision(),
            Decision::Suppressed { window_start_ms: 0 },
            "lower is suppressed"
        );
        // A window stored before windows kept the severity: its rule's severity.
        let mut old = open.clone();
        old.severity_sent = None;
        assert_eq!(
            old.severity_sent(),
            Severity::Info,
            "no rule either: the lowest"
        );
        old.spec = Some(Box::new(RollupSpec {
            severity: Some(Severity::High),
            ..RollupSpec::default()
        }));
        assert_eq!(old.severity_sent(), Severity::High);
    }

    #[test]
    fn a_claim_is_a_record_only_with_an_event_id_and_the_same_content() {
        let a = claim(0, "a");
        assert!(a.is_record("a", Some(&test_fingerprint("a"))));
        assert!(!a.is_record("a", Some(&test_fingerprint("other content"))));
        assert!(!a.is_record("b", Some(&test_fingerprint("a"))));
        assert!(!a.is_record("a", None));
        let mut anonymous = claim(0, "unknown");
        anonymous.fingerprint = None;
        assert!(!anonymous.is_record("unknown", Some(&test_fingerprint("unknown"))));
    }

    #[test]
    fn a_new_window_closes_the_old_one() {
        let mut open = Window::opened_by(&claim(0, "a"));
        open.absorb(&claim(5, "b"));
        match transition(Some(&open), &claim(2 * W, "c")) {
            Transition::Open { new, closed } => {
                assert_eq!(new.open_ms, 2 * W);
                assert_eq!(closed.unwrap().suppressed, 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
