//! `gen_corpus`: writes a seeded, realistic CloudTrail corpus (gzipped log files at
//! their CloudTrail keys, plus `manifest.json` of the planted exports, failed
//! exports and decoys) for `make bench` and for trying the scanner by hand.
//!
//! `cargo run --release --example gen_corpus -- --events 200000 --files 50 --seed 1 --out corpus`
//!
//! The generator itself is the test suite's (`tests/it/support/corpus/`), so the
//! benchmarks and the oracle tests read the same kind of data.

// The tests use parts of the module this command does not.
#[allow(dead_code)]
#[path = "../tests/it/support/corpus/mod.rs"]
mod corpus;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Generate realistic, deterministic CloudTrail log files.
#[derive(Parser)]
struct Args {
    /// Records over all files.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Number of files (their sizes vary log-normally).
    #[arg(long, default_value_t = 10)]
    files: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Per-record probability of an rds StartExportTask (30 % of them fail);
    /// decoys at the same rate.
    #[arg(long, default_value_t = 1e-4)]
    export_rate: f64,
    /// Probability that a successful export is delivered again in the next file.
    #[arg(long, default_value_t = 0.0)]
    dup_rate: f64,
    /// gzip level, 0-9.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    level: u32,
    /// Output folder.
    #[arg(long, default_value = "cloudtrail-out")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = corpus::Options {
        events: args.events,
        files: args.files,
        seed: args.seed,
        export_rate: args.export_rate,
        dup_rate: args.dup_rate,
        level: args.level,
    };
    match corpus::generate(&args.out, &options) {
        Ok(manifest) => {
            let duplicates = manifest.alerts.iter().filter(|a| a.duplicate).count();
            let raw: u64 = manifest.files.iter().map(|f| f.bytes_uncompressed).sum();
            let gz: u64 = manifest.files.iter().map(|f| f.bytes_gz).sum();
            println!(
                "files={} events={} exports_planted={} (+{duplicates} duplicates) failed_exports={} decoys={}",
                manifest.files.len(),
                manifest.records(),
                manifest.alerts.len() - duplicates,
                manifest.failed.len(),
                manifest.decoys.len()
            );
            println!(
                "bytes_uncompressed={raw} bytes_gz={gz} manifest={}",
                args.out.join("manifest.json").display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gen_corpus: cannot write {}: {error}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
