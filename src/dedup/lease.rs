//! The lease/claim state machine of the DynamoDB dedup store, pure: given a key's
//! stored window item (or none) and a match, what to answer and what to write.
//!
//! The semantics are those of [`super::transition`] (SPEC §4, event time); this
//! adds what a store shared by concurrent, crash-prone invocations needs: an alert
//! claimed `pending` under a lease until its publication is confirmed or released
//! (the window's first alert, and the alert of a worse match, each with a lease
//! of its own), redelivery detection by `eventID` and content fingerprint, expiry,
//! and the roll-up batches cut from closed windows. The I/O (conditional writes,
//! retries) is in [`super::dynamo`]; the design and its guarantees are written up
//! in `docs/design.md` (*In DynamoDB*).

use serde::{Deserialize, Serialize};

use super::{transition, Claim, Decision, DedupError, Fingerprint, Transition, Window};
use crate::dedup::DedupKey;
use crate::rule::Severity;
use crate::time::format_ms;

/// How many `eventID`s a window item remembers for redelivery detection. At ~40
/// bytes each this keeps the item far below DynamoDB's 400 KB limit.
pub const SEEN_LIMIT: usize = 200;

pub(crate) const DAY_MS: i64 = 86_400_000;
/// Pending roll-up batches outlive a broken flush for this long.
const ROLLUP_RETENTION_MS: i64 = 14 * DAY_MS;

/// One round of a read-plan-write loop.
pub(crate) enum Step<T> {
    /// Nothing to write.
    Done(T),
    /// Write `next` (and cut `rollup` to a batch in the same transaction).
    Write {
        answer: T,
        next: Box<StoredWindow>,
        rollup: Option<Window>,
    },
}

/// Whether the window's alert is still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Pending,
    Alerted,
}

/// A record decided for the key, remembered to recognise its redeliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) event_id: String,
    /// `None` in items written before fingerprints were kept: any content matches.
    pub(crate) fingerprint: Option<Fingerprint>,
}

impl Seen {
    fn of(claim: &Claim) -> Option<Seen> {
        claim.fingerprint.as_ref().map(|fingerprint| Seen {
            event_id: claim.event_id.clone(),
            fingerprint: Some(fingerprint.clone()),
        })
    }

    /// Is `claim` (a redelivery of) this record?
    fn recognises(&self, claim: &Claim) -> bool {
        match (&self.fingerprint, &claim.fingerprint) {
            (_, None) => false,
            (None, Some(_)) => self.event_id == claim.event_id,
            (Some(fingerprint), Some(_)) => claim.is_record(&self.event_id, Some(fingerprint)),
        }
    }
}

/// The alert of a match worse than the window's alerts ([`Decision::Escalated`]),
/// claimed and not confirmed yet: it is re-driven, like the window's first alert,
/// when its claim is released or its lease runs out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Escalation {
    pub(crate) event_id: String,
    pub(crate) fingerprint: Option<Fingerprint>,
    pub(crate) severity: Severity,
    pub(crate) previous: Severity,
    pub(crate) lease_until_ms: i64,
}

impl Escalation {
    /// Does `claim` hold this alert's claim (is it the match that claimed it)?
    fn held_by(&self, claim: &Claim) -> bool {
        claim.event_id == self.event_id && claim.fingerprint == self.fingerprint
    }
}

/// A window item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredWindow {
    pub(crate) window: Window,
    pub(crate) state: State,
    pub(crate) lease_until_ms: i64,
    /// The content of the match that opened the window (`None` when it had no
    /// `eventID`, or the item predates fingerprints).
    pub(crate) first_fingerprint: Option<Fingerprint>,
    pub(crate) seen: Vec<Seen>,
    pub(crate) escalation: Option<Escalation>,
    pub(crate) version: u64,
    pub(crate) ttl_secs: i64,
}

impl StoredWindow {
    pub(crate) fn is_expired(&self, now: i64) -> bool {
        self.ttl_secs.saturating_mul(1000) <= now
    }

    /// Was the record of `claim` decided for this key already?
    pub(crate) fn has_seen(&self, claim: &Claim) -> bool {
        self.is_opener(claim) || self.seen.iter().any(|seen| seen.recognises(claim))
    }

