//! Decode-only baselines for the benchmark: the decoders `trailwatch scan` uses and
//! the ones it is measured against, with the scan's buffer and read sizes, minus the
//! scan. `scan` time divided by one of these times is the cost of detection on top
//! of that decompression.
//!
//! Usage: `decode_only [--zlib-rs | --stream | --libdeflate | --search | --scan | --scan-hashed]
//! FILE...` prints the decompressed bytes, the elapsed time and MB/s.
//! - no option: what the scan decodes with (`decode::open_stream`: small objects
//!   whole with libdeflate, larger ones streamed, on a second thread when a core
//!   is free for it beside this one, as in the scan: pin to one core or set
//!   `TRAILWATCH_DECODE_THREAD=off` for the single-threaded figure), into one
//!   reused buffer;
//! - `--zlib-rs`: flate2's `MultiGzDecoder` over zlib-rs, streamed;
//! - `--stream`: our gzip framing over zlib-rs (`decode::gzip`), streamed, whatever
//!   the size;
//! - `--libdeflate`: libdeflate, each whole file in one call into one output
//!   buffer reused from file to file, whatever the size;
//! - `--search`: also run the rules' literal needle search over each buffer (the
//!   lower bound of any exact scan);
//! - `--scan`: run the streaming record scanner (`decode::scan_records`) without
//!   parsing candidates or anything after: the scan's cost without the CLI's;
//! - `--scan-hashed`: the same, also hashing every decoded byte with SHA-256 as
//!   the integrity check does (`decode::scan_records_observed`): its cost.

use std::io::{BufReader, Read};
use std::process::ExitCode;
use std::time::Instant;

use trailwatch::decode::gzip::GzipDecoder;
use trailwatch::decode::piped::Busy;
use trailwatch::decode::whole_object::decode_in_memory;
use trailwatch::decode::{
    open_stream, scan_records, scan_records_observed, DecodeError, Limits, Prefilter,
    DECODED_BUFFER,
};
use trailwatch::rule::RuleSet;

#[derive(PartialEq)]
enum Mode {
    Decode,
    ZlibRs,
    Stream,
    Libdeflate,
    Search,
    Scan,
    ScanHashed,
}

fn main() -> ExitCode {
    let mut mode = Mode::Decode;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--zlib-rs" => mode = Mode::ZlibRs,
            "--stream" => mode = Mode::Stream,
            "--libdeflate" => mode = Mode::Libdeflate,
            "--search" => mode = Mode::Search,
            "--scan" => mode = Mode::Scan,
            "--scan-hashed" => mode = Mode::ScanHashed,
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!(
            "usage: decode_only [--zlib-rs | --stream | --libdeflate | --search | --scan | --scan-hashed] FILE..."
        );
        return ExitCode::from(2);
    }
    let rules = RuleSet::embedded();
    let prefilter = Prefilter::for_rules(&rules.rules);
    let limits = Limits::default();
    // One buffer for every file, the size the scanner reads into.
    let mut buf = vec![0u8; DECODED_BUFFER];
    let mut hits = Vec::new();
    let (mut compressed, mut decoded) = (Vec::new(), Vec::new());
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
        let drained = match mode {
            Mode::ZlibRs => drain(
                flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(
                    DECODED_BUFFER,
                    file,
                )),
                &mut buf,
            ),
            Mode::Stream => drain(
                GzipDecoder::new(BufReader::with_capacity(DECODED_BUFFER, file)),
                &mut buf,
            ),
            Mode::Libdeflate => {
                compressed.clear();
                let mut file = file;
                file.read_to_end(&mut compressed).and_then(|_| {
                    decode_in_memory(&compressed, &mut decoded, usize::MAX)
                        .map(|decoded| decoded.len as u64)
                        .ok_or_else(|| std::io::Error::other("libdeflate could not decode it"))
                })
            }
            Mode::Scan => {
                let outcome = scan_records(file, &prefilter, &limits, |_, _| found += 1);
                match outcome.error {
                    Some(e) => Err(std::io::Error::other(e.to_string())),
                    None => Ok(outcome.stats.decoded_bytes),
                }
            }
            Mode::ScanHashed => {
                use sha2::Digest;
                let mut hasher = sha2::Sha256::new();
                let mut observe = |bytes: &[u8]| hasher.update(bytes);
                let outcome = scan_records_observed(
                    file,
                    &prefilter,
                    &limits,
                    &mut observe,
                    |_: u64, _: &[u8]| found += 1,
                );
                std::hint::black_box(hasher.finalize());
                match outcome.error {
                    Some(e) => Err(std::io::Error::other(e.to_string())),
                    None => Ok(outcome.stats.decoded_bytes),
                }
            }
            Mode::Decode | Mode::Search => {
                match decode_scanned(
                    file,
                    &mut buf,
                    &prefilter,
                    total,
                    &mut hits,
                    mode == Mode::Search,
                ) {
                    Ok((n, h)) => {
                        found += h;
                        Ok(n)
                    }
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                }
            }
        };
        match drained {
            Ok(n) => total += n,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let found = match mode {
        Mode::Decode | Mode::ZlibRs | Mode::Stream | Mode::Libdeflate => String::new(),
        Mode::Search => format!(" needle_hits={found}"),
        Mode::Scan | Mode::ScanHashed => format!(" candidates={found}"),
    };
    println!(
        "files={} bytes={total} elapsed={secs:.4}s throughput={:.1}MB/s{found}",
        files.len(),
        total as f64 / 1e6 / secs,
    );
    ExitCode::SUCCESS
}

/// Reads a decoder to its end into `buf`; the bytes it produced.
fn drain(mut decoder: impl Read, buf: &mut [u8]) -> std::io::Result<u64> {
    let mut total = 0;
    loop {
        match decoder.read(buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// Decodes with what the scan uses (`open_stream`), searching the needles in each
/// buffer when `search` is set; the bytes and the needle hits.
fn decode_scanned(
    file: std::fs::File,
    buf: &mut [u8],
    prefilter: &Prefilter,
    base: u64,
    hits: &mut Vec<u64>,
    search: bool,
) -> Result<(u64, u64), DecodeError> {
    // Counted as a running scan, as `scan_records` is, so that the decoding thread
    // starts only when a core is free beside this one (never when pinned to one).
    let _busy = Busy::scan();
    let mut stream = open_stream(file)?;
    let (mut total, mut found) = (0u64, 0u64);
    loop {
        match stream.read_decoded(buf)? {
            0 => return Ok((total, found)),
            n => {
                if search {
                    hits.clear();
                    prefilter.find_all(&buf[..n], base + total, hits);
                    found += hits.len() as u64;
                }
                total += n as u64;
            }
        }
    }
}
