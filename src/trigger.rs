//! Trigger event -> object refs.
//!
//! The function is invoked by S3 notifications (and, through the same code, by the
//! schedule that flushes roll-ups). The event's shape says what it is; keys arrive
//! URL-encoded and are decoded here, and only CloudTrail log keys are kept.

use aws_lambda_events::event::s3::S3Event;
use serde_json::Value;

use crate::source::ObjectRef;

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Objects to read.
    Objects(Vec<ObjectRef>),
    /// An SQS batch: each message's objects, or why the message could not be read.
    Batch(Vec<BatchMessage>),
    /// The `s3:TestEvent` S3 sends when a notification is configured.
    TestEvent,
    /// The schedule: flush roll-ups of closed dedup windows.
    Scheduled,
}

/// One SQS message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub message_id: String,
    pub objects: Result<Vec<ObjectRef>, TriggerError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("unrecognised trigger event (expected an S3, SQS, SNS, EventBridge or scheduled event); top-level keys: {0}")]
    UnknownShape(String),
    #[error("malformed {kind} event: {message}")]
    Malformed { kind: &'static str, message: String },
}

fn keys_of(event: &Value) -> String {
    match event.as_object() {
        Some(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
        None => format!("(not an object: {})", json_kind(event)),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Recognises the event's shape.
pub fn parse_trigger(event: &Value) -> Result<Trigger, TriggerError> {
    if event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Trigger::TestEvent);
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(Trigger::Scheduled);
    }
    if is_s3_notification(event) {
        return s3_objects(event).map(Trigger::Objects);
    }
    Err(TriggerError::UnknownShape(keys_of(event)))
}

/// `{"Records":[{"s3":{...}}, ...]}`.
pub fn is_s3_notification(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .is_some_and(|r| r.get("s3").is_some())
}

/// The created objects of an S3 notification, keys decoded.
pub fn s3_objects(event: &Value) -> Result<Vec<ObjectRef>, TriggerError> {
    let parsed: S3Event = serde_json::from_value(event.clone()).map_err(|e| TriggerError::Malformed {
        kind: "S3",
        message: e.to_string(),
    })?;
    let mut objects = Vec::new();
    for record in parsed.records {
        let created = record
            .event_name
            .as_deref()
            .is_none_or(|name| name.starts_with("ObjectCreated"));
        if !created {
            continue;
        }
        let (Some(bucket), Some(key)) = (record.s3.bucket.name, record.s3.object.key) else {
            return Err(TriggerError::Malformed {
                kind: "S3",
                message: "a record without bucket name or object key".into(),
            });
        };
        objects.push(ObjectRef {
            bucket,
            key: decode_key(&key)?,
        });
    }
    Ok(objects)
}

/// S3 event keys are URL-encoded the form way: `+` is a space, `%XX` a byte.
pub fn decode_key(key: &str) -> Result<String, TriggerError> {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| TriggerError::Malformed {
            kind: "S3",
            message: format!("object key {key:?} does not decode to UTF-8"),
        })
}

/// What a key is, by CloudTrail's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `[prefix/]AWSLogs/[o-org/]<account>/CloudTrail/...`: processed.
    Log,
    Digest,
    Insight,
    Other,
}

/// Classifies a decoded key (SPEC §3).
pub fn classify_key(key: &str) -> KeyKind {
    let mut search = key;
    while let Some(at) = search.find("AWSLogs/") {
        let after = &search[at + "AWSLogs/".len()..];
        let mut parts = after.split('/');
        let mut first = parts.next().unwrap_or_default();
        if is_org_id(first) {
            first = parts.next().unwrap_or_default();
        }
        if is_account(first) {
            match parts.next() {
                Some("CloudTrail") if parts.next().is_some() => return KeyKind::Log,
                Some("CloudTrail-Digest") => return KeyKind::Digest,
                Some("CloudTrail-Insight") => return KeyKind::Insight,
                _ => {}
            }
        }
        search = after;
    }
    KeyKind::Other
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// AWS Organizations ids: `o-` and 10 to 32 lowercase letters or digits.
fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(key: &str) -> Value {
        json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-01-15T10:35:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AROAEXAMPLE:regionalDeliverySession"},
            "requestParameters": {"sourceIPAddress": "10.0.0.1"},
            "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": "trail-bucket", "arn": "arn:aws:s3:::trail-bucket"},
                   "object": {"key": key, "size": 10}}}]})
    }

    #[test]
    fn s3_notifications_yield_decoded_keys() {
        let t = parse_trigger(&s3_event("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/a%3Ab+c.json.gz")).unwrap();
        assert_eq!(
            t,
            Trigger::Objects(vec![ObjectRef {
                bucket: "trail-bucket".into(),
                key: "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/a:b c.json.gz".into()
            }])
        );
    }

    #[test]
    fn removal_events_are_ignored() {
        let mut e = s3_event("AWSLogs/123456789012/CloudTrail/x");
        e["Records"][0]["eventName"] = json!("ObjectRemoved:Delete");
        assert_eq!(parse_trigger(&e).unwrap(), Trigger::Objects(vec![]));
    }

    #[test]
    fn test_and_scheduled_events() {
        assert_eq!(
            parse_trigger(&json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})).unwrap(),
            Trigger::TestEvent
        );
        assert_eq!(
            parse_trigger(&json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})).unwrap(),
            Trigger::Scheduled
        );
    }

    #[test]
    fn unknown_shapes_are_clear_errors() {
        let err = parse_trigger(&json!({"hello": 1})).unwrap_err();
        assert!(err.to_string().contains("hello"));
        assert!(parse_trigger(&json!([1, 2])).unwrap_err().to_string().contains("array"));
        assert!(parse_trigger(&json!(null)).is_err());
    }

    #[test]
    fn key_classification() {
        for (key, kind) in [
            ("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/x.json.gz", KeyKind::Log),
            ("prefix/deeper/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/01/15/x.json.gz", KeyKind::Log),
            ("AWSLogs/o-abcdef1234/123456789012/CloudTrail/us-east-1/2024/x.json.gz", KeyKind::Log),
            ("AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/x.json.gz", KeyKind::Digest),
            ("AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2024/x.json.gz", KeyKind::Insight),
            ("AWSLogs/123456789012/elasticloadbalancing/us-east-1/x.log.gz", KeyKind::Other),
            ("AWSLogs/12345/CloudTrail/us-east-1/x.json.gz", KeyKind::Other),
            ("AWSLogs/123456789012/CloudTrail/", KeyKind::Log),
            ("random/file.json.gz", KeyKind::Other),
            ("AWSLogs/o-short/123456789012/CloudTrail/x", KeyKind::Other),
        ] {
            assert_eq!(classify_key(key), kind, "{key}");
        }
    }
}
