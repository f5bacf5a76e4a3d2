//! Micro-benchmarks of the record path, each reported in bytes of decoded JSON per
//! second:
//!
//! - `prefilter/find_all`: the literal needle search alone over a decoded document;
//! - `scanner/plain`: the structural scanner (plus the needle search) over the same
//!   document in memory, no decompression;
//! - `gzip/decode_only`: decompressing the gzip of that document in memory as the
//!   scan does (the floor the full path is measured against; a 64 MiB document is
//!   above the whole-object cut-off, so this streams);
//! - `gzip/multigz_zlib_rs`, `gzip/framing_zlib_rs`, `gzip/libdeflate_whole`: the
//!   same with flate2's `MultiGzDecoder`, with our framing streamed, and with
//!   libdeflate in one call into a reused buffer;
//! - `gzip/scan`: decompression plus the scanner;
//! - `gzip/detect`: the whole per-object path (`Detector::detect`: decompression,
//!   scan, parse of candidates, rules).
//!
//! The document is CloudTrail-like JSON generated here (deterministic), or the first
//! 64 MiB of the decoded file named by `TRAILWATCH_BENCH_FILE` (a `.json.gz` from
//! `examples/gen_corpus.rs`, as `make bench` does).

use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use std::io::Read;

use trailwatch::decode::gzip::GzipDecoder;
use trailwatch::decode::whole_object::decode_in_memory;
use trailwatch::decode::{open_stream, scan_records, Limits, Prefilter, DECODED_BUFFER};
use trailwatch::detect::Detector;
use trailwatch::rule::RuleSet;

const SYNTHETIC_RECORDS: usize = 8000;
const MAX_DOCUMENT: usize = 64 << 20;

