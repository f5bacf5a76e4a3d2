//! `trailwatch scan`: the whole pipeline over local files and directories.
//!
//! Files are read in parallel (`--jobs`), then every match is decided against one
//! in-memory dedup store in (eventTime, eventID) order, so the alerts do not depend
//! on the number of jobs or the order of the paths. Roll-ups of the windows that
//! suppressed matches are printed at the end. `s3://` inputs are read by
//! [`crate::history`] and decided together with the local ones ([`crate::scan`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::detect::{Detector, ObjectReport};
use crate::pipeline::Alerter;
use crate::scan::{decide, Collected, ScanSummary};

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
/// `.json` files, in name order, following symbolic links), `-` for standard input.
/// Unreadable paths are returned as failures, not fatal. A link back to a folder
/// being walked is not followed again: it is reported once on stderr and skipped
/// (its files are already being read).
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
    let entries = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.loop_ancestor().is_some() => {
                eprintln!("trailwatch: warning: {e}: not followed");
                continue;
            }
            Err(e) => {
                let path = e.path().unwrap_or(dir).display().to_string();
                let cause = e
                    .io_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                failures.push(format!("{path}: {cause}"));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if !(name.ends_with(".json.gz") || name.ends_with(".json")) {
            continue;
        }
        match entry.metadata() {
            Ok(meta) => inputs.push(Input::File {
                path: entry.into_path(),
                size: meta.len(),
            }),
            Err(e) => failures.push(format!("{}: {e}", entry.path().display())),
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
    read_inputs_with(inputs, jobs, progress, |input| read_one(detector, input))
}

/// [`read_inputs`] with the per-input reader given: a panic in `read` becomes that
/// input's failure and the other inputs are still read.
fn read_inputs_with(
    inputs: &[Input],
    jobs: usize,
    progress: bool,
    read: impl Fn(&Input) -> ObjectReport + Sync,
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
                let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(input)))
                    .unwrap_or_else(|_| internal_failure(&input.name()));
                if let Input::File { size, .. } = input {
                    bar.inc(*size);
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(report);
            });
        }
    });
    bar.finish_and_clear();
    // Every input has a report: one a worker never delivered (it died outside the
    // per-file guard) is that input's failure, never a silent gap.
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .zip(inputs)
        .map(|(report, input)| report.unwrap_or_else(|| internal_failure(&input.name())))
        .collect()
}

fn internal_failure(name: &str) -> ObjectReport {
    ObjectReport::failed(
        name,
        crate::decode::DecodeError::Io(std::io::Error::other("internal error while reading")),
    )
}

fn read_one(detector: &Detector, input: &Input) -> ObjectReport {
    let name = input.name();
    match input {
        Input::Stdin => detector.detect(std::io::stdin().lock(), &name),
        Input::File { path, .. } => match std::fs::File::open(path) {
            Ok(file) => detector.detect(file, &name),
            Err(e) => ObjectReport::failed(&name, e.into()),
        },
    }
}

/// Reads local files and directories (and `-`) into their matches, before dedup:
/// [`crate::scan::decide`] then decides them, together with the matches of any
/// `s3://` inputs, in one event-time order.
pub async fn read_local(
    detector: &Detector,
    paths: &[PathBuf],
    jobs: usize,
    progress: bool,
) -> Collected {
    let (inputs, failures) = collect_inputs(paths);
    let reports = {
        let detector = detector.clone();
        let inputs = inputs.clone();
        let names: Vec<String> = inputs.iter().map(Input::name).collect();
        tokio::task::spawn_blocking(move || read_inputs(&detector, &inputs, jobs, progress))
            .await
            .unwrap_or_else(|_| names.iter().map(|name| internal_failure(name)).collect())
    };
    let mut collected = Collected {
        failures,
        ..Collected::default()
    };
    for report in reports {
        collected.counters.add_object(&report);
        if let Some(error) = &report.error {
            collected
                .failures
                .push(format!("{}: {error}", report.source));
        }
        collected.matches.extend(report.matches);
    }
    collected
}

/// Runs a whole scan of local paths: read, decide in event-time order, publish,
/// roll up.
pub async fn run(
    detector: &Detector,
    alerter: &Alerter,
    paths: &[PathBuf],
    jobs: usize,
    progress: bool,
) -> ScanSummary {
    let started = Instant::now();
    let collected = read_local(detector, paths, jobs, progress).await;
    decide(alerter, collected, started).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_to_a_parent_folder_is_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("AWSLogs/1/CloudTrail/us-east-1/2024/03/15");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("a.json.gz"), b"x").unwrap();
        std::fs::write(day.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path(), day.join("loop")).unwrap();
        let (inputs, failures) = collect_inputs(&[dir.path().to_path_buf()]);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(inputs.len(), 1, "{inputs:?}");
        assert_eq!(
            inputs[0].name(),
            day.join("a.json.gz").display().to_string()
        );
    }

    #[test]
    fn a_reader_that_panics_fails_its_input_only() {
        let inputs: Vec<Input> = ["a", "boom", "c"]
            .iter()
            .map(|name| Input::File {
                path: PathBuf::from(name),
                size: 0,
            })
            .collect();
        let reports = read_inputs_with(&inputs, 2, false, |input| {
            let name = input.name();
            assert_ne!(name, "boom", "simulated reader bug");
            ObjectReport::failed(&name, std::io::Error::other("read").into())
        });
        let errors: Vec<String> = reports
            .iter()
            .map(|r| format!("{}: {}", r.source, r.error.as_ref().unwrap()))
            .collect();
        assert_eq!(
            errors,
            [
                "a: read failed: read",
                "boom: read failed: internal error while reading",
                "c: read failed: read"
            ]
        );
    }
}
