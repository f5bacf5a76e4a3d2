//! History scans, S3 Batch Operations and dead-letter redrive, end to end.
//!
//! Against moto: thousands of CloudTrail objects under several accounts (an
//! organisation trail among them), regions and days; the history scan's alerts
//! must equal a local scan of the same files, the filters must list only the
//! matching prefixes, and a scan interrupted halfway and resumed from its
//! checkpoint must give the same alerts.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use trailwatch::config::AllowList;
use trailwatch::decode::Limits;
use trailwatch::dedup::MemoryStore;
use trailwatch::detect::Detector;
use trailwatch::history::checkpoint::Checkpoint;
use trailwatch::history::layout::{plan, today, Filters, S3Url};
use trailwatch::history::list::{CountingLister, Lister, S3Lister};
use trailwatch::history::scan::{collect, HistoryScan, Progress};
use trailwatch::history::window::{parse_since, parse_until, Window};
use trailwatch::pipeline::Alerter;
use trailwatch::rule::RuleSet;
use trailwatch::scan::{decide, ScanSummary};
use trailwatch::sink::MemorySink;
use trailwatch::source::{LocalSource, ObjectSource, S3Source};
use trailwatch::time::{format_ms, parse_event_time};

use crate::support::fixtures::without_latency;
use crate::support::moto;

pub(crate) const ORG: &str = "o-a1b2c3d4e5";
const ACCOUNTS: [(&str, bool); 4] = [
    ("111111111111", false),
    ("222222222222", false),
    ("333333333333", true),
    ("444444444444", true),
];
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
const DAYS: [&str; 5] = [
    "2024-03-01",
    "2024-03-02",
    "2024-03-03",
    "2024-03-04",
    "2024-03-05",
];
pub(crate) const FILES_PER_PREFIX: usize = 84; // 4 * 3 * 5 * 84 = 5,040 log files

/// The bucket-sized tests (here and in `history_cli`) run one at a time: this
/// one measures the peak RSS of the whole test process, which would count the
/// other's corpus.
pub(crate) static BUCKET_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn record(account: &str, region: &str, time_ms: i64, id: &str, export: bool) -> Value {
    let (source, name) = if export {
        ("rds.amazonaws.com", "StartExportTask")
    } else {
        ("s3.amazonaws.com", "GetObject")
    };
    json!({
        "eventVersion": "1.09",
        "eventTime": format_ms(time_ms),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.30",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{account}:user/alice"), "principalId": "AIDAEXAMPLE", "accountId": account},
        "requestParameters": {"exportTaskIdentifier": id, "sourceArn": format!("arn:aws:rds:{region}:{account}:snapshot:db-{id}"), "s3BucketName": "exports", "iamRoleArn": format!("arn:aws:iam::{account}:role/export"), "kmsKeyId": "k"},
        "eventID": id,
        "recipientAccountId": account,
        "eventType": "AwsApiCall",
    })
}