/// A deterministic CloudTrail-like document: nested identities, request
/// parameters, escaped quotes and backslashes, policy documents, now and then the
/// rule's action name.
fn synthetic_document() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let names = [
        "GetObject",
        "PutObject",
        "AssumeRole",
        "DescribeInstances",
        "Decrypt",
        "CreateDBSnapshot",
    ];
    let sources = [
        "s3.amazonaws.com",
        "sts.amazonaws.com",
        "ec2.amazonaws.com",
        "kms.amazonaws.com",
        "rds.amazonaws.com",
    ];
    let mut out = String::from("{\"Records\":[");
    for i in 0..SYNTHETIC_RECORDS {
        if i > 0 {
            out.push(',');
        }
        let r = next();
        let (source, name) = if r % 5000 == 0 {
            ("rds.amazonaws.com", "StartExportTask")
        } else {
            (
                sources[(r % 5) as usize],
                names[(r >> 8) as usize % names.len()],
            )
        };
        let extra = match (r >> 16) % 4 {
            0 => r#","requestParameters":{"policyDocument":"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\"],\"Resource\":\"*\"}]}","roleName":"data-pipeline-prod"}"#.to_string(),
            1 => format!(r#","requestParameters":{{"bucketName":"prod-data-lake","key":"raw/2024/03/{:02}/part-{:05}.snappy.parquet"}}"#, r % 28, r % 100_000),
            2 => r#","requestParameters":{"key":"tmp/a\\b\\c.txt","name":"Résumé – José \"final\" (2).pdf"},"resources":[{"ARN":"arn:aws:s3:::customer-uploads-eu","type":"AWS::S3::Bucket"}]"#.to_string(),
            _ => r#","requestParameters":null,"responseElements":null"#.to_string(),
        };
        out.push_str(&format!(
            concat!(
                r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROA{:016X}:ci-deploy","arn":"arn:aws:sts::111122223333:assumed-role/lambda-exec-ingest/ci-deploy","accountId":"111122223333","accessKeyId":"ASIA{:016X}","#,
                r#""sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA{:016X}","arn":"arn:aws:iam::111122223333:role/lambda-exec-ingest","accountId":"111122223333","userName":"lambda-exec-ingest"}},"attributes":{{"creationDate":"2024-03-15T10:00:00Z","mfaAuthenticated":"false"}}}}}},"#,
                r#""eventTime":"2024-03-15T10:{:02}:{:02}Z","eventSource":"{}","eventName":"{}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.{}","#,
                r#""userAgent":"aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.164.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off command/s3.cp"{},"#,
                r#""requestID":"{:016x}","eventID":"{:016x}-{:08x}","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management","#,
                r#""tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{}"}}}}"#
            ),
            next(),
            next(),
            next(),
            r % 60,
            (r >> 6) % 60,
            source,
            name,
            r % 250,
            extra,
            next(),
            next(),
            i,
            source
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

fn document() -> Vec<u8> {
    if let Some(path) = std::env::var_os("TRAILWATCH_BENCH_FILE") {
        let file = std::fs::File::open(&path).expect("TRAILWATCH_BENCH_FILE opens");
        let mut stream = open_stream(file).expect("TRAILWATCH_BENCH_FILE is gzip or JSON");
        let mut out = vec![0; MAX_DOCUMENT];
        let mut filled = 0;
        while filled < out.len() {
            match stream
                .read_decoded(&mut out[filled..])
                .expect("TRAILWATCH_BENCH_FILE decodes")
            {
                0 => break,
                n => filled += n,
            }
        }
        out.truncate(filled);
        // A prefix of a document is not valid JSON: cut after the last whole record
        // (as the scanner itself finds them) and close the array and the root.
        if filled == MAX_DOCUMENT {
            let mut end = 0;
            scan_records(
                &out[..],
                &Prefilter::everything(),
                &Limits::default(),
                |at, r| {
                    end = at as usize + r.len();
                },
            );
            out.truncate(end);
            out.extend_from_slice(b"]}");
        }
        return out;
    }
    synthetic_document()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(data).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

fn record_path(c: &mut Criterion) {
    let doc = document();
    let gz = gzip(&doc);
    let rules = RuleSet::embedded();
    let prefilter = Prefilter::for_rules(&rules.rules);
    let limits = Limits::default();
    let detector = Detector::new(rules, limits);

    let mut group = c.benchmark_group("record_path");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.sample_size(20);

    group.bench_function(BenchmarkId::new("prefilter", "find_all"), |b| {
        let mut hits = Vec::new();
        b.iter(|| {
            hits.clear();
            for (n, chunk) in doc.chunks(DECODED_BUFFER).enumerate() {
                prefilter.find_all(chunk, (n * DECODED_BUFFER) as u64, &mut hits);
            }
            black_box(hits.len())
        })
    });

    group.bench_function(BenchmarkId::new("scanner", "plain"), |b| {
        b.iter(|| {
            let mut candidates = 0u64;
            let outcome = scan_records(&doc[..], &prefilter, &limits, |_, r| {
                candidates += r.len() as u64
            });
            assert!(outcome.error.is_none(), "{:?}", outcome.error);
            black_box((outcome.stats.records, candidates))
        })
    });

    group.bench_function(BenchmarkId::new("gzip", "decode_only"), |b| {
        let mut buf = vec![0u8; DECODED_BUFFER];
        b.iter(|| {
            let mut stream = open_stream(&gz[..]).expect("gzip");
            let mut total = 0;
            loop {
                match stream.read_decoded(&mut buf).expect("decodes") {
                    0 => break,
                    n => total += n,
                }
            }
            black_box(total)
        })
    });

    fn drain(mut decoder: impl Read, buf: &mut [u8]) -> usize {
        let mut total = 0;
        loop {
            match decoder.read(buf).expect("decodes") {
                0 => return total,
                n => total += n,
            }
        }
    }

    group.bench_function(BenchmarkId::new("gzip", "multigz_zlib_rs"), |b| {
        let mut buf = vec![0u8; DECODED_BUFFER];
        b.iter(|| {
            let decoder = flate2::bufread::MultiGzDecoder::new(&gz[..]);
            black_box(drain(decoder, &mut buf))
        })
    });

    group.bench_function(BenchmarkId::new("gzip", "framing_zlib_rs"), |b| {
        let mut buf = vec![0u8; DECODED_BUFFER];
        b.iter(|| black_box(drain(GzipDecoder::new(&gz[..]), &mut buf)))
    });

    group.bench_function(BenchmarkId::new("gzip", "libdeflate_whole"), |b| {
        let mut out = Vec::new();
        b.iter(|| black_box(decode_in_memory(&gz, &mut out, usize::MAX).expect("decodes")))
    });

    group.bench_function(BenchmarkId::new("gzip", "scan"), |b| {
        b.iter(|| {
            let outcome = scan_records(&gz[..], &prefilter, &limits, |_, r| {
                black_box(r);
            });
            assert!(outcome.error.is_none(), "{:?}", outcome.error);
            black_box(outcome.stats.records)
        })
    });

    group.bench_function(BenchmarkId::new("gzip", "detect"), |b| {
        b.iter(|| {
            let report = detector.detect(&gz[..], "bench");
            assert!(report.error.is_none(), "{:?}", report.error);
            black_box(report.matches.len())
        })
    });
    group.finish();
}

criterion_group!(benches, record_path);
criterion_main!(benches);
