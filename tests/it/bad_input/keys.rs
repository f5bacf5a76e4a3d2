//! Keys: URL-decoded, classified by CloudTrail's layout (other log types and digests
//! skipped and counted), undecodable ones a clear trigger error; and `scan` over a
//! folder of good and bad files names every bad one.

use super::*;

/// really is (`None`: the key is skipped and never fetched).
const KEYS: &[(&str, &str, Option<&str>)] = &[
    (
        "plain log file",
        "AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
        Some("AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
    ),
    (
        "organisation trail",
        "AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
        Some("AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
    ),
    (
        "bucket prefix",
        "security/trails/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/03/15/123456789012_CloudTrail_eu-west-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
        Some("security/trails/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/03/15/123456789012_CloudTrail_eu-west-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
    ),
    (
        "prefix with + for a space, organisation trail",
        "audit+logs/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
        Some("audit logs/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
    ),
    (
        "prefix with %XX escapes (a real + and parentheses)",
        "c%2B%2B+team%20%28eu%29/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/03/15/123456789012_CloudTrail_eu-west-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
        Some("c++ team (eu)/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/03/15/123456789012_CloudTrail_eu-west-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
    ),
    (
        "prefix with escaped UTF-8",
        "journ%C3%A9es%3Dprod/AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz",
        Some("journées=prod/AWSLogs/123456789012/CloudTrail/us-east-1/2024/03/15/123456789012_CloudTrail_us-east-1_20240315T1035Z_Vq3xT9bLkP2mRz8A.json.gz"),
    ),
    (
        "digest file",
        "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/03/15/123456789012_CloudTrail-Digest_us-east-1_trail_us-east-1_20240315T113512Z.json.gz",
        None,
    ),
    (
        "organisation digest file under a prefix",
        "audit+logs/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail-Digest/us-east-1/2024/03/15/123456789012_CloudTrail-Digest_us-east-1_trail_us-east-1_20240315T113512Z.json.gz",
        None,
    ),
    (
        "Insights file",
        "AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2024/03/15/123456789012_CloudTrail-Insight_us-east-1_20240315T1040Z_a1B2c3D4e5F6g7H8.json.gz",
        None,
    ),
    (
        "another service's logs in the same bucket",
        "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/03/15/123456789012_elasticloadbalancing_us-east-1_app.web.1a2b3c_20240315T1035Z_10.0.1.5_x.log.gz",
        None,
    ),
    (
        "AWS Config snapshot",
        "AWSLogs/123456789012/Config/us-east-1/2024/3/15/ConfigSnapshot/123456789012_Config_us-east-1_ConfigSnapshot_20240315T103500Z_x.json.gz",
        None,
    ),
    ("not under AWSLogs", "exports/orders-prod.json.gz", None),
    (
        "account id of the wrong length",
        "AWSLogs/12345678901/CloudTrail/us-east-1/2024/03/15/x.json.gz",
        None,
    ),
];

fn eventbridge_event(key: &str) -> Value {
    json!({
        "version": "0", "id": "3a1d5e8c-7b2f-4c9a-be61-0d4f2a8c6e13", "detail-type": "Object Created",
        "source": "aws.s3", "account": "123456789012", "time": "2024-03-15T10:40:12Z",
        "region": "us-east-1", "resources": [format!("arn:aws:s3:::{BUCKET}")],
        "detail": {"version": "0", "bucket": {"name": BUCKET},
                   "object": {"key": key, "size": 1371, "etag": "d41d8cd98f00b204e9800998ecf8427e",
                              "sequencer": "0065F4219C5A8E2B1D"},
                   "request-id": "C3D13FE58DE4C810", "requester": "cloudtrail.amazonaws.com",
                   "source-ip-address": "10.212.14.90", "reason": "PutObject"}
    })
}

#[tokio::test]
async fn keys_are_decoded_classified_and_counted() {
    for (name, encoded, real) in KEYS {
        let events = [
            ("S3", s3_notification(&[encoded])),
            ("SNS", sns_event(&s3_notification(&[encoded]))),
            ("EventBridge", eventbridge_event(encoded)),
        ];
        for (route, event) in events {
            let mut source = MemorySource::default();
            if let Some(real) = real {
                source = source.with(BUCKET, real, good_object());
            }
            let (handler, sink) = new_handler(source, Limits::default());
            let Trigger::Objects(objects) = parse_trigger(&event).unwrap() else {
                panic!("{name} via {route}: an object trigger");
            };
            let decoded: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
            if let Some(real) = real {
                assert_eq!(decoded, [*real], "{name} via {route}");
            }
            let outcome = handler.process_objects(objects).await;
            let c = &outcome.counters;
            assert!(
                outcome.failures.is_empty(),
                "{name} via {route}: {:?}",
                outcome.failures
            );
            assert_eq!(
                c.missing_objects, 0,
                "{name} via {route}: fetched the wrong key"
            );
            match real {
                Some(_) => {
                    assert_eq!((c.objects, c.skipped_keys), (1, 0), "{name} via {route}");
                    assert_eq!(sink.notifications().len(), 1, "{name} via {route}");
                }
                None => {
                    assert_eq!((c.objects, c.skipped_keys), (0, 1), "{name} via {route}");
                    assert!(sink.notifications().is_empty(), "{name} via {route}");
                }
            }
            // The whole invocation agrees: no error, the alert or nothing.
            let (handler, _) = handler_with(real);
            let response = handler.handle(event).await.unwrap();
            assert_eq!(
                response,
                json!({"alerts": u64::from(real.is_some())}),
                "{name} via {route}"
            );
        }
    }
}

fn handler_with(real: &Option<&str>) -> (Handler, Arc<MemorySink>) {
    let mut source = MemorySource::default();
    if let Some(real) = real {
        source = source.with(BUCKET, real, good_object());
    }
    new_handler(source, Limits::default())
}

#[tokio::test]
async fn a_key_that_is_not_utf8_is_a_clear_trigger_error() {
    let (handler, _) = new_handler(MemorySource::default(), Limits::default());
    let error = handler
        .handle(s3_notification(&[
            "AWSLogs/123456789012/CloudTrail/%FF%FE.json.gz",
        ]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, HandlerError::Trigger(TriggerError::Malformed { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("%FF%FE"), "{error}");
}

/// A seeded corpus of two files in `dir`; returns the eventIDs that must alert.
fn generate(dir: &Path) -> BTreeSet<String> {
    let options = Options {
        events: 3000,
        files: 2,
        seed: 7,
        export_rate: 0.002,
        ..Options::default()
    };
    let alerts = corpus::generate(dir, &options)
        .expect("generate the corpus")
        .distinct_alerts();
    assert!(!alerts.is_empty(), "the manifest plants exports");
    alerts
}

#[test]
fn scan_reports_every_good_alert_and_names_every_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let expected = generate(dir.path());
    let logs = dir.path().join("AWSLogs");
    let bad = logs.join("123456789012/CloudTrail/us-east-1/2024/03/16");
    std::fs::create_dir_all(&bad).unwrap();

    let truncated =
        bad.join("123456789012_CloudTrail_us-east-1_20240316T0000Z_truncatedGzip0001.json.gz");
    let whole = log_file(&noise(500));
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let not_json =
        bad.join("123456789012_CloudTrail_us-east-1_20240316T0005Z_notJsonText00001.json.gz");
    std::fs::write(
        &not_json,
        gzip(b"<html><body>403 Forbidden</body></html>\n"),
    )
    .unwrap();
    let random =
        bad.join("123456789012_CloudTrail_us-east-1_20240316T0010Z_randomBytes00001.json.gz");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise_bytes: Vec<u8> = (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut random_bytes = vec![0xa7];
    random_bytes.extend(noise_bytes);
    std::fs::write(&random, random_bytes).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args([
            "scan",
            "--format",
            "json",
            "--no-dedup",
            "--no-progress",
            "--jobs",
            "2",
        ])
        .arg(&logs)
        .env_remove("TRAILWATCH_MAX_DECOMPRESSED_BYTES")
        .env_remove("TRAILWATCH_ALLOW")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");

    let mut alerted = Vec::new();
    for line in stdout.lines() {
        let document: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not NDJSON ({e}): {line}"));
        assert_eq!(document["kind"], "alert", "{line}");
        alerted.push(document["eventId"].as_str().unwrap().to_owned());
    }
    assert_eq!(alerted.len(), expected.len(), "one line per planted export");
    assert_eq!(
        alerted.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "every planted export alerts, nothing else does"
    );

    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("trailwatch: error: "))
        .collect();
    assert_eq!(error_lines.len(), 3, "{stderr}");
    for (path, cause) in [
        (&truncated, "gzip stream is corrupt or truncated"),
        (&not_json, "not gzip and not JSON"),
        (&random, "not gzip and not JSON"),
    ] {
        let path = path.display().to_string();
        assert!(
            error_lines
                .iter()
                .any(|l| l.contains(&path) && l.contains(cause)),
            "{path} named with {cause:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("errors=3"), "{stderr}");
    assert!(stderr.contains("files=5"), "{stderr}");
}
