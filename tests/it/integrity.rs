//! Integrity: `trailwatch verify` against a bucket of signed digests on the
//! emulator, and the Lambda handler given digests (in-memory fakes, and moto with
//! the ledger in DynamoDB).
//!
//! Digests are signed with the throwaway key of `tests/data/integrity/` (AWS
//! publishes no private key), byte for byte in AWS's documented format.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use trailwatch::config::Config;
use trailwatch::dedup::MemoryStore;
use trailwatch::handler::Handler;
use trailwatch::integrity::alert::{build, DigestContext, Finding, FindingKind};
use trailwatch::integrity::digest::{hex, Digest};
use trailwatch::integrity::keys::StaticKeys;
use trailwatch::integrity::ledger::{DynamoLedger, MemoryLedger, ScanLedger};
use trailwatch::integrity::IntegrityWatch;
use trailwatch::rule::RuleSet;
use trailwatch::sink::securityhub::{finding_for, product_arn};
use trailwatch::sink::MemorySink;
use trailwatch::source::{MemorySource, ObjectRef};

use crate::support::fixtures::{gzip, s3_event};
use crate::support::moto;
use crate::support::stack::{export_record, other_record, Stack};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const TRAIL: &str = "main";
const FINGERPRINT: &str = "5c760abaa63b13867f5fc45e0598ab13";
const HOUR_MS: i64 = 3_600_000;
/// 2024-05-01T00:01:31Z: digests end at :01:31 past each hour, as AWS's do.
const BASE_MS: i64 = 1_714_521_691_000;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/integrity")
        .join(name)
}

fn public_keys() -> StaticKeys {
    StaticKeys::parse(
        "public-keys.json",
        &std::fs::read_to_string(data("public-keys.json")).unwrap(),
    )
    .unwrap()
}

fn sign(bytes: &[u8]) -> String {
    let pem = std::fs::read_to_string(data("test-signing-key.pem")).unwrap();
    let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = aws_smithy_types::base64::decode(base64).unwrap();
    let key = rsa::PrivateKey::from_pkcs1_der(&der).unwrap();
    hex(&SigningKey::<Sha256>::new(key).sign(bytes).to_bytes())
}

fn time(ms: i64) -> String {
    trailwatch::time::format_ms(ms)
}

fn stamp(ms: i64, seconds: bool) -> String {
    let t = time(ms).replace(['-', ':'], "");
    if seconds {
        t
    } else {
        format!("{}Z", &t[..13])
    }
}

fn day(ms: i64) -> String {
    time(ms)[..10].replace('-', "/")
}

fn log_key(at_ms: i64, name: &str) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{}/{ACCOUNT}_CloudTrail_{REGION}_{}_{name}.json.gz",
        day(at_ms),
        stamp(at_ms, false)
    )
}

fn digest_key(end_ms: i64) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/{}/{ACCOUNT}_CloudTrail-Digest_{REGION}_{TRAIL}_{REGION}_{}.json.gz",
        day(end_ms),
        stamp(end_ms, true)
    )
}

/// A signed digest object: its key, gzip bytes, signature, and what the next
/// digest's `previousDigest*` fields say of it.
struct SignedDigest {
    key: String,
    bytes: Vec<u8>,
    signature: String,
    sha256: String,
}

