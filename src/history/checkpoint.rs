//! `--checkpoint FILE`: the prefixes a history scan has finished, so a re-run after
//! Ctrl-C or a crash lists only the rest.
//!
//! The file is NDJSON, append-only, one line per finished prefix, each written
//! and `fsync`ed before the next is recorded. The first line names the scan (its
//! arguments and the resolved time window, so `--since 7d` means the same days on
//! the re-run). A line torn by a crash is dropped on reading.
//!
//! Dedup decides matches in (eventTime, eventID) order over the whole scan, so a
//! resumed scan needs the matches of the finished prefixes too: each line stores
//! its prefix's matching records, verbatim, with their object and offset, and the
//! counters. On resume they are run through the detector again (the same rules
//! give the same matches) and decided together with the new ones: the alerts
//! equal an uninterrupted run's. No alert is published before the listing is
//! done, so an interrupted run has published nothing twice.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::scan::PrefixOutcome;
use super::window::Window;
use crate::counters::Counters;
use crate::detect::{Detector, Match};

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("checkpoint {}: {message}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    trailwatch_checkpoint: u32,
    scan: Value,
    window: Window,
}

/// A matching record of a finished prefix, as it was in its object.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredMatch {
    pub source: String,
    pub offset: u64,
    pub raw: Box<RawValue>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    prefix: String,
    counters: Counters,
    matches: Vec<StoredMatch>,
}

/// What the finished prefixes produced.
#[derive(Debug, Default)]
pub struct Restored {
    pub counters: Counters,
    pub matches: Vec<StoredMatch>,
}

/// Appends finished prefixes.
pub struct Writer {
    path: PathBuf,
    file: File,
}

/// An open checkpoint.
pub struct Checkpoint {
    pub done: HashSet<String>,
    pub restored: Restored,
    /// The window the scan was started with (resolved once, kept across re-runs).
    pub window: Window,
    pub writer: Writer,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint of the scan described by `scan`. An
    /// existing checkpoint of another scan is an error, never silently reused.
    pub fn open(path: &Path, scan: &Value, window: Window) -> Result<Checkpoint, CheckpointError> {
        let error = |message: String| CheckpointError {
            path: path.to_owned(),
            message,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| error(e.to_string()))?;
        let mut lines = Vec::new();
        let mut good_len = 0u64;
        {
            let mut reader = BufReader::new(&file);
            loop {
                let mut line = String::new();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| error(e.to_string()))?;
                if n == 0 {
                    break;
                }
                if !line.ends_with('\n') {
                    // Torn by a crash before its fsync: that prefix is listed again.
                    break;
                }
                good_len += n as u64;
                lines.push(line);
            }
        }
        let mut checkpoint = Checkpoint {
            done: HashSet::new(),
            restored: Restored::default(),
            window,
            writer: Writer {
                path: path.to_owned(),
                file: file.try_clone().map_err(|e| error(e.to_string()))?,
            },
        };
        let Some((first, entries)) = lines.split_first() else {
            let header = Header {
                trailwatch_checkpoint: VERSION,
                scan: scan.clone(),
                window,
            };
            file.set_len(0).map_err(|e| error(e.to_string()))?;
            checkpoint.writer.append(&header)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // The new file's directory entry must survive a crash too.
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| error(e.to_string()))?;
            }
            return Ok(checkpoint);
        };
        let header: Header = serde_json::from_str(first)
            .map_err(|e| error(format!("not a trailwatch checkpoint: {e}")))?;
        if header.trailwatch_checkpoint != VERSION {
            return Err(error(format!(
                "written by checkpoint version {}, this is version {VERSION}",
                header.trailwatch_checkpoint
            )));
        }
        if header.scan != *scan {
            return Err(error(format!(
                "written for another scan ({}), not this one ({scan}); delete it or repeat the same arguments",
                header.scan
            )));
        }
        checkpoint.window = header.window;
        for (n, line) in entries.iter().enumerate() {
            let entry: Entry = serde_json::from_str(line)
                .map_err(|e| error(format!("line {} is corrupt: {e}", n + 2)))?;
            if checkpoint.done.insert(entry.prefix) {
                checkpoint.restored.counters.absorb(&entry.counters);
                checkpoint.restored.matches.extend(entry.matches);
            }
        }
        file.set_len(good_len).map_err(|e| error(e.to_string()))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| error(e.to_string()))?;
        Ok(checkpoint)
    }

    /// The matches of the finished prefixes, derived again from their records.
    pub fn restored_matches(&self, detector: &Detector) -> Vec<Match> {
        let mut matches = Vec::new();
        for stored in &self.restored.matches {
            let doc = format!("{{\"Records\":[{}]}}", stored.raw.get());
            let report = detector.detect(doc.as_bytes(), &stored.source);
            matches.extend(report.matches.into_iter().map(|mut m| {
                m.offset = stored.offset;
                m
            }));
        }
        matches
    }
}

