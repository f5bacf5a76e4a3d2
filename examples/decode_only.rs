//! Decode-only baseline for the benchmark: the same decoder, buffer sizes and read
//! size as `trailwatch scan`, minus the scan. `scan` time divided by this time is the
//! cost of detection on top of decompression.
//!
//! Usage: `decode_only [--search | --scan] FILE...` prints the decompressed bytes,
//! the elapsed time and MB/s.
//! - no option: decompress into one reused buffer;
//! - `--search`: also run the rules' literal needle search over each buffer (the
//!   lower bound of any exact scan);
//! - `--scan`: run the streaming record scanner (`decode::scan_records`) without
//!   parsing candidates or anything after: the scan's cost without the CLI's.

use std::process::ExitCode;
use std::time::Instant;

use trailwatch::decode::{open_stream, scan_records, Limits, Prefilter, DECODED_BUFFER};
use trailwatch::rule::RuleSet;

#[derive(PartialEq)]
enum Mode {
    Decode,
    Search,
    Scan,
}

fn main() -> ExitCode {
    let mut mode = Mode::Decode;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--search" => mode = Mode::Search,
            "--scan" => mode = Mode::Scan,
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("usage: decode_only [--search | --scan] FILE...");
        return ExitCode::from(2);
    }
    let rules = RuleSet::embedded();
    let prefilter = Prefilter::for_rules(&rules.rules);
    let limits = Limits::default();
    // One buffer for every file, the size the scanner reads into.
    let mut buf = vec![0u8; DECODED_BUFFER];
    let mut hits = Vec::new();
    let mut total: u64 = 0;
    let mut found: u64 = 0;
    let started = Instant::now();
    for path in &files {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if mode == Mode::Scan {
            let outcome = scan_records(file, &prefilter, &limits, |_, _| found += 1);
            if let Some(e) = outcome.error {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
            total += outcome.stats.decoded_bytes;
            continue;
        }
        let mut stream = match open_stream(file) {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        loop {
            match stream.read_decoded(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if mode == Mode::Search {
                        hits.clear();
                        prefilter.find_all(&buf[..n], total, &mut hits);
                        found += hits.len() as u64;
                    }
                    total += n as u64;
                }
                Err(e) => {
                    eprintln!("{path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let found = match mode {
        Mode::Decode => String::new(),
        Mode::Search => format!(" needle_hits={found}"),
        Mode::Scan => format!(" candidates={found}"),
    };
    println!(
        "files={} bytes={total} elapsed={secs:.4}s throughput={:.1}MB/s{found}",
        files.len(),
        total as f64 / 1e6 / secs,
    );
    ExitCode::SUCCESS
}
