//! The streaming history scan: planned prefixes are listed concurrently, their
//! objects fetched and decoded concurrently (`jobs` at a time, one permit per
//! object in flight), and every object goes through the same [`Detector`] as a
//! local file.
//!
//! Memory is constant in the number of objects: at most `jobs` prefixes are open,
//! each holding one listing page, and only the matches are kept. Dedup needs all
//! matches in (eventTime, eventID) order, so alerts are decided once the listing is
//! done ([`crate::scan::decide`]), exactly as `trailwatch scan` does for local
//! files. Each object is read by [`crate::read::read_object`], as the Lambda
//! handler reads it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::layout::{Filters, Plan};
use super::list::Lister;
use crate::counters::Counters;
use crate::detect::{Detector, Match, ObjectReport};
use crate::read::read_object;
use crate::scan::Collected;
use crate::source::{ObjectRef, ObjectSource, SourceError};

/// Live counts of a running scan, for a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    pub prefixes_total: AtomicU64,
    pub prefixes_done: AtomicU64,
    pub objects: AtomicU64,
    /// Bytes fetched (object sizes as listed, usually gzip).
    pub bytes: AtomicU64,
    /// Alert candidates; alerts are decided from them when the listing is done.
    pub matches: AtomicU64,
    pub failures: AtomicU64,
    finished: AtomicBool,
}