/// A digest laid out as CloudTrail writes them (the documented field order).
fn digest(
    bucket: &str,
    hour: i64,
    previous: Option<&SignedDigest>,
    files: &[(String, Vec<u8>)],
) -> SignedDigest {
    let start = BASE_MS + hour * HOUR_MS;
    let end = start + HOUR_MS;
    let key = digest_key(end);
    let log_files: Vec<Value> = files
        .iter()
        .map(|(k, json)| {
            json!({
                "s3Bucket": bucket, "s3Object": k,
                "hashValue": hex(&Sha256::digest(json)), "hashAlgorithm": "SHA-256",
                "newestEventTime": time(start), "oldestEventTime": time(start)
            })
        })
        .collect();
    let doc = json!({
        "awsAccountId": ACCOUNT,
        "digestStartTime": time(start),
        "digestEndTime": time(end),
        "digestS3Bucket": bucket,
        "digestS3Object": key,
        "digestPublicKeyFingerprint": FINGERPRINT,
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": time(start),
        "oldestEventTime": time(start),
        "previousDigestS3Bucket": previous.map(|_| bucket),
        "previousDigestS3Object": previous.map(|p| p.key.clone()),
        "previousDigestHashValue": previous.map(|p| p.sha256.clone()),
        "previousDigestHashAlgorithm": previous.map(|_| "SHA-256"),
        "previousDigestSignature": previous.map(|p| p.signature.clone()),
        "logFiles": log_files,
    });
    let inflated = serde_json::to_vec_pretty(&doc).unwrap();
    let parsed = Digest::parse_inflated(&inflated).unwrap();
    SignedDigest {
        key,
        signature: sign(parsed.digest.signing_string(&parsed.sha256).as_bytes()),
        sha256: hex(&parsed.sha256),
        bytes: gzip(&inflated),
    }
}

/// A log file's uncompressed JSON: one harmless record, or an export.
fn log_json(event_id: &str, at_ms: i64, export: bool) -> Vec<u8> {
    let record = if export {
        export_record(event_id, &time(at_ms), ACCOUNT, "orders-prod")
    } else {
        other_record(event_id, &time(at_ms), ACCOUNT)
    };
    serde_json::to_vec(&json!({"Records": [record]})).unwrap()
}

/// The bucket of the emulator test: four hours of log files, two per hour,
/// and five chained digests (the last one empty), in upload order.
struct History {
    logs: Vec<(String, Vec<u8>)>,
    digests: Vec<SignedDigest>,
}

