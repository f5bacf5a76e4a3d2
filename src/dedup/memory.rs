//! In-memory windows, for the command line and `trailwatch invoke`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    transition, Claim, Decision, DedupError, DedupKey, DedupStore, Fingerprint, Rollup, Transition,
    Window,
};

#[derive(Default)]
struct KeyState {
    window: Option<Window>,
    /// Every record seen for the key, by `eventID` and content (redelivery
    /// detection; records without `eventID` are not kept).
    seen: HashSet<(String, Fingerprint)>,
    /// Closed windows whose roll-up is due.
    closed: Vec<Window>,
}

/// Windows kept in a process-local map.
#[derive(Default)]
pub struct MemoryStore {
    keys: Mutex<HashMap<DedupKey, KeyState>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DedupKey, KeyState>> {
        // A panic while holding the lock cannot leave a half-updated state: every
        // update below is a single assignment after the decision is computed.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl DedupStore for MemoryStore {
    async fn decide(&self, claim: &Claim) -> Result<Decision, DedupError> {
        let mut keys = self.lock();
        let state = keys.entry(claim.key.clone()).or_default();
        if let Some(fingerprint) = &claim.fingerprint {
            if !state
                .seen
                .insert((claim.event_id.clone(), fingerprint.clone()))
            {
                return Ok(Decision::Redelivery);
            }
        }
        let step = transition(state.window.as_ref(), claim);
        let decision = step.decision();
        match step {
            Transition::Open { new, closed } => {
                state.closed.extend(closed.filter(|w| w.suppressed > 0));
                state.window = Some(new);
            }
            Transition::Suppress { window } | Transition::Escalate { window, .. } => {
                state.window = Some(window)
            }
            Transition::AlertLate { .. } => {}
        }
        Ok(decision)
    }

    async fn release(&self, claim: &Claim, decision: Decision) -> Result<(), DedupError> {
        let mut keys = self.lock();
        let Some(state) = keys.get_mut(&claim.key) else {
            return Ok(());
        };
        if let Some(fingerprint) = &claim.fingerprint {
            state
                .seen
                .remove(&(claim.event_id.clone(), fingerprint.clone()));
        }
        if let Decision::Escalated {
            window_start_ms,
            severity,
            previous,
        } = decision
        {
            // The window forgets the severity it did not send after all.
            if let Some(w) = state.window.as_mut() {
                if w.open_ms == window_start_ms && w.severity_sent() == severity {
                    w.severity_sent = Some(previous);
                }
            }
        }
        if let Decision::Alert { window_start_ms } = decision {
            let opened_here = state.window.as_ref().is_some_and(|w| {
                w.open_ms == window_start_ms && w.first_event_id == claim.event_id
            });
            if opened_here {
                // Give the key back its previous window, if closing it was due to this claim.
                state.window = match state.closed.last() {
                    Some(prev) if prev.end_ms() <= window_start_ms => state.closed.pop(),
                    _ => None,
                };
            }
        }
        Ok(())
    }

    async fn take_rollups(&self, now_ms: i64, all: bool) -> Result<Vec<Rollup>, DedupError> {
        let mut keys = self.lock();
        let mut out = Vec::new();
        let mut names: Vec<DedupKey> = keys.keys().cloned().collect();
        names.sort();
        for key in names {
            let state = keys.get_mut(&key).expect("key listed above");
            for window in state.closed.drain(..) {
                out.extend(window.rollup(&key));
            }
            if let Some(window) = state.window.as_mut() {
                if all || window.end_ms() <= now_ms {
                    out.extend(window.rollup(&key));
                    window.clear_suppressed();
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::test_claim as claim;

    const W: i64 = 3_600_000;

    #[tokio::test]
    async fn redeliveries_neither_alert_nor_count() {
        let store = MemoryStore::new();
        assert!(matches!(
            store.decide(&claim(0, "a")).await.unwrap(),
            Decision::Alert { .. }
        ));
        assert_eq!(
            store.decide(&claim(0, "a")).await.unwrap(),
            Decision::Redelivery
        );
        assert!(matches!(
            store.decide(&claim(1, "b")).await.unwrap(),
            Decision::Suppressed { .. }
        ));
        assert_eq!(
            store.decide(&claim(1, "b")).await.unwrap(),
            Decision::Redelivery
        );
        let rollups = store.take_rollups(0, true).await.unwrap();
        assert_eq!(rollups.len(), 1);
        assert_eq!(
            rollups[0].window.suppressed, 1,
            "the redelivery is not counted"
        );
    }

    #[tokio::test]
    async fn the_same_event_id_with_other_content_or_no_event_id_is_not_a_redelivery() {
        let store = MemoryStore::new();
        store.decide(&claim(0, "a")).await.unwrap();
        let mut forged = claim(2 * W, "a");
        forged.fingerprint = Some(crate::dedup::test_fingerprint("other content"));
        assert!(matches!(
            store.decide(&forged).await.unwrap(),
            Decision::Alert { .. }
        ));
        assert_eq!(store.decide(&forged).await.unwrap(), Decision::Redelivery);
        let mut anonymous = claim(4 * W, "unknown");
        anonymous.fingerprint = None;
        assert!(matches!(
            store.decide(&anonymous).await.unwrap(),
            Decision::Alert { .. }
        ));
        assert!(
            matches!(
                store.decide(&anonymous).await.unwrap(),
                Decision::Suppressed { .. }
            ),
            "never a redelivery: counted"
        );
    }

    #[tokio::test]
    async fn a_worse_match_alerts_once_per_window_and_a_failed_one_again() {
        use crate::rule::Severity;
        let store = MemoryStore::new();
        store.decide(&claim(0, "high")).await.unwrap();
        let mut critical = claim(60_000, "critical");
        critical.severity = Severity::Critical;
        let escalated = store.decide(&critical).await.unwrap();
        assert_eq!(
            escalated,
            Decision::Escalated {
                window_start_ms: 0,
                severity: Severity::Critical,
                previous: Severity::High
            }
        );
        // Its publication failed: the retry alerts again.
        store.release(&critical, escalated).await.unwrap();
        assert_eq!(store.decide(&critical).await.unwrap(), escalated);
        assert!(matches!(
            store.decide(&claim(120_000, "high-2")).await.unwrap(),
            Decision::Suppressed { .. }
        ));
        let mut critical_2 = claim(180_000, "critical-2");
        critical_2.severity = Severity::Critical;
        assert!(matches!(
            store.decide(&critical_2).await.unwrap(),
            Decision::Suppressed { .. }
        ));
    }

    #[tokio::test]
    async fn keys_are_independent() {
        let store = MemoryStore::new();
        let mut other = claim(0, "x");
        other.key = DedupKey::new("R", vec!["eu-west-1".into(), "1".into()]);
        assert!(matches!(
            store.decide(&claim(0, "a")).await.unwrap(),
            Decision::Alert { .. }
        ));
        assert!(matches!(
            store.decide(&other).await.unwrap(),
            Decision::Alert { .. }
        ));
    }

    #[tokio::test]
    async fn released_alert_alerts_again_on_retry() {
        let store = MemoryStore::new();
        let first = store.decide(&claim(0, "a")).await.unwrap();
        store.release(&claim(0, "a"), first).await.unwrap();
        assert_eq!(store.decide(&claim(0, "a")).await.unwrap(), first);
        assert!(matches!(
            store.decide(&claim(5, "b")).await.unwrap(),
            Decision::Suppressed { .. }
        ));
    }

    #[tokio::test]
    async fn release_restores_the_previous_window() {
        let store = MemoryStore::new();
        store.decide(&claim(0, "a")).await.unwrap();
        store.decide(&claim(1, "b")).await.unwrap();
        let second = store.decide(&claim(2 * W, "c")).await.unwrap();
        store.release(&claim(2 * W, "c"), second).await.unwrap();
        // The first window is current again: a match inside it is suppressed.
        assert!(matches!(
            store.decide(&claim(2, "d")).await.unwrap(),
            Decision::Suppressed { window_start_ms: 0 }
        ));
    }

    #[tokio::test]
    async fn rollups_are_due_when_windows_close_and_are_returned_once() {
        let store = MemoryStore::new();
        store.decide(&claim(0, "a")).await.unwrap();
        store.decide(&claim(10, "b")).await.unwrap();
        store.decide(&claim(20, "c")).await.unwrap();
        assert!(
            store.take_rollups(W - 1, false).await.unwrap().is_empty(),
            "window still open"
        );
        let due = store.take_rollups(W, false).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].window.suppressed, 2);
        assert!(store.take_rollups(W, false).await.unwrap().is_empty());
    }
}
