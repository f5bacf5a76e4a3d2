//! Seeded generator of realistic CloudTrail log files, with a manifest of what it
//! planted: the ground truth for the oracle tests and the corpus of `make bench`.
//!
//! Each file is a gzipped compact `{"Records":[...]}` document at the key CloudTrail
//! delivers it to:
//! `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<16 chars>.json.gz`.
//! Records come from several accounts and regions, with IAM users, assumed roles
//! (some cross-account), root and AWS services as callers, in bursts of one caller
//! as real trails have them, over S3, KMS, STS, EC2, RDS, Lambda, IAM, sign-in,
//! Secrets Manager and SQS. Strings carry non-ASCII text, quotes, backslashes and
//! tabs, so they are escaped in the JSON.
//!
//! Planted, each at `export_rate` per record:
//! - successful `rds:StartExportTask` (no `errorCode`): must alert ([`Manifest::alerts`]);
//! - failed `rds:StartExportTask` (with `errorCode`): must not ([`Manifest::failed`]);
//! - decoys holding the text `StartExportTask` that must not alert: the Application
//!   Discovery Service's own `StartExportTask`, an IAM policy document granting
//!   `rds:StartExportTask`, a CloudTrail `LookupEvents` query for it ([`Manifest::decoys`]).
//!
//! With `dup_rate`, a successful export is delivered again, byte for byte, in the next
//! file of the same account and region (CloudTrail's at-least-once delivery); those
//! with no later file are dropped. File sizes
//! follow a log-normal distribution. All randomness comes from one seeded splitmix64
//! stream and gzip headers carry no time or name, so one seed gives byte-identical
//! output.
//!
//! Used in-process by the tests (`support::corpus`) and, through `#[path]`, by the
//! `gen_corpus` example that `make bench` runs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};
use random::Rng;
use random::{Civil, DAY_MS, LETTERS_DIGITS, START_MS};
use records::{Generator, Kind, ACCOUNTS, REGIONS};
use serde::Serialize;

mod random;
mod records;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Records over all files (before redeliveries are added).
    pub events: usize,
    /// Number of log files.
    pub files: usize,
    /// Seed of the random stream.
    pub seed: u64,
    /// Per-record probability of a planted `StartExportTask` (30 % of them fail);
    /// decoys are planted at the same rate.
    pub export_rate: f64,
    /// Probability that a successful export is delivered again in the next file.
    pub dup_rate: f64,
    /// gzip level, 0-9.
    pub level: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            events: 10_000,
            files: 10,
            seed: 1,
            export_rate: 1e-4,
            dup_rate: 0.0,
            level: 6,
        }
    }
}

/// One planted record, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planted {
    pub aws_region: String,
    pub recipient_account_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_source: String,
    pub error_code: Option<String>,
    /// Path of the file holding it, relative to the output folder.
    pub file: String,
    /// A redelivery of a record already listed (same eventID, a later file).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Path relative to the output folder.
    pub file: String,
    /// Records in the file, redeliveries included.
    pub events: usize,
    pub bytes_uncompressed: u64,
    pub bytes_gz: u64,
}

/// Everything the generator planted, written as `manifest.json` beside the files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub seed: u64,
    /// Successful exports, one entry per delivery (redeliveries marked `duplicate`).
    pub alerts: Vec<Planted>,
    pub failed: Vec<Planted>,
    pub decoys: Vec<Planted>,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// eventIDs of the distinct successful exports.
    pub fn distinct_alerts(&self) -> std::collections::BTreeSet<String> {
        self.alerts
            .iter()
            .filter(|a| !a.duplicate)
            .map(|a| a.event_id.clone())
            .collect()
    }

    /// Records over all files.
    pub fn records(&self) -> usize {
        self.files.iter().map(|f| f.events).sum()
    }
}