    /// Is `claim` the record that opened the window?
    fn is_opener(&self, claim: &Claim) -> bool {
        claim.is_record(&self.window.first_event_id, self.first_fingerprint.as_ref())
    }

    /// Does `claim` hold the window's alert claim (is it the match that claimed it)?
    fn held_by(&self, claim: &Claim) -> bool {
        self.window.first_event_id == claim.event_id && self.first_fingerprint == claim.fingerprint
    }
}

/// A roll-up batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRollup {
    pub(crate) pk: String,
    pub(crate) key: DedupKey,
    pub(crate) window: Window,
    pub(crate) taken_until_ms: i64,
    pub(crate) version: u64,
    pub(crate) ttl_secs: i64,
}

impl StoredRollup {
    /// A new batch of `window`'s suppressed matches, cut at wall-clock `now` from
    /// version `from_version` of the key's window item (unique per key).
    pub(crate) fn cut(
        key: &DedupKey,
        window: Window,
        now: i64,
        from_version: u64,
        taken_until_ms: Option<i64>,
    ) -> StoredRollup {
        StoredRollup {
            pk: format!(
                "{}#rollup#{}#{now}-{from_version}",
                key.storage_id(),
                window.open_ms
            ),
            key: key.clone(),
            window,
            taken_until_ms: taken_until_ms.unwrap_or(0),
            version: 1,
            ttl_secs: now.saturating_add(ROLLUP_RETENTION_MS) / 1000,
        }
    }
}

/// `ttl` of a window item written at wall-clock `now`: long enough that every
/// record that could still fall in the window by event time has arrived (CloudTrail
/// delivers within minutes, late logs within hours), measured from the later of
/// the window end and now so that backfills of old logs keep their windows too.
pub(crate) fn expiry_secs(w: &Window, now: i64) -> i64 {
    w.end_ms()
        .max(now)
        .saturating_add(w.window_ms.saturating_mul(2))
        .saturating_add(DAY_MS)
        / 1000
}

/// Appends the record of `claim` (one without `eventID` is never remembered),
/// forgetting the oldest beyond [`SEEN_LIMIT`].
pub(crate) fn remember(seen: &mut Vec<Seen>, claim: &Claim) {
    let Some(record) = Seen::of(claim) else {
        return;
    };
    if !seen.contains(&record) {
        seen.push(record);
    }
    if seen.len() > SEEN_LIMIT {
        seen.drain(..seen.len() - SEEN_LIMIT);
    }
}

/// Forgets a record whose alert was abandoned: it is decided afresh on retry.
fn forget(seen: &mut Vec<Seen>, event_id: &str, fingerprint: Option<&Fingerprint>) {
    seen.retain(|s| !(s.event_id == event_id && s.fingerprint.as_ref() == fingerprint));
}

