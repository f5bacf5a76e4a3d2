//! Log files and trigger events as AWS writes them, written once for every test
//! module: gzip, CloudTrail log files, S3 notifications.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

/// `bytes` as one gzip member.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// `data` cut into `members` gzip members, concatenated (as `cat a.gz b.gz` makes);
/// an empty input gives one member holding a space.
pub fn gzip_members(data: &[u8], members: usize) -> Vec<u8> {
    if data.is_empty() {
        return gzip(b" ");
    }
    let step = data.len().div_ceil(members.max(1)).max(1);
    data.chunks(step).flat_map(gzip).collect()
}

/// A gzipped CloudTrail log file holding `records`.
pub fn log_file(records: &[Value]) -> Vec<u8> {
    gzip(json!({ "Records": records }).to_string().as_bytes())
}

/// One `ObjectCreated:Put` record of an S3 notification; `encoded_key` is the key as
/// it appears in the notification (URL-encoded).
pub fn s3_record(bucket: &str, encoded_key: &str) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-03-15T10:40:12.123Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AROAJVXZ6EXAMPLE:regionalDeliverySession"},
        "requestParameters": {"sourceIPAddress": "10.212.14.90"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "trail-logs",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encoded_key, "size": 1371, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                          "sequencer": "0065F4219C5A8E2B1D"}}
    })
}

/// An S3 notification of `encoded_keys` (already URL-encoded) in `bucket`.
pub fn s3_notification<K: AsRef<str>>(bucket: &str, encoded_keys: &[K]) -> Value {
    let records: Vec<Value> = encoded_keys
        .iter()
        .map(|key| s3_record(bucket, key.as_ref()))
        .collect();
    json!({ "Records": records })
}

/// An S3 notification of `keys`, encoded the way S3 encodes the keys CloudTrail
/// writes (the only special character they can hold is a space in a bucket prefix,
/// which becomes `+`).
pub fn s3_event<K: AsRef<str>>(bucket: &str, keys: &[K]) -> Value {
    let encoded: Vec<String> = keys.iter().map(|k| k.as_ref().replace(' ', "+")).collect();
    s3_notification(bucket, &encoded)
}

/// The Lambda destination record of a failed asynchronous invocation of `original`
/// (`requestPayload`).
pub fn dead_letter_record(original: Value) -> Value {
    json!({
        "version": "1.0",
        "timestamp": "2024-03-15T10:45:00.000Z",
        "requestContext": {
            "requestId": "8f2f3a3e-0000-4000-8000-000000000001",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:trailwatch:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": original,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ObjectsFailed", "errorMessage": "1 of the event's objects failed"}
    })
}

/// That record as the dead-letter queue's SQS message, as redrive delivers it back
/// to the function.
pub fn dead_letter_message(original: Value) -> Value {
    let record = dead_letter_record(original);
    json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "r", "body": record.to_string(),
        "attributes": {}, "messageAttributes": {}, "md5OfBody": "x",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:trailwatch-dlq", "awsRegion": "us-east-1"
    }]})
}

/// An alert document (or lines of them) with the digits of every `alertLatencyMs`
/// replaced by `<ms>`: the latency is the wall clock's publication time minus
/// `eventTime`, so two publications of one alert differ there and nowhere else.
pub fn without_latency(documents: &str) -> String {
    const KEY: &str = "\"alertLatencyMs\":";
    let mut out = String::with_capacity(documents.len());
    let mut rest = documents;
    while let Some(at) = rest.find(KEY) {
        let digits = at + KEY.len();
        out.push_str(&rest[..digits]);
        let after = &rest[digits..];
        let end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        out.push_str(if end > 0 { "<ms>" } else { "" });
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// An SQS batch as Lambda's event source mapping delivers it: one message per
/// `(message id, body)`, each body the JSON text of the notification.
pub fn sqs_batch(messages: &[(String, Value)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": format!("handle-{id}"), "body": body.to_string(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1714557600000",
                               "SenderId": "AIDAJHIPRHEMV73VRJEBU", "ApproximateFirstReceiveTimestamp": "1714557600001"},
                "messageAttributes": {}, "md5OfBody": "d41d8cd98f00b204e9800998ecf8427e",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:trailwatch-ingest",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}