/// Writes the corpus and `manifest.json` under `out` (created if missing).
pub fn generate(out: &Path, options: &Options) -> io::Result<Manifest> {
    let mut gen = Generator::new(options.seed, options.export_rate);
    let counts = file_sizes(&mut gen.rng, options.events, options.files);
    let mut manifest = Manifest {
        seed: options.seed,
        ..Manifest::default()
    };
    // Successful exports to deliver again, per (account, region): the next file of
    // the same trail prefix.
    let mut carry: std::collections::BTreeMap<(&str, &str), Vec<(String, Planted)>> =
        std::collections::BTreeMap::new();
    for (index, count) in counts.into_iter().enumerate() {
        let account = *gen.rng.pick(ACCOUNTS);
        let region = *gen.rng.pick(REGIONS);
        let start = START_MS + (index as i64 % 288) * 5 * 60_000 + (index as i64 / 288) * DAY_MS;
        let stamp = Civil::from_ms(start);
        let suffix = gen.rng.chars(16, LETTERS_DIGITS);
        let rel = format!(
            "AWSLogs/{account}/CloudTrail/{region}/{:04}/{:02}/{:02}/{account}_CloudTrail_{region}_{:04}{:02}{:02}T{:02}{:02}Z_{suffix}.json.gz",
            stamp.year, stamp.month, stamp.day, stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute
        );
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let pending = carry.remove(&(account, region)).unwrap_or_default();
        let mut writer = RecordWriter::create(&path, options.level)?;
        for _ in 0..count {
            let (record, planted) = gen.event(account, region, start);
            let text = record.to_string();
            writer.record(&text)?;
            if let Some(kind) = planted {
                let entry = Planted {
                    aws_region: record["awsRegion"].as_str().unwrap_or_default().to_owned(),
                    recipient_account_id: account.to_owned(),
                    event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
                    event_source: record["eventSource"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    error_code: record["errorCode"].as_str().map(str::to_owned),
                    file: rel.clone(),
                    duplicate: false,
                };
                match kind {
                    Kind::Alert => {
                        if gen.rng.chance(options.dup_rate) {
                            carry
                                .entry((account, region))
                                .or_default()
                                .push((text.clone(), entry.clone()));
                        }
                        manifest.alerts.push(entry);
                    }
                    Kind::Failed => manifest.failed.push(entry),
                    Kind::Decoy => manifest.decoys.push(entry),
                }
            }
        }
        for (text, entry) in pending {
            writer.record(&text)?;
            manifest.alerts.push(Planted {
                file: rel.clone(),
                duplicate: true,
                ..entry
            });
        }
        let (events, bytes_uncompressed) = writer.finish()?;
        manifest.files.push(FileEntry {
            file: rel,
            events,
            bytes_uncompressed,
            bytes_gz: std::fs::metadata(&path)?.len(),
        });
    }
    let text = serde_json::to_string_pretty(&manifest).map_err(io::Error::other)?;
    std::fs::write(out.join("manifest.json"), text)?;
    Ok(manifest)
}

/// Records per file: log-normal weights (sigma 1.2) scaled to `events`.
fn file_sizes(rng: &mut Rng, events: usize, files: usize) -> Vec<usize> {
    let weights: Vec<f64> = (0..files).map(|_| (1.2 * rng.normal()).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|w| (events as f64 * w / total) as usize)
        .collect();
    let assigned: usize = counts.iter().sum();
    if let Some(first) = counts.first_mut() {
        *first += events.saturating_sub(assigned);
    }
    counts
}

/// A gzipped `{"Records":[...]}` file written one record at a time.
struct RecordWriter {
    gz: flate2::write::GzEncoder<BufWriter<File>>,
    records: usize,
    bytes: u64,
}

impl RecordWriter {
    fn create(path: &Path, level: u32) -> io::Result<Self> {
        // No file name and mtime 0 in the header: the bytes depend on the seed only.
        let gz = GzBuilder::new()
            .mtime(0)
            .write(BufWriter::new(File::create(path)?), Compression::new(level));
        let mut writer = RecordWriter {
            gz,
            records: 0,
            bytes: 0,
        };
        writer.raw(b"{\"Records\":[")?;
        Ok(writer)
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes += bytes.len() as u64;
        self.gz.write_all(bytes)
    }

    fn record(&mut self, text: &str) -> io::Result<()> {
        if self.records > 0 {
            self.raw(b",")?;
        }
        self.records += 1;
        self.raw(text.as_bytes())
    }

    fn finish(mut self) -> io::Result<(usize, u64)> {
        self.raw(b"]}")?;
        self.gz.finish()?.flush()?;
        Ok((self.records, self.bytes))
    }
}