/// The decision for `claim` given the key's stored item, at wall-clock `now`.
pub(crate) fn plan_decide(
    stored: Option<&StoredWindow>,
    claim: &Claim,
    now: i64,
    lease_ms: i64,
) -> Result<Step<Decision>, DedupError> {
    let version = stored.map_or(1, |s| s.version + 1);
    // An expired item is absent, deleted or not; its unreported matches are kept.
    let (live, stale_rollup) = match stored {
        Some(s) if s.is_expired(now) => (None, (s.window.suppressed > 0).then(|| s.window.clone())),
        other => (other, None),
    };
    if let Some(s) = live {
        let w = &s.window;
        let t = claim.event_time_ms;
        let in_reach = t >= w.open_ms.saturating_sub(w.window_ms) && t < w.end_ms();
        let opener = s.is_opener(claim);
        let seen = s.has_seen(claim);
        if s.state == State::Pending && in_reach && (opener || !seen) {
            if s.lease_until_ms <= now {
                // Re-drive the window's alert: its claim was released or abandoned.
                let mut next = s.clone();
                if !opener {
                    // The abandoned match gets a decision of its own when it is retried.
                    let abandoned =
                        std::mem::replace(&mut next.window.first_event_id, claim.event_id.clone());
                    let abandoned_content =
                        std::mem::replace(&mut next.first_fingerprint, claim.fingerprint.clone());
                    forget(&mut next.seen, &abandoned, abandoned_content.as_ref());
                    remember(&mut next.seen, claim);
                    // What the window's alert now says.
                    next.window.severity_sent = Some(claim.severity);
                }
                next.lease_until_ms = now.saturating_add(lease_ms);
                next.version = version;
                next.ttl_secs = expiry_secs(&next.window, now);
                return Ok(Step::Write {
                    answer: Decision::Alert {
                        window_start_ms: w.open_ms,
                    },
                    next: Box::new(next),
                    rollup: None,
                });
            }
            if opener {
                return Err(in_flight(claim, w.open_ms, s.lease_until_ms, "alert"));
            }
        }
        if let Some(e) = s.escalation.as_ref().filter(|_| in_reach) {
            let mine = e.held_by(claim) && claim.fingerprint.is_some();
            if (mine || (!seen && claim.severity >= e.severity)) && e.lease_until_ms <= now {
                // Re-drive the worse match's alert: released or abandoned.
                let mut next = s.clone();
                if !mine {
                    forget(&mut next.seen, &e.event_id, e.fingerprint.as_ref());
                    remember(&mut next.seen, claim);
                }
                next.escalation = Some(Escalation {
                    event_id: claim.event_id.clone(),
                    fingerprint: claim.fingerprint.clone(),
                    severity: claim.severity,
                    previous: e.previous,
                    lease_until_ms: now.saturating_add(lease_ms),
                });
                next.window.severity_sent = Some(w.severity_sent().max(claim.severity));
                next.version = version;
                next.ttl_secs = expiry_secs(&next.window, now);
                return Ok(Step::Write {
                    answer: Decision::Escalated {
                        window_start_ms: w.open_ms,
                        severity: claim.severity,
                        previous: e.previous,
                    },
                    next: Box::new(next),
                    rollup: None,
                });
            }
            if mine {
                return Err(in_flight(
                    claim,
                    w.open_ms,
                    e.lease_until_ms,
                    "escalated alert",
                ));
            }
        }
        if seen {
            return Ok(Step::Done(Decision::Redelivery));
        }
    }
    let step = transition(live.map(|s| &s.window), claim);
    let answer = step.decision();
    let (mut next, rollup) = match (step, live) {
        (Transition::Open { new, closed }, _) => {
            let mut seen = live.map(|s| s.seen.clone()).unwrap_or_default();
            if let (Some(s), Some(closed)) = (live, &closed) {
                if s.state == State::Pending && s.lease_until_ms <= now {
                    // The closed window's alert was abandoned: its match is decided
                    // afresh on retry (a late alert, or counted in this window).
                    forget(
                        &mut seen,
                        &closed.first_event_id,
                        s.first_fingerprint.as_ref(),
                    );
                }
                if let Some(e) = s.escalation.as_ref().filter(|e| e.lease_until_ms <= now) {
                    forget(&mut seen, &e.event_id, e.fingerprint.as_ref());
                }
            }
            remember(&mut seen, claim);
            let next = StoredWindow {
                window: new,
                state: State::Pending,
                lease_until_ms: now.saturating_add(lease_ms),
                first_fingerprint: claim.fingerprint.clone(),
                seen,
                escalation: None,
                version,
                ttl_secs: 0,
            };
            (next, stale_rollup.or(closed.filter(|c| c.suppressed > 0)))
        }
        (Transition::Suppress { window }, Some(s)) => {
            let mut next = StoredWindow {
                window,
                ..s.clone()
            };
            remember(&mut next.seen, claim);
            (next, None)
        }
        (Transition::Escalate { window, previous }, Some(s)) => {
            let mut next = StoredWindow {
                window,
                escalation: Some(Escalation {
                    event_id: claim.event_id.clone(),
                    fingerprint: claim.fingerprint.clone(),
                    severity: claim.severity,
                    previous,
                    lease_until_ms: now.saturating_add(lease_ms),
                }),
                ..s.clone()
            };
            remember(&mut next.seen, claim);
            (next, None)
        }
        (Transition::AlertLate { .. }, Some(_)) => {
            // Nothing to store: the window stays, and the record is remembered only
            // once its alert is confirmed, so that a crash before then alerts again.
            return Ok(Step::Done(answer));
        }
        (_, None) => {
            return Err(DedupError::new(
                crate::aws_error::Cause::Other,
                format!("{}: no window to count the match against", claim.key),
            ))
        }
    };
    next.version = version;
    next.ttl_secs = expiry_secs(&next.window, now);
    Ok(Step::Write {
        answer,
        next: Box::new(next),
        rollup,
    })
}