impl Progress {
    /// The bar's message: objects, bytes, matches, errors.
    pub fn message(&self) -> String {
        format!(
            "objects={} bytes={} matches={} errors={}",
            self.objects.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.matches.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Draws an indicatif bar over prefixes until [`ProgressBar::finish`]. Call from
    /// inside the tokio runtime.
    pub fn bar(self: &Arc<Self>) -> ProgressBar {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} prefixes {elapsed_precise} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let progress = Arc::clone(self);
        let drawn = bar.clone();
        let ticker = tokio::spawn(async move {
            while !progress.finished.load(Ordering::Relaxed) {
                drawn.set_length(progress.prefixes_total.load(Ordering::Relaxed));
                drawn.set_position(progress.prefixes_done.load(Ordering::Relaxed));
                drawn.set_message(progress.message());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ProgressBar {
            bar,
            progress: Arc::clone(self),
            ticker,
        }
    }
}

/// A drawn progress bar; [`ProgressBar::finish`] clears it.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
    progress: Arc<Progress>,
    ticker: tokio::task::JoinHandle<()>,
}

impl ProgressBar {
    pub async fn finish(self) {
        self.progress.finished.store(true, Ordering::Relaxed);
        let _ = self.ticker.await;
        self.bar.finish_and_clear();
    }
}

/// The parts a history scan runs with.
pub struct HistoryScan {
    pub lister: Arc<dyn Lister>,
    pub source: Arc<dyn ObjectSource>,
    pub detector: Arc<Detector>,
    /// Applied again to every listed key (a prefix given inside the layout is
    /// listed whole; digest and insight files are skipped).
    pub filters: Filters,
    /// Objects fetched and decoded at once (and prefixes open at once).
    pub jobs: usize,
    pub progress: Arc<Progress>,
    /// The current day (days since the epoch), the end of an open window.
    pub today: i64,
}

/// What one prefix produced.
#[derive(Debug, Default)]
pub struct PrefixOutcome {
    pub prefix: String,
    pub counters: Counters,
    pub matches: Vec<Match>,
    /// `s3://bucket/key: cause` (or the listing's error).
    pub failures: Vec<String>,
}

/// Lists every planned prefix not already in the checkpoint, reads its objects and
/// returns the matches. A prefix whose listing and objects all succeeded is
/// recorded in the checkpoint (with its matches) as soon as it is done; a prefix
/// with a failure is not, so a re-run retries it.
pub async fn collect(
    scan: &HistoryScan,
    plan: &Plan,
    checkpoint: Option<&mut Checkpoint>,
) -> Result<Collected, CheckpointError> {
    let mut out = Collected::default();
    let (done, mut writer) = match checkpoint {
        Some(checkpoint) => {
            out.counters.absorb(&checkpoint.restored.counters);
            out.matches = checkpoint.restored_matches(&scan.detector);
            out.prefixes_resumed = checkpoint.done.len() as u64;
            (Some(&checkpoint.done), Some(&mut checkpoint.writer))
        }
        None => (None, None),
    };
    let jobs = scan.jobs.max(1);
    let permits = Semaphore::new(jobs);
    let remaining = plan.len().saturating_sub(out.prefixes_resumed);
    scan.progress
        .prefixes_total
        .store(remaining, Ordering::Relaxed);
    let prefixes = plan
        .prefixes()
        .filter(|p| done.is_none_or(|done| !done.contains(p)));
    let mut outcomes = stream::iter(prefixes)
        .map(|prefix| scan_prefix(scan, &plan.bucket, prefix, &permits))
        .buffer_unordered(jobs);
    while let Some(outcome) = outcomes.next().await {
        out.prefixes_listed += 1;
        if outcome.failures.is_empty() {
            if let Some(writer) = writer.as_deref_mut() {
                writer.record(&outcome)?;
            }
        }
        out.counters.absorb(&outcome.counters);
        out.matches.extend(outcome.matches);
        out.failures.extend(outcome.failures);
    }
    Ok(out)
}

async fn scan_prefix(
    scan: &HistoryScan,
    bucket: &str,
    prefix: String,
    permits: &Semaphore,
) -> PrefixOutcome {
    let mut outcome = PrefixOutcome::default();
    let mut pages = scan.lister.pages(bucket, &prefix, false);
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                scan.progress.failures.fetch_add(1, Ordering::Relaxed);
                outcome.failures.push(e.to_string());
                break;
            }
        };
        let mut wanted = Vec::with_capacity(page.objects.len());
        for listed in page.objects {
            if scan.filters.admits_key(&listed.key, scan.today) {
                wanted.push(listed);
            } else {
                outcome.counters.skipped_keys += 1;
            }
        }
        let mut reads = stream::iter(wanted)
            .map(|listed| async move {
                let _permit = permits.acquire().await.ok();
                let object = ObjectRef {
                    bucket: bucket.to_owned(),
                    key: listed.key,
                };
                let report = read_object(scan.source.as_ref(), &scan.detector, &object).await;
                (listed.size, report)
            })
            .buffer_unordered(scan.jobs.max(1));
        while let Some((size, report)) = reads.next().await {
            scan.progress.objects.fetch_add(1, Ordering::Relaxed);
            scan.progress.bytes.fetch_add(size, Ordering::Relaxed);
            absorb_report(&mut outcome, report, &scan.progress);
        }
    }
    drop(pages);
    scan.progress.prefixes_done.fetch_add(1, Ordering::Relaxed);
    outcome.prefix = prefix;
    outcome
}

/// Counts one object the way the Lambda handler does: a missing object is
/// counted and skipped, any other failure names the object and its cause.
fn absorb_report(
    outcome: &mut PrefixOutcome,
    report: Result<ObjectReport, SourceError>,
    progress: &Progress,
) {
    match report {
        Ok(report) => {
            outcome.counters.add_object(&report);
            if let Some(error) = &report.error {
                progress.failures.fetch_add(1, Ordering::Relaxed);
                outcome.failures.push(format!("{}: {error}", report.source));
            }
            progress
                .matches
                .fetch_add(report.matches.len() as u64, Ordering::Relaxed);
            outcome.matches.extend(report.matches);
        }
        Err(SourceError::NotFound(object)) => {
            crate::events::object_missing(&mut outcome.counters, &object);
        }
        Err(e) => {
            progress.failures.fetch_add(1, Ordering::Relaxed);
            crate::events::fetch_failed(&mut outcome.counters, &e);
            outcome.failures.push(e.to_string());
        }
    }
}
