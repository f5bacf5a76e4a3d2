//! Memory is bounded by the record, not by what a caller puts in it: a 3 KB gzip
//! whose matching record holds 1.5 million small values in `exportOnly` (a field
//! the caller of `StartExportTask` fills) once took 328 MB, more than the function
//! has. Both of its matches alert, and the peak resident memory of the process
//! stays under 64 MiB for `scan --jobs 1` and under 128 MiB (half the function's
//! memory) for `invoke`, as the kernel accounts it (`ru_maxrss`).
//!
//! The kernel counts in a process's peak the memory of the process that spawned
//! it, up to its `exec` (the test process here, hundreds of MB while other tests
//! run), so the binary is started by a small Python process, which reports the
//! peak of its child: an upper bound that includes Python's own few MB.

use std::io::Write;
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::support::fixtures::s3_event;

const VALUES: usize = 1_500_000;

/// The object: a successful export whose `exportOnly` is 1.5 million zeros (at
/// `huge_time`), then an ordinary one (at `time`).
pub fn object(huge_time: &str, time: &str) -> Vec<u8> {
    let record = |id: &str, time: &str, export_only: &str| {
        format!(
            r#"{{"eventVersion":"1.09","eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventTime":"{time}","eventID":"{id}","awsRegion":"us-east-1","recipientAccountId":"123456789012","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2.15.30","userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::123456789012:assumed-role/DataEngineer/jdoe"}},"requestParameters":{{"sourceArn":"arn:aws:rds:us-east-1:123456789012:snapshot:orders","s3BucketName":"exports","exportOnly":{export_only}}}}}"#
        )
    };
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(b"{\"Records\":[").unwrap();
    let (head, tail) = record("memory-huge", huge_time, "[]")
        .split_once("[]")
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    encoder.write_all(head.as_bytes()).unwrap();
    encoder.write_all(b"[0").unwrap();
    let zeros = ",0".repeat(64 << 10);
    for _ in 0..(VALUES - 1) / (64 << 10) {
        encoder.write_all(zeros.as_bytes()).unwrap();
    }
    encoder
        .write_all(",0".repeat((VALUES - 1) % (64 << 10)).as_bytes())
        .unwrap();
    encoder.write_all(b"]").unwrap();
    encoder.write_all(tail.as_bytes()).unwrap();
    encoder.write_all(b",").unwrap();
    encoder
        .write_all(record("memory-after", time, r#"["orders.customers"]"#).as_bytes())
        .unwrap();
    encoder.write_all(b"]}").unwrap();
    encoder.finish().unwrap()
}

/// Runs the binary with `args` to its end, started by a small process: its
/// stdout, stderr, exit code and peak resident memory in bytes.
fn run_measured(args: &[&std::ffi::OsStr]) -> (String, String, i32, u64) {
    let script = r#"
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
sys.stdout.flush()
print("peak_rss_kib=%d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_trailwatch"))
        .args(args)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (rest, last) = stderr.trim_end().rsplit_once('\n').unwrap_or(("", &stderr));
    let kib: u64 = last
        .trim()
        .strip_prefix("peak_rss_kib=")
        .unwrap_or_else(|| panic!("no peak reported: {stderr}"))
        .parse()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        stdout,
        rest.to_owned(),
        out.status.code().unwrap_or(-1),
        kib * 1024,
    )
}

fn alerted(stdout: &str) -> Vec<String> {
    let mut ids: Vec<String> = stdout
        .lines()
        .map(|line| {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            doc["eventId"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids
}

const MIB: u64 = 1 << 20;

#[test]
fn a_record_of_a_million_values_alerts_in_bounded_memory() {
    let object = object("2024-03-15T10:00:00Z", "2024-03-15T12:00:00Z");
    assert!(object.len() < 4096, "{} bytes compressed", object.len());
    let dir = tempfile::tempdir().unwrap();
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1000Z_memory.json.gz";
    let path = dir.path().join("trail").join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &object).unwrap();

    let (stdout, stderr, code, peak) = run_measured(&[
        "scan".as_ref(),
        "--jobs".as_ref(),
        "1".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--no-progress".as_ref(),
        path.as_os_str(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(alerted(&stdout), ["memory-after", "memory-huge"]);
    eprintln!(
        "scan --jobs 1: peak RSS {:.1} MiB",
        peak as f64 / MIB as f64
    );
    assert!(peak < 64 * MIB, "scan peak RSS {peak} bytes");

    let event = dir.path().join("event.json");
    std::fs::write(&event, s3_event("trail", &[key]).to_string()).unwrap();
    let (stdout, stderr, code, peak) = run_measured(&[
        "invoke".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--objects".as_ref(),
        dir.path().as_os_str(),
        event.as_os_str(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(alerted(&stdout), ["memory-after", "memory-huge"]);
    eprintln!("invoke: peak RSS {:.1} MiB", peak as f64 / MIB as f64);
    assert!(peak < 128 * MIB, "invoke peak RSS {peak} bytes");
}
