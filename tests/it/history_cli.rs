//! History through the `trailwatch` binary as a user runs it against a bucket
//! (moto through `AWS_ENDPOINT_URL`): `scan s3://…` with its filters, a
//! checkpointed scan killed and resumed, peak RSS, `backfill`; and Batch
//! Operations events and redriven dead-letter records through `invoke` and the
//! handler.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use trailwatch::batchops::ResultCode;

use crate::support::fixtures::without_latency;
use trailwatch::config::Config;
use trailwatch::dedup::MemoryStore;
use trailwatch::handler::Handler;
use trailwatch::rule::RuleSet;
use trailwatch::sink::MemorySink;
use trailwatch::source::LocalSource;

use crate::history::{corpus, is_log, FILES_PER_PREFIX, ORG};
use crate::support::moto;

/// The binary with the emulator as its AWS (no profile, no instance metadata).
fn trailwatch(endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailwatch"));
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", moto::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// What one run printed, and its peak RSS (`VmHWM`, KiB) polled while it ran.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_kib: u64,
    secs: f64,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn drain(
    child: &mut Child,
) -> (
    std::thread::JoinHandle<String>,
    std::thread::JoinHandle<String>,
) {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }),
    )
}

fn run(mut command: Command, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = command.args(args).spawn().unwrap();
    let (out, err) = drain(&mut child);
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        peak_kib,
        secs: started.elapsed().as_secs_f64(),
    }
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{}", self.stderr);
        self
    }

    /// The alert documents, `s3://BUCKET/` written like the local copy `DIR/BUCKET/`.
    fn alerts(&self, bucket: &str, local: &Path) -> Vec<Value> {
        let from = format!("s3://{bucket}/");
        let to = format!("{}/{bucket}/", local.display());
        self.stdout
            .lines()
            .map(|l| {
                let mut doc: Value = serde_json::from_str(&l.replace(&from, &to)).unwrap();
                // The time of printing: the one member two scans differ in.
                doc.as_object_mut().map(|d| d.remove("alertLatencyMs"));
                doc
            })
            .collect()
    }

    /// A `key=value` of the summary line.
    fn summary(&self, key: &str) -> u64 {
        let line = self.stderr.lines().last().unwrap_or_default();
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_s3_and_backfill_through_the_binary() {
    let _alone = crate::history::BUCKET_TESTS.lock().await;
    let server = moto::MotoServer::start();
    let conf = server.sdk_config().await;
    let client = server.s3_client(&conf);
    let name = moto::unique("cli-history");
    let out_bucket = moto::unique("cli-manifests");
    for bucket in [&name, &out_bucket] {
        client.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let objects = corpus();
    let dir = tempfile::tempdir().unwrap();
    let mut log_keys = Vec::new();
    let mut log_bytes = 0;
    for (key, body) in &objects {
        if is_log(key) {
            let path = dir.path().join(&name).join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
            log_keys.push(key.clone());
            log_bytes += body.len();
        }
    }
    stream::iter(objects)
        .map(|(key, body)| {
            let (client, name) = (client.clone(), name.clone());
            async move {
                client
                    .put_object()
                    .bucket(&name)
                    .key(&key)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let root = dir.path().join(&name);
    let endpoint = server.endpoint.clone();
    let url = format!("s3://{name}/trail");
    let tw = || trailwatch(&endpoint);
    let local = |paths: Vec<PathBuf>| {
        let mut args = vec!["scan".to_owned(), "--format".into(), "json".into()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(trailwatch(&endpoint), &args).ok()
    };

    // 1. The whole bucket: the alerts of a local scan, in bounded memory.
    let reference = local(vec![root.clone()]);
    let local_objects_per_s = reference.summary("files") as f64 / reference.secs;
    let whole = run(tw(), &["scan", "--format", "json", "--no-progress", &url]).ok();
    eprintln!(
        "scan s3:// against moto: {} objects, {log_bytes} bytes in {:.2}s: {:.0} objects/s, {:.2} MB/s compressed; local: {:.0} objects/s, {:.2} MB/s; peak RSS {} KiB",
        whole.summary("files"),
        whole.secs,
        whole.summary("files") as f64 / whole.secs,
        log_bytes as f64 / 1e6 / whole.secs,
        local_objects_per_s,
        log_bytes as f64 / 1e6 / reference.secs,
        whole.peak_kib,
    );
    assert_eq!(whole.summary("files"), log_keys.len() as u64);
    assert!(whole.summary("alerts") > 10, "{}", whole.stderr);
    assert!(whole.summary("suppressed") > 0, "dedup is exercised");
    assert_eq!(
        whole.alerts(&name, dir.path()),
        reference.alerts(&name, dir.path())
    );
    assert!(whole.peak_kib > 0, "VmHWM was read");
    assert!(
        whole.peak_kib < 64 * 1024,
        "peak RSS {} KiB",
        whole.peak_kib
    );

    // 2. Mixed with a local path, decided in one event-time order.
    let accounts_root = root.join("trail/AWSLogs");
    let local_part = accounts_root.join("222222222222");
    let mixed = run(
        tw(),
        &[
            "scan",
            "--format",
            "json",
            "--accounts",
            "111111111111",
            &url,
            local_part.to_str().unwrap(),
        ],
    )
    .ok();
    let expected = local(vec![accounts_root.join("111111111111"), local_part.clone()]);
    assert_eq!(mixed.summary("files"), 2 * 15 * FILES_PER_PREFIX as u64);
    assert_eq!(
        mixed.alerts(&name, dir.path()),
        expected.alerts(&name, dir.path())
    );

    // 3. The filters: only the matching days, accounts and regions are listed and
    // read (the ListObjectsV2 calls the binary made, from moto's recording).
    server.start_recording().await;
    let filtered = run(
        tw(),
        &[
            "scan",
            "--format",
            "json",
            "--since",
            "2024-03-02",
            "--until",
            "2024-03-03T12:00:00Z",
            "--accounts",
            "111111111111,333333333333",
            "--regions",
            "eu-west-1",
            &url,
        ],
    )
    .ok();
    let mut prefixes = Vec::new();
    for base in [
        "trail/AWSLogs/111111111111".to_owned(),
        format!("trail/AWSLogs/{ORG}/333333333333"),
    ] {
        for day in ["2024/03/02", "2024/03/03"] {
            prefixes.push(format!("{base}/CloudTrail/eu-west-1/{day}/"));
        }
    }
    let requests = server.recorded().await;
    let lists: Vec<_> = requests.iter().filter(|r| r.is_list_objects_v2()).collect();
    let day_listings: BTreeSet<String> = lists
        .iter()
        .filter(|r| r.query("delimiter").is_none())
        .filter_map(|r| r.query("prefix"))
        .collect();
    assert_eq!(
        day_listings,
        prefixes.iter().cloned().collect::<BTreeSet<_>>(),
        "only the matching (account, region, day) prefixes are listed"
    );
    // AWSLogs/, the organisation, two accounts' regions, four day prefixes.
    assert_eq!(lists.len(), 1 + 1 + 2 + 4, "{lists:#?}");
    let gets = requests
        .iter()
        .filter(|r| r.method == "GET" && !r.is_list_objects_v2())
        .count();
    assert_eq!(
        gets,
        4 * FILES_PER_PREFIX,
        "one GetObject per matching file"
    );
    let expected = local(prefixes.iter().map(|p| root.join(p)).collect());
    assert_eq!(filtered.summary("files"), 4 * FILES_PER_PREFIX as u64);
    assert_eq!(
        filtered.alerts(&name, dir.path()),
        expected.alerts(&name, dir.path())
    );
    let bad = run(tw(), &["scan", "--since", "last tuesday", &url]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("last tuesday"), "{}", bad.stderr);

    // 4. Killed halfway, resumed from the checkpoint: the uninterrupted run's alerts.
    let one = ["--accounts", "222222222222"];
    let uninterrupted = run(
        tw(),
        &[&["scan", "--format", "json"][..], &one, &[&url]].concat(),
    )
    .ok();
    let checkpoint = dir.path().join("scan.checkpoint");
    let cp = checkpoint.to_str().unwrap();
    let args = [
        &[
            "scan",
            "--format",
            "json",
            "--jobs",
            "2",
            "--checkpoint",
            cp,
        ][..],
        &one,
        &[&url],
    ]
    .concat();
    let mut child = tw().args(&args).spawn().unwrap();
    let (killed_out, _killed_err) = drain(&mut child);
    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    // The header and 5 of the 15 prefixes.
    while lines(&checkpoint) < 6 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the scan ended before it was killed"
        );
        assert!(Instant::now() < deadline, "no progress in the checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        killed_out.join().unwrap(),
        "",
        "nothing is published before the listing is done"
    );
    let finished = lines(&checkpoint) - 1;
    assert!(
        finished < 15,
        "{finished} prefixes finished before the kill"
    );
    let resumed = run(tw(), &args).ok();
    assert_eq!(resumed.summary("files"), 15 * FILES_PER_PREFIX as u64);
    assert!(resumed.summary("alerts") > 0);
    assert_eq!(
        without_latency(&resumed.stdout),
        without_latency(&uninterrupted.stdout)
    );

    // 5. backfill: the manifest holds exactly the keys the filtered scan read.
    let manifest_key = "manifests/backfill.csv";
    let manifest_url = format!("s3://{out_bucket}/{manifest_key}");
    let backfill = run(
        tw(),
        &[
            "backfill",
            &url,
            "--since",
            "2024-03-02",
            "--until",
            "2024-03-03T12:00:00Z",
            "--accounts",
            "111111111111,333333333333",
            "--regions",
            "eu-west-1",
            "--manifest",
            &manifest_url,
            "--function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:trailwatch",
            "--role-arn",
            "arn:aws:iam::123456789012:role/trailwatch-batch",
        ],
    )
    .ok();
    let object = client
        .get_object()
        .bucket(&out_bucket)
        .key(manifest_key)
        .send()
        .await
        .unwrap();
    let etag = object.e_tag().unwrap().trim_matches('"').to_owned();
    let body = object.body.collect().await.unwrap().into_bytes();
    let manifest: BTreeSet<String> = String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let wanted: BTreeSet<String> = log_keys
        .iter()
        .filter(|k| prefixes.iter().any(|p| k.starts_with(p.as_str())))
        .map(|k| format!("{name},{k}"))
        .collect();
    assert_eq!(manifest.len() as u64, filtered.summary("files"));
    assert_eq!(manifest, wanted);
    let command = backfill.stdout.trim();
    assert!(
        command
            .starts_with("aws s3control create-job --region us-east-1 --account-id 123456789012"),
        "{command}"
    );
    assert!(
        command.contains(&format!(
            r#""ObjectArn":"arn:aws:s3:::{out_bucket}/{manifest_key}""#
        )),
        "{command}"
    );
    assert!(
        command.contains(&format!(r#""ETag":"{etag}""#)),
        "{command}"
    );
    let nothing = run(
        tw(),
        &[
            "backfill",
            &url,
            "--since",
            "2024-03-02",
            "--regions",
            "mars-north-1",
            "--manifest",
            &manifest_url,
            "--function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:trailwatch",
            "--role-arn",
            "arn:aws:iam::123456789012:role/trailwatch-batch",
        ],
    );
    assert_eq!(nothing.code, Some(1));
    assert!(
        nothing.stderr.contains("nothing to backfill"),
        "{}",
        nothing.stderr
    );
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

const DEMO_LOGS: [&str; 2] = [
    "AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
    "audit logs/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
];

fn batch_cases() -> [(&'static str, Vec<ResultCode>); 2] {
    use ResultCode::*;
    [
        (
            "batch-ops-v1.json",
            vec![Succeeded, Succeeded, Succeeded, PermanentFailure],
        ),
        ("batch-ops-v2.json", vec![Succeeded, Succeeded]),
    ]
}

fn codes(response: &Value) -> Vec<ResultCode> {
    response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_value(r["resultCode"].clone()).unwrap())
        .collect()
}

fn handler(sink: Arc<MemorySink>) -> Handler {
    Handler::assemble(
        &Config::from_env().unwrap(),
        RuleSet::embedded(),
        Arc::new(LocalSource::new(events_dir().join("objects"))),
        Arc::new(MemoryStore::new()),
        sink,
    )
}

#[test]
fn batch_operations_events_through_invoke() {
    let demo = events_dir().join("objects/trailwatch-demo-cloudtrail");
    let paths: Vec<String> = DEMO_LOGS
        .iter()
        .map(|k| demo.join(k).display().to_string())
        .collect();
    let local = run(
        trailwatch("http://127.0.0.1:9"),
        &["scan", "--format", "json", &paths[0], &paths[1]],
    )
    .ok();
    for (file, expected) in batch_cases() {
        let event = events_dir().join(file);
        let out = run(
            trailwatch("http://127.0.0.1:9"),
            &["invoke", event.to_str().unwrap(), "--format", "json"],
        )
        .ok();
        let response: Value = out
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("handler response: "))
            .map(|r| serde_json::from_str(r).unwrap())
            .unwrap_or_else(|| panic!("{file}: no response in {}", out.stderr));
        assert_eq!(codes(&response), expected, "{file}: {response:#}");
        let task_ids: Vec<Value> = serde_json::from_slice::<Value>(&std::fs::read(&event).unwrap())
            .unwrap()["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["taskId"].clone())
            .collect();
        let result_ids: Vec<Value> = response["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["taskId"].clone())
            .collect();
        assert_eq!(result_ids, task_ids, "{file}");
        let from = "s3://trailwatch-demo-cloudtrail/";
        let to = format!("{}/", demo.display());
        assert_eq!(
            without_latency(&out.stdout.replace(from, &to)),
            without_latency(&local.stdout),
            "{file}"
        );
    }
}

#[tokio::test]
async fn batch_operations_events_through_the_handler() {
    let demo = events_dir().join("objects/trailwatch-demo-cloudtrail");
    let (local_sink, _) = {
        let sink = Arc::new(MemorySink::new());
        let h = handler(Arc::clone(&sink));
        let paths: Vec<PathBuf> = DEMO_LOGS.iter().map(|k| demo.join(k)).collect();
        (
            sink,
            trailwatch::files::run(&h.detector, &h.alerter, &paths, 2, false).await,
        )
    };
    let local: Vec<String> = local_sink
        .notifications()
        .into_iter()
        .map(|n| n.document)
        .collect();
    assert_eq!(local.len(), 1);
    for (file, expected) in batch_cases() {
        let event: Value =
            serde_json::from_slice(&std::fs::read(events_dir().join(file)).unwrap()).unwrap();
        let sink = Arc::new(MemorySink::new());
        let response = handler(Arc::clone(&sink))
            .handle(event.clone())
            .await
            .unwrap();
        assert_eq!(codes(&response), expected, "{file}: {response:#}");
        assert_eq!(response["invocationId"], event["invocationId"]);
        assert_eq!(
            response["invocationSchemaVersion"],
            event["invocationSchemaVersion"]
        );
        assert_eq!(response["treatMissingKeysAs"], "PermanentFailure");
        let to = format!("{}/", demo.display());
        let docs: Vec<String> = sink
            .notifications()
            .into_iter()
            .map(|n| without_latency(&n.document.replace("s3://trailwatch-demo-cloudtrail/", &to)))
            .collect();
        let local: Vec<String> = local.iter().map(|d| without_latency(d)).collect();
        assert_eq!(docs, local, "{file}");
    }
    let bad = json!({"invocationSchemaVersion": "9.9", "invocationId": "i", "tasks": []});
    let err = handler(Arc::new(MemorySink::new()))
        .handle(bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("9.9"), "{err}");
}

#[tokio::test]
async fn a_dead_letter_record_in_sqs_alerts_like_the_original_event() {
    let original: Value =
        serde_json::from_slice(&std::fs::read(events_dir().join("s3-put.json")).unwrap()).unwrap();
    let sqs = crate::support::fixtures::dead_letter_message(original.clone());
    let alerts = |event: Value| async move {
        let sink = Arc::new(MemorySink::new());
        let response = handler(Arc::clone(&sink)).handle(event).await.unwrap();
        let docs: Vec<String> = sink
            .notifications()
            .into_iter()
            .map(|n| without_latency(&n.document))
            .collect();
        (response, docs)
    };
    let (_, expected) = alerts(original).await;
    assert!(!expected.is_empty());
    let (response, docs) = alerts(sqs).await;
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(docs, expected);
}
