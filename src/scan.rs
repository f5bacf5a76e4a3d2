//! What every scan shares, local files and `s3://` history alike: the reads of
//! many objects collected before anything is decided ([`Collected`]), then
//! decided together ([`decide`]) into a [`ScanSummary`].
//!
//! Dedup needs every match in (eventTime, eventID) order, so a scan publishes
//! nothing until all its objects are read: its alerts are then the same whatever
//! the number of jobs, the order of the paths, or whether a file was read from
//! disk or from the bucket. [`crate::files`] and [`crate::history`] both end
//! here; neither imports the other.

use std::time::{Duration, Instant};

use crate::counters::Counters;
use crate::detect::Match;
use crate::pipeline::Alerter;
use crate::time::now_ms;

/// Everything read, before dedup.
#[derive(Debug, Default)]
pub struct Collected {
    pub counters: Counters,
    pub matches: Vec<Match>,
    pub failures: Vec<String>,
    /// Prefixes listed by this run.
    pub prefixes_listed: u64,
    /// Prefixes taken from the checkpoint instead.
    pub prefixes_resumed: u64,
}

impl Collected {
    /// Adds another part (for example a local scan's reports).
    pub fn absorb(&mut self, counters: &Counters, matches: Vec<Match>, failures: Vec<String>) {
        self.counters.absorb(counters);
        self.matches.extend(matches);
        self.failures.extend(failures);
    }
}

/// What a scan did.
#[derive(Debug, Default)]
pub struct ScanSummary {
    pub files: usize,
    pub counters: Counters,
    /// `path: cause` for every file that failed.
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

impl ScanSummary {
    /// The stderr summary line.
    pub fn line(&self) -> String {
        let c = &self.counters;
        let secs = self.elapsed.as_secs_f64();
        let mbps = if secs > 0.0 {
            c.decoded_bytes as f64 / 1e6 / secs
        } else {
            0.0
        };
        format!(
            "files={} bytes={} records={} lenient={} matches={} alerts={} suppressed={} redeliveries={} allowed={} rollups={} errors={} elapsed={:.3}s throughput={:.1}MB/s",
            self.files,
            c.decoded_bytes,
            c.records,
            c.lenient_records,
            c.matches,
            c.alerts,
            c.suppressed,
            c.redeliveries,
            c.allowed,
            c.rollups,
            self.failures.len(),
            secs,
            mbps
        )
    }
}

/// Decides and publishes the collected matches and the roll-ups, like the end of
/// a local scan (the alerter sorts the matches by eventTime and eventID).
pub async fn decide(alerter: &Alerter, collected: Collected, started: Instant) -> ScanSummary {
    let mut counters = collected.counters;
    let mut failures = collected.failures;
    let now = now_ms();
    for failure in alerter.process(collected.matches, now, &mut counters).await {
        failures.push(failure.to_string());
    }
    for failure in alerter.flush_rollups(now, true, &mut counters).await {
        failures.push(failure.to_string());
    }
    ScanSummary {
        files: counters.objects as usize,
        counters,
        failures,
        elapsed: started.elapsed(),
    }
}