/// The error for a retry of a match whose alert another invocation is publishing.
fn in_flight(claim: &Claim, open_ms: i64, lease_until_ms: i64, what: &str) -> DedupError {
    DedupError::new(
        crate::aws_error::Cause::Other,
        format!(
            "{}: the {what} of the window opened at {} by event {} is being published by another invocation (claim held until {}); try again later",
            claim.key,
            format_ms(open_ms),
            claim.event_id,
            format_ms(lease_until_ms)
        ),
    )
}

/// Undoes an alert claim whose publication failed: the claim becomes
/// re-drivable at once. (A late alert stored nothing to undo.)
pub(crate) fn plan_release(
    stored: Option<&StoredWindow>,
    claim: &Claim,
    decision: Decision,
    now: i64,
) -> Step<()> {
    let Some(s) = stored.filter(|s| !s.is_expired(now)) else {
        return Step::Done(());
    };
    let mut next = s.clone();
    match decision {
        Decision::Alert { window_start_ms }
            if s.state == State::Pending
                && s.lease_until_ms != 0
                && s.window.open_ms == window_start_ms
                && s.held_by(claim) =>
        {
            next.lease_until_ms = 0;
        }
        Decision::Escalated {
            window_start_ms,
            severity,
            ..
        } if s.window.open_ms == window_start_ms => match next.escalation.as_mut() {
            Some(e) if e.held_by(claim) && e.severity == severity && e.lease_until_ms != 0 => {
                e.lease_until_ms = 0;
            }
            _ => return Step::Done(()),
        },
        _ => return Step::Done(()),
    }
    next.version = s.version + 1;
    Step::Write {
        answer: (),
        next: Box::new(next),
        rollup: None,
    }
}