/// The generated bucket: `(key, gzip body)` of every object, digests and insight
/// files included (they must never be read).
pub(crate) fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut objects = Vec::new();
    let mut n = 0usize;
    for (account, org) in ACCOUNTS {
        let base = if org {
            format!("trail/AWSLogs/{ORG}/{account}/")
        } else {
            format!("trail/AWSLogs/{account}/")
        };
        for region in REGIONS {
            for day in DAYS {
                let midnight = parse_event_time(&format!("{day}T00:00:00Z")).unwrap();
                let path = day.replace('-', "/");
                for j in 0..FILES_PER_PREFIX {
                    n += 1;
                    let minute = (j * 17 % 1440) as i64;
                    let time = midnight + minute * 60_000;
                    // Two neighbouring files in 37 carry an export, 17 minutes
                    // apart: the second falls in the first's dedup window.
                    let export = n % 37 < 2;
                    let records: Vec<Value> = (0..3)
                        .map(|r| {
                            let id = format!("{n:06}-{r}");
                            record(account, region, time + r * 1000, &id, r == 1 && export)
                        })
                        .collect();
                    let stamp = format_ms(time).replace(['-', ':'], "");
                    let key = format!(
                        "{base}CloudTrail/{region}/{path}/{account}_CloudTrail_{region}_{}Z_{j:04}.json.gz",
                        &stamp[..13]
                    );
                    objects.push((key, gzip(&json!({"Records": records}).to_string())));
                }
                objects.push((
                    format!("{base}CloudTrail-Digest/{region}/{path}/{account}_CloudTrail-Digest_{region}_t_{region}_{}T0100Z.json.gz", day.replace('-', "")),
                    gzip(r#"{"awsAccountId":"1","digestStartTime":"x"}"#),
                ));
                objects.push((
                    format!("{base}CloudTrail-Insight/{region}/{path}/{account}_CloudTrail-Insight_{region}_x.json.gz"),
                    gzip(r#"{"Records":[]}"#),
                ));
            }
        }
    }
    objects
}

pub(crate) fn is_log(key: &str) -> bool {
    key.contains("/CloudTrail/")
}

fn detector() -> Arc<Detector> {
    Arc::new(Detector::new(RuleSet::embedded(), Limits::default()))
}

fn alerter(sink: Arc<MemorySink>) -> Alerter {
    Alerter::new(
        Arc::new(RuleSet::embedded()),
        Arc::new(MemoryStore::new()),
        sink,
        AllowList::default(),
        None,
    )
}

/// Alerts and roll-ups, with object names made comparable: `s3://BUCKET/` is
/// written like the local copy `DIR/BUCKET/`.
fn published(sink: &MemorySink, bucket: &str, local: &Path) -> Vec<(String, String, String)> {
    let from = format!("s3://{bucket}/");
    let to = format!("{}/{bucket}/", local.display());
    sink.notifications()
        .into_iter()
        .map(|n| {
            (
                n.alert_id,
                without_latency(&n.document.replace(&from, &to)),
                n.email.replace(&from, &to),
            )
        })
        .collect()
}

async fn local_scan(paths: &[PathBuf]) -> (Arc<MemorySink>, ScanSummary) {
    let sink = Arc::new(MemorySink::new());
    let summary =
        trailwatch::files::run(&detector(), &alerter(Arc::clone(&sink)), paths, 4, false).await;
    (sink, summary)
}

struct Bucket {
    client: aws_sdk_s3::Client,
    _server: moto::MotoServer,
}

impl Bucket {
    fn scan(&self, lister: Arc<dyn Lister>, filters: Filters, jobs: usize) -> HistoryScan {
        HistoryScan {
            lister,
            source: Arc::new(S3Source::new(self.client.clone())) as Arc<dyn ObjectSource>,
            detector: detector(),
            filters,
            jobs,
            progress: Arc::new(Progress::default()),
            today: today(),
        }
    }
}

async fn history(scan: &HistoryScan, url: &S3Url) -> (Arc<MemorySink>, ScanSummary) {
    let started = Instant::now();
    let plan = plan(scan.lister.as_ref(), url, &scan.filters, scan.today)
        .await
        .unwrap();
    let collected = collect(scan, &plan, None).await.unwrap();
    let sink = Arc::new(MemorySink::new());
    let summary = decide(&alerter(Arc::clone(&sink)), collected, started).await;
    (sink, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_scans_against_moto() {
    let _alone = BUCKET_TESTS.lock().await;
    let server = moto::MotoServer::start();
    let conf = server.sdk_config().await;
    let client = server.s3_client(&conf);
    let name = moto::unique("history");
    client.create_bucket().bucket(&name).send().await.unwrap();
    let bucket = Bucket {
        client: client.clone(),
        _server: server,
    };

    // The same objects on disk, logs only, as DIR/BUCKET/KEY.
    let objects = corpus();
    let dir = tempfile::tempdir().unwrap();
    let mut log_count = 0;
    let mut log_bytes = 0;
    for (key, body) in &objects {
        if is_log(key) {
            let path = dir.path().join(&name).join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
            log_count += 1;
            log_bytes += body.len();
        }
    }
    assert!(log_count >= 5000);
    let uploading = Instant::now();
    stream::iter(objects)
        .map(|(key, body)| {
            let client = client.clone();
            let name = name.clone();
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
    eprintln!(
        "uploaded {log_count} log files in {:.1}s",
        uploading.elapsed().as_secs_f64()
    );
    let root = dir.path().join(&name);
    let url = S3Url::parse(&format!("s3://{name}/trail")).unwrap();

    // 1. Everything: the same alerts as the local scan of the same files.
    let local_started = Instant::now();
    let (local_sink, local) = local_scan(std::slice::from_ref(&root)).await;
    let local_secs = local_started.elapsed().as_secs_f64();
    eprintln!(
        "local scan of the same files: {:.0} objects/s, {:.2} MB/s compressed",
        local.counters.objects as f64 / local_secs,
        log_bytes as f64 / 1e6 / local_secs
    );
    assert!(local.failures.is_empty(), "{:?}", local.failures);
    let counting = Arc::new(CountingLister::new(S3Lister::new(client.clone())));
    let scan = bucket.scan(counting.clone(), Filters::default(), 32);
    // (Peak memory is measured on the `trailwatch scan s3://` process itself: this
    // test binary runs other tests beside this one.)
    let started = Instant::now();
    let (sink, summary) = history(&scan, &url).await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "history scan: {} objects, {} bytes in {secs:.2}s: {:.0} objects/s, {:.2} MB/s compressed, {:.2} MB/s decoded ({} ListObjectsV2 calls)",
        summary.counters.objects,
        log_bytes,
        summary.counters.objects as f64 / secs,
        log_bytes as f64 / 1e6 / secs,
        summary.counters.decoded_bytes as f64 / 1e6 / secs,
        counting.calls(),
    );
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(summary.counters.objects, log_count as u64);
    assert_eq!(summary.counters.objects, local.counters.objects);
    assert_eq!(summary.counters.records, local.counters.records);
    assert_eq!(summary.counters.matches, local.counters.matches);
    assert!(summary.counters.alerts > 10, "{:?}", summary.counters);
    assert!(summary.counters.suppressed > 0, "dedup is exercised");
    assert_eq!(
        published(&sink, &name, dir.path()),
        published(&local_sink, &name, dir.path())
    );
    assert!(
        counting
            .listed()
            .iter()
            .all(|(p, _)| !p.contains("Digest") && !p.contains("Insight")),
        "digest and insight folders are never listed"
    );
    assert_eq!(
        scan.progress.objects.load(Ordering::Relaxed),
        log_count as u64
    );

    // 2. Filters: only the matching prefixes are listed.
    counting.reset();
    let filters = Filters {
        window: Window {
            since_ms: Some(parse_since("2024-03-02", 0).unwrap()),
            until_ms: Some(parse_until("2024-03-03T12:00:00Z", 0).unwrap()),
        },
        accounts: ["111111111111".to_owned(), "333333333333".to_owned()].into(),
        regions: ["eu-west-1".to_owned()].into(),
    };
    let scan = bucket.scan(counting.clone(), filters, 16);
    let (sink, summary) = history(&scan, &url).await;
    let listed: Vec<(String, bool)> = counting.listed();
    let data: BTreeSet<String> = listed
        .iter()
        .filter(|(_, delimited)| !delimited)
        .map(|(p, _)| p.clone())
        .collect();
    let mut expected = BTreeSet::new();
    let mut local_paths = Vec::new();
    for account in ["111111111111", "333333333333"] {
        let base = if account == "333333333333" {
            format!("trail/AWSLogs/{ORG}/{account}/")
        } else {
            format!("trail/AWSLogs/{account}/")
        };
        for day in ["2024/03/02", "2024/03/03"] {
            let prefix = format!("{base}CloudTrail/eu-west-1/{day}/");
            local_paths.push(root.join(&prefix));
            expected.insert(prefix);
        }
    }
    assert_eq!(data, expected, "day prefixes listed");
    // AWSLogs/, the organisation, two accounts' regions, four day prefixes.
    assert_eq!(counting.calls(), 1 + 1 + 2 + 4, "{listed:#?}");
    let (local_sink, local) = local_scan(&local_paths).await;
    assert_eq!(summary.counters.objects, 4 * FILES_PER_PREFIX as u64);
    assert_eq!(summary.counters.matches, local.counters.matches);
    assert_eq!(
        published(&sink, &name, dir.path()),
        published(&local_sink, &name, dir.path())
    );

    // 3. Interrupted halfway, resumed from the checkpoint: the same alerts as an
    // uninterrupted run (one account's 15 prefixes keep the emulator's time short).
    let account = Filters {
        accounts: ["222222222222".to_owned()].into(),
        ..Filters::default()
    };
    let (reference, _) = local_scan(&[root.join("trail/AWSLogs/222222222222")]).await;
    let checkpoint_path = dir.path().join("scan.checkpoint");
    let identity = json!({"url": format!("s3://{name}/trail"), "accounts": ["222222222222"]});
    let scan = bucket.scan(counting.clone(), account.clone(), 8);
    let plan = plan(scan.lister.as_ref(), &url, &scan.filters, scan.today)
        .await
        .unwrap();
    let total = plan.len();
    assert_eq!(total, 15);
    {
        let mut checkpoint =
            Checkpoint::open(&checkpoint_path, &identity, Window::default()).unwrap();
        let progress = Arc::clone(&scan.progress);
        let half = async move {
            while progress.prefixes_done.load(Ordering::Relaxed) < total / 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            _ = collect(&scan, &plan, Some(&mut checkpoint)) => panic!("the scan finished before it was interrupted"),
            _ = half => {}
        }
    }
    counting.reset();
    let resumed = bucket.scan(counting.clone(), account, 8);
    let mut checkpoint = Checkpoint::open(&checkpoint_path, &identity, Window::default()).unwrap();
    let finished = checkpoint.done.len() as u64;
    assert!(finished > 0 && finished < total, "{finished} of {total}");
    let started = Instant::now();
    let collected = collect(&resumed, &plan, Some(&mut checkpoint))
        .await
        .unwrap();
    assert_eq!(collected.prefixes_resumed, finished);
    assert_eq!(collected.prefixes_listed, total - finished);
    let data_listings = counting.listed().iter().filter(|(_, d)| !d).count() as u64;
    assert_eq!(
        data_listings,
        total - finished,
        "finished prefixes are not listed again"
    );
    let sink = Arc::new(MemorySink::new());
    let summary = decide(&alerter(Arc::clone(&sink)), collected, started).await;
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(summary.counters.objects, 15 * FILES_PER_PREFIX as u64);
    assert!(summary.counters.alerts > 0);
    assert_eq!(
        published(&sink, &name, dir.path()),
        published(&reference, &name, dir.path())
    );
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

#[tokio::test]
async fn batch_operations_events_give_one_result_per_task_and_local_scan_alerts() {
    use trailwatch::batchops::{self, ResultCode};
    let objects = events_dir().join("objects");
    let demo = objects.join("trailwatch-demo-cloudtrail");
    let (local_sink, _) = local_scan(&[
        demo.join("AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
        demo.join("audit logs/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
    ])
    .await;
    assert!(!local_sink.notifications().is_empty());
    for (file, expected) in [
        (
            "batch-ops-v1.json",
            vec![
                ResultCode::Succeeded,
                ResultCode::Succeeded,
                ResultCode::Succeeded,
                ResultCode::PermanentFailure,
            ],
        ),
        (
            "batch-ops-v2.json",
            vec![ResultCode::Succeeded, ResultCode::Succeeded],
        ),
    ] {
        let event: Value =
            serde_json::from_slice(&std::fs::read(events_dir().join(file)).unwrap()).unwrap();
        assert!(batchops::is_batch_event(&event));
        let event = batchops::parse(&event).unwrap();
        let sink = Arc::new(MemorySink::new());
        let source = LocalSource::new(&objects);
        let (response, _) =
            batchops::run(&event, &detector(), &alerter(Arc::clone(&sink)), &source, 4).await;
        let codes: Vec<ResultCode> = response.results.iter().map(|r| r.result_code).collect();
        assert_eq!(codes, expected, "{file}: {response:#?}");
        assert_eq!(response.invocation_id, event.invocation_id);
        assert_eq!(
            response.invocation_schema_version,
            event.invocation_schema_version
        );
        for (task, result) in event.tasks.iter().zip(&response.results) {
            assert_eq!(task.task_id, result.task_id);
        }
        if file.contains("v1") {
            assert!(response.results[2].result_string.contains("skipped"));
            assert!(response.results[3].result_string.contains("not found"));
            assert!(response.results[3]
                .result_string
                .contains("s3://trailwatch-demo-cloudtrail/"));
        }
        let doc = serde_json::to_value(&response).unwrap();
        assert_eq!(doc["treatMissingKeysAs"], "PermanentFailure");
        assert!(doc["results"][0]["resultCode"].is_string());
        let from = "s3://trailwatch-demo-cloudtrail/";
        let to = format!("{}/", demo.display());
        let batch: Vec<String> = sink
            .notifications()
            .iter()
            .map(|n| without_latency(&n.document.replace(from, &to)))
            .collect();
        let local: Vec<String> = local_sink
            .notifications()
            .iter()
            .map(|n| without_latency(&n.document))
            .collect();
        assert_eq!(batch, local, "{file}");
    }
}

#[tokio::test]
async fn a_corrupt_object_is_a_permanent_failure_naming_the_cause() {
    use trailwatch::batchops::{self, ResultCode};
    let source = trailwatch::source::MemorySource::default().with(
        "b",
        "AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/x.json.gz",
        vec![0x1f, 0x8b, 0x08, 0x00, 0x01],
    );
    let event = batchops::parse(&json!({
        "invocationSchemaVersion": "2.0", "invocationId": "i", "job": {"id": "j"},
        "tasks": [{"taskId": "t1", "s3Bucket": "b", "s3Key": "AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/x.json.gz"}]
    }))
    .unwrap();
    let sink = Arc::new(MemorySink::new());
    let (response, counters) = batchops::run(&event, &detector(), &alerter(sink), &source, 1).await;
    assert_eq!(
        response.results[0].result_code,
        ResultCode::PermanentFailure
    );
    assert!(
        response.results[0].result_string.contains("gzip"),
        "{}",
        response.results[0].result_string
    );
    assert_eq!(counters.failed_objects, 1);
}

#[tokio::test]
async fn a_redriven_destination_record_alerts_like_the_original_event() {
    use trailwatch::config::Config;
    use trailwatch::handler::Handler;
    let original: Value =
        serde_json::from_slice(&std::fs::read(events_dir().join("s3-put.json")).unwrap()).unwrap();
    let destination = crate::support::fixtures::dead_letter_record(original.clone());
    let sqs = crate::support::fixtures::dead_letter_message(original.clone());
    let run = |event: Value| async move {
        let sink = Arc::new(MemorySink::new());
        let config = Config::from_env().unwrap();
        let handler = Handler::assemble(
            &config,
            RuleSet::embedded(),
            Arc::new(LocalSource::new(events_dir().join("objects"))),
            Arc::new(MemoryStore::new()),
            sink.clone(),
        );
        let response = handler.handle(event).await.unwrap();
        let docs: Vec<String> = sink
            .notifications()
            .into_iter()
            .map(|n| without_latency(&n.document))
            .collect();
        (response, docs)
    };
    let (_, expected) = run(original.clone()).await;
    assert!(!expected.is_empty());
    let (response, docs) = run(trailwatch::redrive::unwrap(sqs)).await;
    assert_eq!(docs, expected);
    assert_eq!(response["batchItemFailures"], json!([]));
    let (_, docs) = run(trailwatch::redrive::unwrap(destination)).await;
    assert_eq!(docs, expected);
}

#[tokio::test]
async fn a_prefix_with_a_failed_object_is_not_checkpointed_and_is_retried() {
    use trailwatch::history::list::MemoryLister;
    use trailwatch::source::MemorySource;
    let good = "AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/01/a.json.gz";
    let corrupt = "AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/02/b.json.gz";
    let gone = "AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/02/c.json.gz";
    let body = gzip(
        &json!({"Records": [record("111111111111", "us-east-1", 1_709_280_000_000, "e1", true)]})
            .to_string(),
    );
    let lister: Arc<dyn Lister> = Arc::new(MemoryLister::new(
        "bkt",
        [good, corrupt, gone].map(String::from),
    ));
    let source = MemorySource::default().with("bkt", good, body).with(
        "bkt",
        corrupt,
        b"{\"Records\":[".to_vec(),
    );
    let scan = HistoryScan {
        lister,
        source: Arc::new(source),
        detector: detector(),
        filters: Filters::default(),
        jobs: 2,
        progress: Arc::new(Progress::default()),
        today: today(),
    };
    let url = S3Url::parse("s3://bkt").unwrap();
    let plan = plan(scan.lister.as_ref(), &url, &scan.filters, scan.today)
        .await
        .unwrap();
    assert_eq!(plan.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp");
    let mut checkpoint = Checkpoint::open(&path, &json!({}), Window::default()).unwrap();
    let collected = collect(&scan, &plan, Some(&mut checkpoint)).await.unwrap();
    assert_eq!(collected.matches.len(), 1);
    assert_eq!(collected.counters.missing_objects, 1);
    assert_eq!(collected.failures.len(), 1);
    assert!(
        collected.failures[0].starts_with(&format!("s3://bkt/{corrupt}: ")),
        "{:?}",
        collected.failures
    );
    drop(checkpoint);
    let checkpoint = Checkpoint::open(&path, &json!({}), Window::default()).unwrap();
    assert_eq!(
        checkpoint.done,
        ["AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/01/".to_owned()].into(),
        "only the clean prefix is finished"
    );
}