fn history(bucket: &str) -> History {
    let mut logs = Vec::new();
    let mut digests: Vec<SignedDigest> = Vec::new();
    for hour in 0..5 {
        let start = BASE_MS + hour * HOUR_MS;
        let files: Vec<(String, Vec<u8>)> = if hour < 4 {
            [("a", 10), ("b", 30)]
                .iter()
                .map(|(name, minutes)| {
                    let at = start + minutes * 60_000;
                    (
                        log_key(at, &format!("{name}{hour}")),
                        log_json(&format!("e-{hour}-{name}"), at, false),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let signed = digest(bucket, hour, digests.last(), &files);
        logs.extend(files);
        digests.push(signed);
    }
    History { logs, digests }
}

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
        .stdin(Stdio::null());
    command
}

/// `verify --format json`: exit code and verdicts.
fn verify(endpoint: &str, bucket: &str) -> (Option<i32>, Vec<Value>, String) {
    let output = trailwatch(endpoint)
        .args([
            "verify",
            &format!("s3://{bucket}"),
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-01T05:00:00Z",
            "--public-keys",
            data("public-keys.json").to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let verdicts = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        output.status.code(),
        verdicts,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn failing(verdicts: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = verdicts
        .iter()
        .filter(|v| !matches!(v["status"].as_str(), Some("valid" | "unverified")))
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["object"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn verify_finds_exactly_a_deleted_log_file_an_edited_one_and_a_deleted_digest() {
    let server = moto::MotoServer::start();
    let conf = server.sdk_config().await;
    let s3 = server.s3_client(&conf);
    let bucket = moto::unique("integrity");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let history = history(&bucket);
    for (key, json) in &history.logs {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(gzip(json)))
            .send()
            .await
            .unwrap();
    }
    for d in &history.digests {
        s3.put_object()
            .bucket(&bucket)
            .key(&d.key)
            .body(ByteStream::from(d.bytes.clone()))
            .metadata("signature", &d.signature)
            .metadata("signature-algorithm", "SHA256withRSA")
            .send()
            .await
            .unwrap();
    }

    let (code, verdicts, stderr) = verify(&server.endpoint, &bucket);
    assert_eq!(code, Some(0), "{stderr}");
    let valid = |kind: &str| {
        verdicts
            .iter()
            .filter(|v| v["kind"] == kind && v["status"] == "valid")
            .count()
    };
    assert_eq!((valid("digest"), valid("logFile")), (5, 8), "{verdicts:?}");
    assert_eq!(verdicts.len(), 13, "{verdicts:?}");

    // Delete a log file of hour 0, edit one byte of one of hour 2, delete the
    // digest of hour 1.
    let deleted = &history.logs[0].0;
    let (edited, json) = &history.logs[5];
    let mut changed = json.clone();
    let at = changed.windows(9).position(|w| w == b"Snapshots").unwrap();
    changed[at] = b's';
    let deleted_digest = &history.digests[1].key;
    s3.delete_object()
        .bucket(&bucket)
        .key(deleted)
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket(&bucket)
        .key(deleted_digest)
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key(edited)
        .body(ByteStream::from(gzip(&changed)))
        .send()
        .await
        .unwrap();

    let (code, verdicts, stderr) = verify(&server.endpoint, &bucket);
    assert_eq!(code, Some(1), "{stderr}");
    let url = |key: &str| format!("s3://{bucket}/{key}");
    let mut expected = vec![
        (
            "digest".to_owned(),
            url(deleted_digest),
            "missing".to_owned(),
        ),
        ("logFile".to_owned(), url(deleted), "missing".to_owned()),
        ("logFile".to_owned(), url(edited), "modified".to_owned()),
    ];
    expected.sort();
    assert_eq!(failing(&verdicts), expected, "{verdicts:?}");
    // The two files of the deleted digest's hour cannot be checked, and say so.
    let unverified: Vec<&Value> = verdicts
        .iter()
        .filter(|v| v["status"] == "unverified")
        .collect();
    assert_eq!(unverified.len(), 2, "{verdicts:?}");
    assert!(unverified
        .iter()
        .all(|v| v["detail"] == "its digest is missing"));
    assert!(stderr.contains("1 MISSING"), "{stderr}");

    // The text format names the same three, validate-logs style.
    let output = trailwatch(&server.endpoint)
        .args([
            "verify",
            &format!("s3://{bucket}"),
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-01T05:00:00Z",
            "--public-keys",
            data("public-keys.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text.contains(&format!("Log file\t{}\tMISSING: not found", url(deleted))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Log file\t{}\tMODIFIED: hash value doesn't match",
            url(edited)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("Digest file\t{}\tMISSING", url(deleted_digest))),
        "{text}"
    );
}

#[tokio::test]
async fn verify_reports_an_unlisted_file_and_refuses_bad_arguments() {
    let server = moto::MotoServer::start();
    let conf = server.sdk_config().await;
    let s3 = server.s3_client(&conf);
    let bucket = moto::unique("integrity");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let history = history(&bucket);
    for d in &history.digests {
        s3.put_object()
            .bucket(&bucket)
            .key(&d.key)
            .body(ByteStream::from(d.bytes.clone()))
            .metadata("signature", &d.signature)
            .metadata("signature-algorithm", "SHA256withRSA")
            .send()
            .await
            .unwrap();
    }
    for (key, json) in &history.logs {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(gzip(json)))
            .send()
            .await
            .unwrap();
    }
    // A file CloudTrail never delivered, in hour 1, with an export in it.
    let planted_at = BASE_MS + HOUR_MS + 20 * 60_000;
    let planted = log_key(planted_at, "planted");
    s3.put_object()
        .bucket(&bucket)
        .key(&planted)
        .body(ByteStream::from(gzip(&log_json(
            "planted", planted_at, true,
        ))))
        .send()
        .await
        .unwrap();
    let (code, verdicts, stderr) = verify(&server.endpoint, &bucket);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        failing(&verdicts),
        vec![(
            "logFile".to_owned(),
            format!("s3://{bucket}/{planted}"),
            "unlisted".to_owned()
        )]
    );

    // `scan --verify` alerts on the planted export, and says where it came from.
    let output = trailwatch(&server.endpoint)
        .args([
            "scan",
            "--format",
            "json",
            "--no-progress",
            &format!("s3://{bucket}"),
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-01T05:00:00Z",
            "--verify",
            "--public-keys",
            data("public-keys.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let alerts: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{stdout}");
    assert_eq!(alerts[0]["source"], format!("s3://{bucket}/{planted}"));
    assert!(
        stderr.contains(&format!(
            "alerts from s3://{bucket}/{planted} come from a log file that failed verification (UNLISTED"
        )),
        "{stderr}"
    );

    for (args, expected) in [
        (vec!["verify", "s3://x-bucket"], "needs --since"),
        (
            vec!["verify", "s3:/bad", "--since", "1d"],
            "not an S3 location",
        ),
        (
            vec![
                "verify",
                "s3://x-bucket",
                "--since",
                "1d",
                "--public-keys",
                "/nonexistent.json",
            ],
            "/nonexistent.json",
        ),
    ] {
        let output = trailwatch(&server.endpoint).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// The handler with integrity on, over memory: objects, dedup, ledger, sink.
fn memory_handler(source: MemorySource) -> (Handler, Arc<MemorySink>, Arc<MemoryLedger>) {
    let sink = Arc::new(MemorySink::new());
    let ledger = Arc::new(MemoryLedger::new());
    let handler = Handler::assemble(
        &Config::default(),
        RuleSet::embedded(),
        Arc::new(source),
        Arc::new(MemoryStore::new()),
        sink.clone(),
    )
    .with_integrity(IntegrityWatch::new(Arc::new(public_keys()), ledger.clone()));
    (handler, sink, ledger)
}

fn with_digest(source: MemorySource, bucket: &str, d: &SignedDigest) -> MemorySource {
    source
        .with(bucket, &d.key, d.bytes.clone())
        .with_metadata(bucket, &d.key, "signature", &d.signature)
        .with_metadata(bucket, &d.key, "signature-algorithm", "SHA256withRSA")
}

#[tokio::test]
async fn a_digest_listing_a_file_never_notified_scans_it_and_alerts() {
    let bucket = "trail-bucket";
    let at = BASE_MS + 10 * 60_000;
    let seen = (log_key(at, "seen"), log_json("e-seen", at, false));
    let lost = (log_key(at + 60_000, "lost"), log_json("e-export", at, true));
    let d = digest(bucket, 0, None, &[seen.clone(), lost.clone()]);
    let source = MemorySource::default()
        .with(bucket, &seen.0, gzip(&seen.1))
        .with(bucket, &lost.0, gzip(&lost.1));
    let (handler, sink, ledger) = memory_handler(with_digest(source, bucket, &d));
    // Only the first file's notification arrives.
    handler.handle(s3_event(bucket, &[&seen.0])).await.unwrap();
    assert!(sink.notifications().is_empty());
    let object = |key: &str| ObjectRef {
        bucket: bucket.into(),
        key: key.into(),
    };
    let recorded = ledger
        .scanned(&[object(&seen.0), object(&lost.0)])
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1, "the notified file is in the ledger");
    assert_eq!(
        hex(&recorded[&object(&seen.0)]),
        hex(&Sha256::digest(&seen.1))
    );

    handler.handle(s3_event(bucket, &[&d.key])).await.unwrap();
    let published = sink.notifications();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].kind, "alert");
    assert_eq!(published[0].rule_id, "AWS.RDS.SnapshotExport");
    let doc: Value = serde_json::from_str(&published[0].document).unwrap();
    assert_eq!(doc["source"], format!("s3://{bucket}/{}", lost.0));
    assert_eq!(ledger.scanned(&[object(&lost.0)]).await.unwrap().len(), 1);

    // A redelivered digest notification is recognised: nothing more.
    handler.handle(s3_event(bucket, &[&d.key])).await.unwrap();
    assert_eq!(sink.notifications().len(), 1);
}

#[tokio::test]
async fn a_digest_listing_a_deleted_file_publishes_one_integrity_alert() {
    let bucket = "trail-bucket";
    let at = BASE_MS + 10 * 60_000;
    let kept = (log_key(at, "kept"), log_json("e-kept", at, false));
    let gone = (log_key(at + 60_000, "gone"), log_json("e-gone", at, true));
    let d = digest(bucket, 0, None, &[kept.clone(), gone.clone()]);
    let source = MemorySource::default().with(bucket, &kept.0, gzip(&kept.1));
    let (handler, sink, _) = memory_handler(with_digest(source, bucket, &d));
    handler.handle(s3_event(bucket, &[&kept.0])).await.unwrap();
    handler.handle(s3_event(bucket, &[&d.key])).await.unwrap();
    let published = sink.notifications();
    assert_eq!(published.len(), 1, "{published:?}");
    let alert = &published[0];
    assert_eq!(
        (alert.kind, alert.rule_id.as_str()),
        ("integrity", "Trailwatch.CloudTrail.Integrity")
    );
    assert_eq!(alert.severity.label(), "HIGH");
    let doc: Value = serde_json::from_str(&alert.document).unwrap();
    assert_eq!(doc["findings"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["findings"][0]["kind"], "missing");
    assert_eq!(
        doc["findings"][0]["object"],
        format!("s3://{bucket}/{}", gone.0)
    );
    assert!(alert
        .email
        .contains(&format!("Missing: s3://{bucket}/{}", gone.0)));
    assert!(alert
        .email
        .contains(&format!("account {ACCOUNT}, region {REGION}")));
    assert!(
        alert.email.contains("2024-05-01T00:01:31Z"),
        "{}",
        alert.email
    );
}

#[tokio::test]
async fn tampered_signatures_wrong_keys_and_broken_chains_alert_without_panicking() {
    let bucket = "trail-bucket";
    let first = digest(bucket, 0, None, &[]);
    let second = digest(bucket, 1, Some(&first), &[]);
    let cases: Vec<(&str, MemorySource, String, &str)> = {
        // 1. The second digest's signature, one digit changed.
        let mut tampered = second.signature.clone().into_bytes();
        tampered[7] = if tampered[7] == b'a' { b'b' } else { b'a' };
        let tampered = SignedDigest {
            signature: String::from_utf8(tampered).unwrap(),
            key: second.key.clone(),
            bytes: second.bytes.clone(),
            sha256: second.sha256.clone(),
        };
        // 2. A digest naming a fingerprint no CloudTrail key has.
        let inflated = {
            use std::io::Read;
            let mut out = String::new();
            flate2::read::GzDecoder::new(&second.bytes[..])
                .read_to_string(&mut out)
                .unwrap();
            out.replace(FINGERPRINT, "00000000000000000000000000000000")
        };
        let parsed = Digest::parse_inflated(inflated.as_bytes()).unwrap();
        let wrong_key = SignedDigest {
            key: second.key.clone(),
            signature: sign(parsed.digest.signing_string(&parsed.sha256).as_bytes()),
            bytes: gzip(inflated.as_bytes()),
            sha256: hex(&parsed.sha256),
        };
        // 3. The first digest replaced by another one (signed, but not the one
        // the second names).
        let impostor = digest(bucket, 0, None, &[(log_key(BASE_MS, "x"), b"{}".to_vec())]);
        vec![
            (
                "signature verification failed",
                with_digest(with_digest(MemorySource::default(), bucket, &first), bucket, &tampered),
                second.key.clone(),
                "invalidDigest",
            ),
            (
                "public key not found in region us-east-1 for fingerprint 00000000000000000000000000000000",
                with_digest(with_digest(MemorySource::default(), bucket, &first), bucket, &wrong_key),
                second.key.clone(),
                "invalidDigest",
            ),
            (
                "broken chain: the signature of the previous digest",
                with_digest(with_digest(MemorySource::default(), bucket, &impostor), bucket, &second),
                second.key.clone(),
                "brokenChain",
            ),
            (
                "broken chain: the previous digest",
                with_digest(MemorySource::default(), bucket, &second),
                second.key.clone(),
                "brokenChain",
            ),
            (
                "invalid format",
                MemorySource::default().with(bucket, &second.key, b"\x1f\x8b\x08 not gzip".to_vec()),
                second.key.clone(),
                "invalidDigest",
            ),
        ]
    };
    for (expected, source, key, kind) in cases {
        let (handler, sink, _) = memory_handler(source);
        let response = handler.handle(s3_event(bucket, &[&key])).await;
        assert!(response.is_ok(), "{expected}: {response:?}");
        let published = sink.notifications();
        assert_eq!(published.len(), 1, "{expected}: {published:?}");
        let doc: Value = serde_json::from_str(&published[0].document).unwrap();
        let finding = &doc["findings"][0];
        assert_eq!(finding["kind"], kind, "{doc}");
        assert!(
            finding["detail"].as_str().unwrap().starts_with(expected),
            "{expected}: {doc}"
        );
    }
    // The untampered pair: no alert at all.
    let source = with_digest(
        with_digest(MemorySource::default(), bucket, &first),
        bucket,
        &second,
    );
    let (handler, sink, _) = memory_handler(source);
    handler
        .handle(s3_event(bucket, &[&second.key]))
        .await
        .unwrap();
    assert!(
        sink.notifications().is_empty(),
        "{:?}",
        sink.notifications()
    );
}

#[tokio::test]
async fn on_the_emulator_the_ledger_lives_in_the_dedup_table_and_rollups_ignore_it() {
    let stack = Stack::start().await;
    let bucket = stack.bucket.clone();
    let at = BASE_MS + 10 * 60_000;
    let lost = (log_key(at, "lost"), log_json("e-lost", at, true));
    let gone = (log_key(at + 60_000, "gone"), log_json("e-gone", at, false));
    let d = digest(&bucket, 0, None, &[lost.clone(), gone.clone()]);
    stack.put_object(&lost.0, gzip(&lost.1)).await;
    stack
        .s3
        .put_object()
        .bucket(&bucket)
        .key(&d.key)
        .body(ByteStream::from(d.bytes.clone()))
        .metadata("signature", &d.signature)
        .metadata("signature-algorithm", "SHA256withRSA")
        .send()
        .await
        .unwrap();
    let ledger = Arc::new(DynamoLedger::new(stack.dynamodb.clone(), &stack.table));
    let handler = stack
        .handler(None)
        .with_integrity(IntegrityWatch::new(Arc::new(public_keys()), ledger.clone()));
    handler
        .handle(stack.s3_event(std::slice::from_ref(&d.key)))
        .await
        .unwrap();
    let mut delivered = stack.drain().await;
    delivered.sort_by(|a, b| a.kind().cmp(b.kind()));
    let kinds: Vec<&str> = delivered.iter().map(|d| d.kind()).collect();
    assert_eq!(kinds, ["alert", "integrity"], "{delivered:?}");
    assert_eq!(delivered[0].document["eventId"], "e-lost");
    assert_eq!(
        delivered[1].document["findings"][0]["object"],
        format!("s3://{bucket}/{}", gone.0)
    );
    assert_eq!(
        delivered[1].attribute("rule_id"),
        Some("Trailwatch.CloudTrail.Integrity")
    );
    let object = ObjectRef {
        bucket: bucket.clone(),
        key: lost.0.clone(),
    };
    let recorded = ledger.scanned(std::slice::from_ref(&object)).await.unwrap();
    assert_eq!(hex(&recorded[&object]), hex(&Sha256::digest(&lost.1)));
    // The scheduled roll-up flush scans the same table: the ledger's items are
    // not windows, and nothing is published for them.
    handler
        .handle(crate::support::stack::scheduled_event())
        .await
        .unwrap();
    assert!(stack.drain().await.is_empty());
    // A redelivered digest: recorded as checked, skipped.
    handler
        .handle(stack.s3_event(std::slice::from_ref(&d.key)))
        .await
        .unwrap();
    assert!(stack.drain().await.is_empty());
}

/// The stack's silence alarms (`make template` lints the file; this checks that
/// the alarms say what docs/integrity.md says they do).
#[test]
fn the_template_alarms_on_silence() {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
            .unwrap();
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let resources = &template["Resources"];
    let alarm = |name: &str| {
        let resource = &resources[name];
        assert_eq!(
            resource["Type"].as_str(),
            Some("AWS::CloudWatch::Alarm"),
            "{name}"
        );
        let properties = resource["Properties"].clone();
        let actions = format!("{:?}", properties["AlarmActions"]);
        assert!(actions.contains("AlertTopic"), "{name}: {actions}");
        properties
    };
    let heartbeat = alarm("HeartbeatAlarm");
    assert_eq!(heartbeat["Namespace"].as_str(), Some("trailwatch"));
    assert_eq!(heartbeat["MetricName"].as_str(), Some("Objects"));
    assert_eq!(heartbeat["TreatMissingData"].as_str(), Some("breaching"));
    assert_eq!(
        heartbeat["ComparisonOperator"].as_str(),
        Some("LessThanThreshold")
    );
    assert!(format!("{:?}", heartbeat["EvaluationPeriods"]).contains("HeartbeatMinutes"));
    for (name, namespace, metric) in [
        ("FunctionThrottlesAlarm", "AWS/Lambda", "Throttles"),
        (
            "AsyncEventsDroppedAlarm",
            "AWS/Lambda",
            "AsyncEventsDropped",
        ),
        (
            "DestinationDeliveryFailuresAlarm",
            "AWS/Lambda",
            "DestinationDeliveryFailures",
        ),
        (
            "ObjectCreatedRuleFailedInvocationsAlarm",
            "AWS/Events",
            "FailedInvocations",
        ),
        (
            "RealTimeRuleFailedInvocationsAlarm",
            "AWS/Events",
            "FailedInvocations",
        ),
        (
            "FlushScheduleFailedInvocationsAlarm",
            "AWS/Events",
            "FailedInvocations",
        ),
    ] {
        let properties = alarm(name);
        assert_eq!(properties["Namespace"].as_str(), Some(namespace), "{name}");
        assert_eq!(properties["MetricName"].as_str(), Some(metric), "{name}");
    }
    // The functions are told (their shared environment), and the parameters exist.
    let environment = format!("{:?}", template["Globals"]["Function"]["Environment"]);
    assert!(
        environment.contains("TRAILWATCH_INTEGRITY"),
        "{environment}"
    );
    for parameter in ["EnableIntegrity", "HeartbeatMinutes"] {
        assert!(!template["Parameters"][parameter].is_null(), "{parameter}");
    }
}

/// A loopback server answering CloudTrail's JSON protocol with `pages` in turn
/// (one response per request), recording each request's target and body.
async fn fake_cloudtrail(
    pages: Vec<(u16, String)>,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut pages = pages.into_iter();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = Vec::new();
            loop {
                // One request: headers, then Content-Length bytes of body.
                let head_end = loop {
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(at + 4);
                    }
                    let mut chunk = [0u8; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let Some(head_end) = head_end else { break };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let mut chunk = [0u8; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
                let target = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-amz-target:"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                log.lock().unwrap().push(format!("{target} {body}"));
                buf.drain(..head_end + length);
                let (status, answer) = pages.next().unwrap_or((500, "{}".into()));
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                if socket.write_all(response.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    });
    (url, seen)
}

async fn sdk_config_for(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(url)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

#[tokio::test]
async fn list_public_keys_through_the_sdk_pages_and_reports_throttling() {
    use trailwatch::integrity::keys::{CloudTrailKeys, KeyError, KeyRing, PublicKeySource};
    let keys = public_keys().0;
    let value = aws_smithy_types::base64::encode(&keys[0].der);
    let pages = vec![
        (
            200,
            json!({"PublicKeyList": [{"Value": aws_smithy_types::base64::encode(b"not a key"),
                    "ValidityStartTime": 1.7145e9, "ValidityEndTime": 1.7146e9, "Fingerprint": "other"}],
                   "NextToken": "page-2"})
            .to_string(),
        ),
        (
            200,
            json!({"PublicKeyList": [{"Value": value, "ValidityStartTime": 1.7145e9,
                    "ValidityEndTime": 1.7146e9, "Fingerprint": FINGERPRINT}]})
            .to_string(),
        ),
        (
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}).to_string(),
        ),
    ];
    let (url, seen) = fake_cloudtrail(pages).await;
    let source = Arc::new(CloudTrailKeys::new(&sdk_config_for(&url).await));
    let ring = KeyRing::new(source.clone());
    ring.key("us-east-2", FINGERPRINT, BASE_MS, BASE_MS + HOUR_MS)
        .await
        .unwrap();
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[0].starts_with("cloudtrail_20131101.listpublickeys "),
        "{requests:?}"
    );
    assert!(
        requests[1].contains("\"NextToken\":\"page-2\""),
        "{requests:?}"
    );
    // An unreadable key under another fingerprint is named, not a panic.
    let other = ring
        .key("us-east-2", "other", BASE_MS, BASE_MS + HOUR_MS)
        .await;
    assert!(other.unwrap_err().to_string().contains("cannot be read"));
    // A throttled call is a failure with its cause, for Lambda to retry.
    let error = source
        .list("us-east-2", BASE_MS, BASE_MS + HOUR_MS)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, KeyError::List { cause, .. } if *cause == trailwatch::aws_error::Cause::Throttled),
        "{error}"
    );
    assert!(error.to_string().contains("us-east-2"), "{error}");
}

/// With Security Hub on, an integrity alert is imported like a rule alert
/// (tested here, not in the sink's unit tests, so that `sink` does not import
/// `integrity`, which publishes through it).
#[test]
fn an_integrity_alert_is_a_finding_on_its_digest_and_files() {
    let digest = "s3://trail/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/15/d.json.gz";
    let missing = "s3://trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/15/f.json.gz";
    let context = DigestContext {
        digest: digest.into(),
        account: "111122223333".into(),
        region: "us-east-1".into(),
        start_ms: Some(1_710_496_891_000),
        end_ms: Some(1_710_500_491_000),
    };
    let findings = [Finding {
        kind: FindingKind::Missing,
        object: missing.into(),
        detail: "listed by the digest, not in the bucket".into(),
    }];
    let notification = build(&context, &findings).unwrap();
    let product = product_arn("aws", "us-east-1", "999988887777");
    let finding = finding_for(&notification, &product, "2024-03-15T12:00:00Z")
        .unwrap()
        .expect("integrity alerts are findings");
    assert_eq!(finding.types(), ["TTPs/Defense Evasion/T1070"]);
    assert_eq!(finding.aws_account_id(), Some("999988887777"));
    // Observed at the end of the digest's hour, not when it was checked.
    assert_eq!(
        finding.first_observed_at(),
        Some(trailwatch::time::format_ms(1_710_500_491_000).as_str())
    );
    let resources: Vec<(&str, &str)> = finding
        .resources()
        .iter()
        .map(|r| (r.r#type().unwrap_or(""), r.id().unwrap_or("")))
        .collect();
    assert_eq!(
        resources,
        [
            ("AwsAccount", "AWS::::Account:111122223333"),
            ("AwsS3Object", digest),
            ("AwsS3Object", missing)
        ]
    );
    let fields = finding.product_fields().unwrap();
    assert_eq!(fields["trailwatch/integrity/missing"], "1");
    assert_eq!(fields["trailwatch/integrity/digest"], digest);
    assert_eq!(
        fields["trailwatch/ruleId"],
        "Trailwatch.CloudTrail.Integrity"
    );
    // No principal: an integrity alert has none, and says nothing of one.
    assert!(
        !fields.contains_key("trailwatch/principalArn"),
        "{fields:?}"
    );
    assert!(fields.values().all(|v| v != "unknown"), "{fields:?}");
}