/// Records a published alert: the window's claim (or the worse match's) becomes
/// final, a late alert's record is remembered so that its redeliveries are
/// recognised.
pub(crate) fn plan_confirm(
    stored: Option<&StoredWindow>,
    claim: &Claim,
    decision: Decision,
) -> Step<()> {
    let Some(s) = stored else {
        return Step::Done(());
    };
    let mut next = s.clone();
    match decision {
        Decision::Alert { window_start_ms }
            if s.state == State::Pending
                && s.window.open_ms == window_start_ms
                && s.held_by(claim) =>
        {
            next.state = State::Alerted;
            next.lease_until_ms = 0;
        }
        Decision::Alert { window_start_ms }
            if window_start_ms == claim.event_time_ms
                && claim.fingerprint.is_some()
                && !s.has_seen(claim) =>
        {
            // A late alert, or a window's alert that another match re-drove meanwhile.
            remember(&mut next.seen, claim);
        }
        Decision::Escalated {
            window_start_ms,
            severity,
            ..
        } if s.window.open_ms == window_start_ms
            && s.escalation
                .as_ref()
                .is_some_and(|e| e.held_by(claim) && e.severity == severity) =>
        {
            next.escalation = None;
        }
        _ => return Step::Done(()),
    }
    next.version = s.version + 1;
    Step::Write {
        answer: (),
        next: Box::new(next),
        rollup: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::test_claim as claim;

    const W: i64 = 3_600_000;
    const LEASE: i64 = 60_000;
    /// Wall clock of the tests: well after the event times, as in production.
    const NOW: i64 = 1_800_000_000_000;
    const T0: i64 = 1_700_000_000_000;

    /// Applies a decision to `stored` as a successful write would.
    fn decide(
        stored: &mut Option<StoredWindow>,
        c: &Claim,
        now: i64,
    ) -> Result<(Decision, Option<Window>), DedupError> {
        match plan_decide(stored.as_ref(), c, now, LEASE)? {
            Step::Done(d) => Ok((d, None)),
            Step::Write {
                answer,
                next,
                rollup,
            } => {
                *stored = Some(*next);
                Ok((answer, rollup))
            }
        }
    }

    fn apply(stored: &mut Option<StoredWindow>, step: Step<()>) {
        if let Step::Write { next, .. } = step {
            *stored = Some(*next);
        }
    }

    fn alert(t: i64) -> Decision {
        Decision::Alert { window_start_ms: t }
    }

    #[test]
    fn follows_the_pure_transition_and_counts() {
        let mut s = None;
        assert_eq!(decide(&mut s, &claim(T0, "a"), NOW).unwrap().0, alert(T0));
        assert_eq!(
            decide(&mut s, &claim(T0 + 10, "b"), NOW).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        assert_eq!(
            decide(&mut s, &claim(T0 + 10, "b"), NOW).unwrap().0,
            Decision::Redelivery
        );
        assert!(decide(&mut s, &claim(T0, "a"), NOW)
            .unwrap_err()
            .message
            .contains("being published"));
        let stored = s.clone().unwrap();
        assert_eq!(stored.window.suppressed, 1);
        assert_eq!(stored.version, 2);
        // A new window closes the old one and cuts its roll-up.
        let (d, rollup) = decide(&mut s, &claim(T0 + W, "c"), NOW).unwrap();
        assert_eq!(d, alert(T0 + W));
        assert_eq!(rollup.unwrap().suppressed, 1);
        // Late by more than a window: alerts, the window stays, the id is remembered
        // once the alert is published.
        let before = s.clone();
        let late = claim(T0 - 1, "z");
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, alert(T0 - 1));
        assert_eq!(s, before, "nothing stored for a late alert");
        let step = plan_confirm(s.as_ref(), &late, alert(T0 - 1));
        apply(&mut s, step);
        assert_eq!(s.as_ref().unwrap().window.open_ms, T0 + W);
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, Decision::Redelivery);
    }

    #[test]
    fn expired_items_never_suppress_and_keep_their_rollup() {
        let mut s = None;
        decide(&mut s, &claim(T0, "a"), NOW).unwrap();
        decide(&mut s, &claim(T0 + 1, "b"), NOW).unwrap();
        let ttl = s.as_ref().unwrap().ttl_secs;
        assert_eq!(
            ttl,
            (NOW + 2 * W + DAY_MS) / 1000,
            "counted from the wall clock for old events"
        );
        let later = ttl * 1000;
        let (d, rollup) = decide(&mut s, &claim(T0 + 2, "c"), later).unwrap();
        assert_eq!(
            d,
            alert(T0 + 2),
            "same event-time window, but the item expired"
        );
        assert_eq!(rollup.unwrap().suppressed, 1);
        // ...even a redelivery of an expired item's event is decided afresh.
        assert_eq!(
            decide(&mut s, &claim(T0 + 1, "b"), later).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0 + 2
            }
        );
    }

    #[test]
    fn released_claims_are_redriven_by_the_retry_with_the_same_window() {
        let mut s = None;
        let c = claim(T0, "a");
        let d = decide(&mut s, &c, NOW).unwrap().0;
        let step = plan_release(s.as_ref(), &c, d, NOW);
        apply(&mut s, step);
        assert_eq!(s.as_ref().unwrap().lease_until_ms, 0);
        assert_eq!(
            decide(&mut s, &c, NOW + 1).unwrap().0,
            d,
            "the retry alerts again"
        );
        let step = plan_confirm(s.as_ref(), &c, d);
        apply(&mut s, step);
        assert_eq!(s.as_ref().unwrap().state, State::Alerted);
        assert_eq!(
            decide(&mut s, &c, NOW + 2).unwrap().0,
            Decision::Redelivery,
            "a retry after publication does not"
        );
    }

    #[test]
    fn abandoned_claims_are_redriven_after_the_lease_by_another_match() {
        let mut s = None;
        decide(&mut s, &claim(T0, "a"), NOW).unwrap();
        // Within the lease, others are suppressed: the claimant is publishing.
        assert_eq!(
            decide(&mut s, &claim(T0 + 5, "b"), NOW + 1).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        // After it, the next new match re-drives the window's alert.
        assert_eq!(
            decide(&mut s, &claim(T0 + 6, "c"), NOW + LEASE).unwrap().0,
            alert(T0)
        );
        assert_eq!(s.as_ref().unwrap().window.first_event_id, "c");
        // ...but a redelivery does not.
        let mut t = s.clone();
        t.as_mut().unwrap().lease_until_ms = 0;
        assert_eq!(
            decide(&mut t, &claim(T0 + 5, "b"), NOW + LEASE).unwrap().0,
            Decision::Redelivery
        );
        // The abandoned match, retried later, is counted rather than lost or re-alerted.
        let step = plan_confirm(s.as_ref(), &claim(T0 + 6, "c"), alert(T0));
        apply(&mut s, step);
        assert_eq!(
            decide(&mut s, &claim(T0, "a"), NOW + LEASE).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        assert_eq!(s.as_ref().unwrap().window.suppressed, 2);
    }

    #[test]
    fn confirm_and_release_only_touch_their_own_claim() {
        let mut s = None;
        let a = claim(T0, "a");
        let d = decide(&mut s, &a, NOW).unwrap().0;
        // Another match's confirmation or release leaves this claim alone.
        let other = claim(T0 + 1, "x");
        assert!(matches!(
            plan_confirm(s.as_ref(), &other, d),
            Step::Done(())
        ));
        assert!(matches!(
            plan_release(s.as_ref(), &other, d, NOW),
            Step::Done(())
        ));
        assert!(matches!(
            plan_confirm(
                s.as_ref(),
                &a,
                Decision::Suppressed {
                    window_start_ms: T0
                }
            ),
            Step::Done(())
        ));
        // A late alert stores nothing until published: a failed or abandoned one
        // alerts again on retry, a published one is a redelivery.
        let late = claim(T0 - 2 * W, "late");
        let d_late = decide(&mut s, &late, NOW).unwrap().0;
        assert_eq!(d_late, alert(T0 - 2 * W));
        assert!(matches!(
            plan_release(s.as_ref(), &late, d_late, NOW),
            Step::Done(())
        ));
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, d_late);
        let step = plan_confirm(s.as_ref(), &late, d_late);
        apply(&mut s, step);
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, Decision::Redelivery);
    }

    #[test]
    fn seen_is_bounded_and_old_redeliveries_never_open_a_window() {
        let mut s = None;
        decide(&mut s, &claim(T0, "first"), NOW).unwrap();
        for i in 0..(SEEN_LIMIT as i64 + 50) {
            decide(&mut s, &claim(T0 + 1 + i, &format!("e{i}")), NOW).unwrap();
        }
        let stored = s.clone().unwrap();
        assert_eq!(stored.seen.len(), SEEN_LIMIT);
        // The opener is always recognised; a forgotten one inside the window is only counted.
        assert!(decide(&mut s, &claim(T0, "first"), NOW)
            .unwrap_err()
            .message
            .contains("being published"));
        let step = plan_confirm(s.as_ref(), &claim(T0, "first"), alert(T0));
        apply(&mut s, step);
        assert_eq!(
            decide(&mut s, &claim(T0, "first"), NOW).unwrap().0,
            Decision::Redelivery
        );
        assert_eq!(
            decide(&mut s, &claim(T0 + 1, "e0"), NOW).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
    }

    #[test]
    fn expiry_is_counted_from_the_later_of_window_end_and_now() {
        let w = Window {
            open_ms: NOW,
            window_ms: W,
            ..Window::default()
        };
        assert_eq!(expiry_secs(&w, NOW), (NOW + 3 * W + DAY_MS) / 1000);
        assert_eq!(
            expiry_secs(&w, NOW + 10 * W),
            (NOW + 12 * W + DAY_MS) / 1000
        );
    }

    fn critical(t: i64, id: &str) -> Claim {
        let mut c = claim(t, id);
        c.severity = Severity::Critical;
        c
    }

    fn escalated(open: i64) -> Decision {
        Decision::Escalated {
            window_start_ms: open,
            severity: Severity::Critical,
            previous: Severity::High,
        }
    }

    #[test]
    fn a_worse_match_alerts_once_and_is_redriven_like_the_first_alert() {
        let mut s = None;
        let first = claim(T0, "a");
        let d = decide(&mut s, &first, NOW).unwrap().0;
        let step = plan_confirm(s.as_ref(), &first, d);
        apply(&mut s, step);
        let worse = critical(T0 + 10, "b");
        assert_eq!(decide(&mut s, &worse, NOW).unwrap().0, escalated(T0));
        assert_eq!(
            s.as_ref().unwrap().window.severity_sent(),
            Severity::Critical
        );
        // While it is published, its retry waits; another critical is counted.
        assert!(decide(&mut s, &worse, NOW + 1)
            .unwrap_err()
            .message
            .contains("escalated alert"));
        assert_eq!(
            decide(&mut s, &critical(T0 + 11, "c"), NOW + 1).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        // Its publication failed: released, the retry alerts again (same alertId).
        let step = plan_release(s.as_ref(), &worse, escalated(T0), NOW + 2);
        apply(&mut s, step);
        assert_eq!(decide(&mut s, &worse, NOW + 3).unwrap().0, escalated(T0));
        let step = plan_confirm(s.as_ref(), &worse, escalated(T0));
        apply(&mut s, step);
        assert_eq!(s.as_ref().unwrap().escalation, None);
        assert_eq!(
            decide(&mut s, &worse, NOW + 4).unwrap().0,
            Decision::Redelivery
        );
        assert_eq!(
            decide(&mut s, &claim(T0 + 20, "d"), NOW + 4).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            },
            "a high after a critical is counted"
        );
    }

    #[test]
    fn an_abandoned_worse_alert_is_redriven_by_the_next_as_bad_match() {
        let mut s = None;
        let first = claim(T0, "a");
        let d = decide(&mut s, &first, NOW).unwrap().0;
        let step = plan_confirm(s.as_ref(), &first, d);
        apply(&mut s, step);
        decide(&mut s, &critical(T0 + 10, "b"), NOW).unwrap();
        // The claiming invocation crashed; after the lease a high one is counted, a
        // critical one re-drives the alert.
        assert!(matches!(
            decide(&mut s, &claim(T0 + 11, "c"), NOW + LEASE).unwrap().0,
            Decision::Suppressed { .. }
        ));
        assert_eq!(
            decide(&mut s, &critical(T0 + 12, "d"), NOW + LEASE)
                .unwrap()
                .0,
            escalated(T0)
        );
        assert_eq!(
            s.as_ref().unwrap().escalation.as_ref().unwrap().event_id,
            "d"
        );
    }

    #[test]
    fn only_the_same_record_is_a_redelivery() {
        let mut s = None;
        let first = claim(T0, "a");
        let d = decide(&mut s, &first, NOW).unwrap().0;
        let step = plan_confirm(s.as_ref(), &first, d);
        apply(&mut s, step);
        let mut reused = claim(T0 + 5, "a");
        reused.fingerprint = Some(crate::dedup::test_fingerprint("other content"));
        assert_eq!(
            decide(&mut s, &reused, NOW).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        assert_eq!(
            decide(&mut s, &reused, NOW).unwrap().0,
            Decision::Redelivery
        );
        let mut anonymous = claim(T0 + 6, "unknown");
        anonymous.fingerprint = None;
        for _ in 0..2 {
            assert_eq!(
                decide(&mut s, &anonymous, NOW).unwrap().0,
                Decision::Suppressed {
                    window_start_ms: T0
                },
                "never a redelivery"
            );
        }
        assert_eq!(s.as_ref().unwrap().window.suppressed, 3);
        // An item written before fingerprints: its records match whatever their content.
        let mut old = s.clone().unwrap();
        old.first_fingerprint = None;
        old.seen = vec![Seen {
            event_id: "z".into(),
            fingerprint: None,
        }];
        let mut old = Some(old);
        assert_eq!(
            decide(&mut old, &claim(T0 + 7, "z"), NOW).unwrap().0,
            Decision::Redelivery
        );
    }
}
