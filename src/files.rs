//! `trailwatch scan`: the whole pipeline over local files and directories.
//!
//! Files are read in parallel (`--jobs`), then every match is decided against one
//! in-memory dedup store in (eventTime, eventID) order, so the alerts do not depend
//! on the number of jobs or the order of the paths. Roll-ups of the windows that
//! suppressed matches are printed at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::detect::{Detector, ObjectReport};
use crate::pipeline::{Alerter, Counters};
use crate::time::now_ms;

/// One input of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File { path: PathBuf, size: u64 },
    Stdin,
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::File { path, .. } => path.display().to_string(),
            Input::Stdin => "-".into(),
        }
    }
}

/// Expands the paths: files as given, directories recursively (`.json.gz` and
/// `.json` files, in name order), `-` for standard input. Unreadable paths are
/// returned as failures, not fatal.
pub fn collect_inputs(paths: &[PathBuf]) -> (Vec<Input>, Vec<String>) {
    let mut inputs = Vec::new();
    let mut failures = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            inputs.push(Input::Stdin);
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut inputs, &mut failures),
            Ok(meta) => inputs.push(Input::File {
                path: path.clone(),
                size: meta.len(),
            }),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    (inputs, failures)
}

fn walk(dir: &Path, inputs: &mut Vec<Input>, failures: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            failures.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    entries.sort();
    for path in entries {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, inputs, failures),
            Ok(meta) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                if name.ends_with(".json.gz") || name.ends_with(".json") {
                    inputs.push(Input::File {
                        path,
                        size: meta.len(),
                    });
                }
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
}

/// Reads every input on `jobs` threads; reports come back in input order.
pub fn read_inputs(
    detector: &Detector,
    inputs: &[Input],
    jobs: usize,
    progress: bool,
) -> Vec<ObjectReport> {
    let total: u64 = inputs
        .iter()
        .map(|i| match i {
            Input::File { size, .. } => *size,
            Input::Stdin => 0,
        })
        .sum();
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ObjectReport>>> =
        Mutex::new((0..inputs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, inputs.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(input) = inputs.get(index) else {
                    break;
                };
                let report = read_one(detector, input);
                if let Input::File { size, .. } = input {
                    bar.inc(*size);
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(report);
            });
        }
    });
    bar.finish_and_clear();
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

fn read_one(detector: &Detector, input: &Input) -> ObjectReport {
    let name = input.name();
    let read = || match input {
        Input::Stdin => detector.detect(std::io::stdin().lock(), &name),
        Input::File { path, .. } => match std::fs::File::open(path) {
            Ok(file) => detector.detect(file, &name),
            Err(e) => ObjectReport::failed(&name, e.into()),
        },
    };
    // A panic on one file must not take the others down: it becomes that file's error.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        ObjectReport::failed(
            &name,
            crate::decode::DecodeError::Io(std::io::Error::other("internal error while reading")),
        )
    })
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
            "files={} bytes={} records={} matches={} alerts={} suppressed={} redeliveries={} allowed={} rollups={} errors={} elapsed={:.3}s throughput={:.1}MB/s",
            self.files,
            c.decoded_bytes,
            c.records,
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

/// Runs a whole scan: read, decide in event-time order, publish, roll up.
pub async fn run(
    detector: &Detector,
    alerter: &Alerter,
    paths: &[PathBuf],
    jobs: usize,
    progress: bool,
) -> ScanSummary {
    let started = Instant::now();
    let (inputs, mut failures) = collect_inputs(paths);
    let reports = {
        let detector = detector.clone();
        let inputs = inputs.clone();
        tokio::task::spawn_blocking(move || read_inputs(&detector, &inputs, jobs, progress))
            .await
            .unwrap_or_default()
    };
    let mut counters = Counters::default();
    let mut matches = Vec::new();
    for report in reports {
        counters.add_object(&report);
        if let Some(error) = &report.error {
            failures.push(format!("{}: {error}", report.source));
        }
        matches.extend(report.matches);
    }
    let now = now_ms();
    for failure in alerter.process(matches, now, &mut counters).await {
        failures.push(format!("{}: {}", failure.source, failure.message));
    }
    for failure in alerter.flush_rollups(now, true, &mut counters).await {
        failures.push(format!("{}: {}", failure.source, failure.message));
    }
    ScanSummary {
        files: inputs.len(),
        counters,
        failures,
        elapsed: started.elapsed(),
    }
}