impl Writer {
    /// Records a finished prefix and waits until it is on disk.
    pub fn record(&mut self, outcome: &PrefixOutcome) -> Result<(), CheckpointError> {
        // One stored record per (object, offset), however many rules it matched.
        let mut matches: Vec<StoredMatch> = Vec::new();
        for m in &outcome.matches {
            let known = matches
                .iter()
                .any(|s| s.offset == m.offset && s.source == m.source);
            // A record too large for an alert's `event` is stored as the fields
            // it was evaluated on: evaluated again, it matches the same way.
            let raw = m
                .raw
                .clone()
                .or_else(|| serde_json::value::to_raw_value(&m.record).ok());
            if let (false, Some(raw)) = (known, raw) {
                matches.push(StoredMatch {
                    source: m.source.clone(),
                    offset: m.offset,
                    raw,
                });
            }
        }
        self.append(&Entry {
            prefix: outcome.prefix.clone(),
            counters: outcome.counters.clone(),
            matches,
        })
    }

    fn append(&mut self, value: &impl Serialize) -> Result<(), CheckpointError> {
        let error = |e: std::io::Error| CheckpointError {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let mut line = serde_json::to_vec(value).map_err(|e| CheckpointError {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(error)?;
        self.file.sync_data().map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Limits;
    use crate::rule::RuleSet;
    use serde_json::json;

    const EXPORT: &str = r#"{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventTime":"2024-03-01T10:00:00Z","eventID":"e1","awsRegion":"us-east-1","recipientAccountId":"111111111111"}"#;

    fn outcome(prefix: &str) -> PrefixOutcome {
        let detector = Detector::new(RuleSet::embedded(), Limits::default());
        let doc = format!(r#"{{"Records":[{EXPORT}]}}"#);
        let report = detector.detect(doc.as_bytes(), "s3://b/k");
        let mut counters = Counters::default();
        counters.add_object(&report);
        PrefixOutcome {
            prefix: prefix.into(),
            counters,
            matches: report.matches,
            failures: Vec::new(),
        }
    }

    #[test]
    fn finished_prefixes_and_their_matches_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let scan = json!({"url": "s3://b/"});
        let window = Window {
            since_ms: Some(5),
            until_ms: None,
        };
        let mut cp = Checkpoint::open(&path, &scan, window).unwrap();
        assert!(cp.done.is_empty());
        cp.writer.record(&outcome("p1/")).unwrap();
        cp.writer.record(&outcome("p2/")).unwrap();
        drop(cp);
        // A torn last line, as a crash mid-write leaves it.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"prefix\":\"p3/\",\"coun").unwrap();
        drop(f);

        let later = Window::default();
        let cp = Checkpoint::open(&path, &scan, later).unwrap();
        assert_eq!(cp.done, ["p1/".to_owned(), "p2/".to_owned()].into());
        assert_eq!(cp.window, window, "the first run's window is kept");
        assert_eq!(cp.restored.counters.objects, 2);
        let detector = Detector::new(RuleSet::embedded(), Limits::default());
        let matches = cp.restored_matches(&detector);
        assert_eq!(matches.len(), 2);
        let original = &outcome("x").matches[0];
        assert_eq!(
            matches[0].raw.as_ref().map(|r| r.get()),
            original.raw.as_ref().map(|r| r.get())
        );
        assert_eq!(matches[0].offset, original.offset);
        assert_eq!(matches[0].event_id, "e1");
        drop(cp);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "the torn line was cut off");
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn another_scans_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        Checkpoint::open(&path, &json!({"url": "s3://a/"}), Window::default()).unwrap();
        let err = Checkpoint::open(&path, &json!({"url": "s3://b/"}), Window::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("another scan"), "{err}");
        std::fs::write(&path, "garbage\n").unwrap();
        let err = Checkpoint::open(&path, &json!({"url": "s3://a/"}), Window::default())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("not a trailwatch checkpoint"),
            "{err}"
        );
    }
}
