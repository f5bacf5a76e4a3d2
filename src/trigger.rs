//! Trigger event -> object refs.
//!
//! CloudTrail log deliveries reach the function in several shapes, all recognised
//! here from the event itself (one deployment may be wired any of these ways, and
//! the event carries no other hint):
//!
//! - an S3 notification (`{"Records":[{"s3":{...}}]}`), straight from the bucket;
//! - an SQS batch (`Records[].eventSource == "aws:sqs"`) whose message bodies are S3
//!   notifications, SNS envelopes around them (SNS -> SQS without raw message
//!   delivery), EventBridge `Object Created` events, or the `s3:TestEvent`; each
//!   message succeeds or fails on its own so that only failed messages are retried;
//! - an SNS notification (`Records[].EventSource == "aws:sns"`) whose `Message` is
//!   an S3 notification (or CloudTrail's own `{"s3Bucket","s3ObjectKey"}` notice);
//! - an EventBridge `Object Created` event from S3 (`source == "aws.s3"`);
//! - an EventBridge "AWS API Call via CloudTrail" event, directly or as an SQS body
//!   or SNS message: not a log file but one CloudTrail record, seconds after the
//!   call (see [`api_call`]);
//! - the `s3:TestEvent` S3 sends when a notification is configured;
//! - the schedule that flushes roll-ups.
//!
//! Keys are decoded here, so everything downstream sees real S3 keys. Nothing in
//! this module panics on any input: an unknown shape is [`TriggerError::UnknownShape`]
//! and a broken envelope is [`TriggerError::Malformed`], naming what was wrong.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::SqsMessage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::source::ObjectRef;

pub mod api_call;
pub use api_call::ApiCall;

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Objects to read.
    Objects(Vec<ObjectRef>),
    /// CloudTrail records EventBridge delivered one by one (real time).
    ApiCalls(Vec<ApiCall>),
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
    /// The log files the message names (none for an API-call event), or why the
    /// message could not be read.
    pub objects: Result<Vec<ObjectRef>, TriggerError>,
    /// The record the message carries when it is an EventBridge API-call event.
    pub api_calls: Vec<ApiCall>,
}

/// What one message (an SQS body, an SNS `Message`) carries.
enum Content {
    Objects(Vec<ObjectRef>),
    ApiCall(ApiCall),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("unrecognised trigger event (expected an S3, SQS, SNS, EventBridge or scheduled event); top-level keys: {0}")]
    UnknownShape(String),
    #[error("malformed {kind} event: {message}")]
    Malformed { kind: &'static str, message: String },
}

fn malformed(kind: &'static str, message: impl Into<String>) -> TriggerError {
    TriggerError::Malformed {
        kind,
        message: message.into(),
    }
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
///
/// The envelopes are told apart by their own markers (`Event`, `detail-type`,
/// `source`, and `eventSource`/`EventSource` on the first record), never by field
/// guessing deeper down, so that one shape cannot be mistaken for another.
pub fn parse_trigger(event: &Value) -> Result<Trigger, TriggerError> {
    if is_test_event(event) {
        return Ok(Trigger::TestEvent);
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(Trigger::Scheduled);
    }
    // Before the S3 shape: S3's own API calls (`source` `aws.s3`) are records too.
    if api_call::is_api_call(event) {
        return api_call::from_value(event).map(|call| Trigger::ApiCalls(vec![call]));
    }
    if is_eventbridge_s3(event) {
        return eventbridge_objects(event).map(Trigger::Objects);
    }
    let first = event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first());
    if let Some(first) = first {
        if first.get("eventSource").and_then(Value::as_str) == Some("aws:sqs") {
            return sqs_batch(event).map(Trigger::Batch);
        }
        if first.get("EventSource").and_then(Value::as_str) == Some("aws:sns") {
            return sns_trigger(event);
        }
        if first.get("s3").is_some() {
            return s3_objects(event).map(Trigger::Objects);
        }
    }
    Err(TriggerError::UnknownShape(keys_of(event)))
}

/// `{"Service":"Amazon S3","Event":"s3:TestEvent",...}`.
pub fn is_test_event(event: &Value) -> bool {
    event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
}

/// `{"Records":[{"s3":{...}}, ...]}`.
pub fn is_s3_notification(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .is_some_and(|r| r.get("s3").is_some())
}

/// An S3 event delivered by EventBridge (`"source":"aws.s3"` with a `detail-type`).
pub fn is_eventbridge_s3(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some("aws.s3")
        && event.get("detail-type").and_then(Value::as_str).is_some()
}

/// The created objects of an S3 notification, keys decoded.
pub fn s3_objects(event: &Value) -> Result<Vec<ObjectRef>, TriggerError> {
    let parsed: S3Event =
        serde_json::from_value(event.clone()).map_err(|e| malformed("S3", e.to_string()))?;
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
            return Err(malformed(
                "S3",
                "a record without bucket name or object key",
            ));
        };
        objects.push(ObjectRef {
            bucket,
            key: decode_key_of("S3", &key)?,
        });
    }
    Ok(objects)
}

/// The `detail` of an S3 EventBridge event: only what names the object.
#[derive(Debug, Deserialize, Serialize)]
struct S3EventBridgeDetail {
    bucket: EventBridgeBucket,
    object: EventBridgeObject,
}

#[derive(Debug, Deserialize, Serialize)]
struct EventBridgeBucket {
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct EventBridgeObject {
    key: String,
}

/// The object of an EventBridge `Object Created` event, key decoded.
///
/// Other S3 detail types (`Object Deleted`, `Object Restore Completed`, ...) name no
/// new log file: they are acknowledged with no objects rather than failed, so that a
/// broad EventBridge rule does not make Lambda retry them forever.
///
/// Key encoding: the S3 notification documentation states that its keys are
/// URL-encoded (`+` for a space); the S3 EventBridge documentation
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>) says
/// nothing either way and only shows keys without special characters. AWS's own
/// Lambda Powertools decodes `detail.object.key` with `unquote_plus`, and LocalStack
/// percent-encodes it when it emits these events, so the key is decoded here exactly
/// like an S3 notification key. CloudTrail's own key segments and file names never
/// contain `+` or `%`, so the choice only matters for a trail's bucket prefix that
/// contains those characters (or a space).
pub fn eventbridge_objects(event: &Value) -> Result<Vec<ObjectRef>, TriggerError> {
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    if detail_type != Some("Object Created") {
        tracing::debug!(
            detail_type = detail_type.unwrap_or_default(),
            "S3 EventBridge event that creates no object, ignored"
        );
        return Ok(Vec::new());
    }
    let parsed: EventBridgeEvent<S3EventBridgeDetail> = serde_json::from_value(event.clone())
        .map_err(|e| malformed("EventBridge", e.to_string()))?;
    Ok(vec![ObjectRef {
        bucket: parsed.detail.bucket.name,
        key: decode_key_of("EventBridge", &parsed.detail.object.key)?,
    }])
}

/// Every SQS message of a batch, each with its own objects or its own error.
///
/// A message without a `messageId` cannot be reported on its own in
/// `batchItemFailures` (Lambda treats an unknown identifier as a failure of the
/// whole batch), so such a batch is malformed as a whole and retried as a whole.
fn sqs_batch(event: &Value) -> Result<Vec<BatchMessage>, TriggerError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("SQS", "no Records array"))?;
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let message_id = record
                .get("messageId")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    malformed(
                        "SQS",
                        format!("message {index} of the batch has no messageId"),
                    )
                })?;
            let (objects, api_calls) = match sqs_message_content(message_id, record) {
                Ok(Content::Objects(objects)) => (Ok(objects), Vec::new()),
                Ok(Content::ApiCall(call)) => (Ok(Vec::new()), vec![call]),
                Err(e) => (Err(e), Vec::new()),
            };
            Ok(BatchMessage {
                message_id: message_id.to_owned(),
                objects,
                api_calls,
            })
        })
        .collect()
}

fn sqs_message_content(message_id: &str, record: &Value) -> Result<Content, TriggerError> {
    let with_id = |e: TriggerError| match e {
        TriggerError::Malformed { kind, message } => {
            malformed(kind, format!("message {message_id}: {message}"))
        }
        other => other,
    };
    let message: SqsMessage = serde_json::from_value(record.clone())
        .map_err(|e| malformed("SQS", format!("message {message_id}: {e}")))?;
    let body = message
        .body
        .ok_or_else(|| malformed("SQS", format!("message {message_id} has no body")))?;
    content_of_text(&body, "SQS", true).map_err(with_id)
}

/// The objects, or the API calls, of an SNS notification: every record's `Message`.
///
/// Only `Sns.Message` is read. The typed `SnsEvent` of `aws_lambda_events` requires
/// every envelope field (signature, certificate URL, timestamp, ...); none of them
/// is used here, and a missing one must not lose an alert. (SNS invokes a function
/// with one record; records of both kinds in one event are refused as malformed.)
fn sns_trigger(event: &Value) -> Result<Trigger, TriggerError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("SNS", "no Records array"))?;
    let mut objects = Vec::new();
    let mut api_calls = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let message = record
            .get("Sns")
            .and_then(|sns| sns.get("Message"))
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("SNS", format!("record {index} has no Sns.Message string")))?;
        match content_of_text(message, "SNS", false)? {
            Content::Objects(named) => objects.extend(named),
            Content::ApiCall(call) => api_calls.push(call),
        }
    }
    match (objects.is_empty(), api_calls.is_empty()) {
        (_, true) => Ok(Trigger::Objects(objects)),
        (true, false) => Ok(Trigger::ApiCalls(api_calls)),
        (false, false) => Err(malformed(
            "SNS",
            "one event mixes S3 notifications and EventBridge API-call events",
        )),
    }
}

/// Parses a message text (an SQS body or an SNS `Message`) and returns what it
/// carries: the objects it names, or the record of an API-call event (cut from the
/// text as it was).
fn content_of_text(
    text: &str,
    kind: &'static str,
    sns_envelope_allowed: bool,
) -> Result<Content, TriggerError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| malformed(kind, format!("the message is not JSON: {e}")))?;
    if api_call::is_api_call(&value) {
        return api_call::from_text(text, &value).map(Content::ApiCall);
    }
    objects_in_message(&value, kind, sns_envelope_allowed)
}

/// The objects one message names.
///
/// `sns_envelope_allowed` is true for an SQS body, which may be the JSON envelope SNS
/// writes when it delivers to SQS without raw message delivery; the envelope's
/// `Message` is then read (once: an envelope inside an envelope is not a shape AWS
/// produces).
fn objects_in_message(
    value: &Value,
    kind: &'static str,
    sns_envelope_allowed: bool,
) -> Result<Content, TriggerError> {
    if is_test_event(value) {
        tracing::info!(kind, "s3:TestEvent message acknowledged");
        return Ok(Content::Objects(Vec::new()));
    }
    if is_s3_notification(value) {
        return s3_objects(value).map(Content::Objects);
    }
    if is_eventbridge_s3(value) {
        return eventbridge_objects(value).map(Content::Objects);
    }
    if is_cloudtrail_notice(value) {
        return cloudtrail_notice_objects(value).map(Content::Objects);
    }
    if sns_envelope_allowed {
        if let Some(envelope_type) = value.get("Type").and_then(Value::as_str) {
            return sns_envelope_objects(value, envelope_type);
        }
    }
    Err(malformed(
        kind,
        format!(
            "the message is not an S3 notification; top-level keys: {}",
            keys_of(value)
        ),
    ))
}

/// The envelope SNS writes into SQS: `{"Type":"Notification","Message":"...",...}`.
///
/// The subscription handshake also lands in the queue (`SubscriptionConfirmation`,
/// `UnsubscribeConfirmation`); it names no object, and retrying it cannot help, so
/// it is acknowledged with a warning (the subscription is confirmed elsewhere).
fn sns_envelope_objects(value: &Value, envelope_type: &str) -> Result<Content, TriggerError> {
    match envelope_type {
        "Notification" => {
            let message = value
                .get("Message")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("SNS", "a notification without a Message string"))?;
            content_of_text(message, "SNS", false)
        }
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
            let topic = value
                .get("TopicArn")
                .and_then(Value::as_str)
                .unwrap_or_default();
            tracing::warn!(
                envelope_type,
                topic,
                "SNS subscription message in the queue, ignored"
            );
            Ok(Content::Objects(Vec::new()))
        }
        other => Err(malformed(
            "SNS",
            format!("unexpected SNS message type {other:?}"),
        )),
    }
}

/// CloudTrail's own SNS notice of a delivery: `{"s3Bucket":"...","s3ObjectKey":[...]}`.
pub fn is_cloudtrail_notice(value: &Value) -> bool {
    value.get("s3Bucket").is_some() && value.get("s3ObjectKey").is_some()
}

/// The log files of a CloudTrail notice. CloudTrail writes the keys as they are
/// (they are not URL-encoded like S3 notification keys), so they are used verbatim.
fn cloudtrail_notice_objects(value: &Value) -> Result<Vec<ObjectRef>, TriggerError> {
    let bucket = value
        .get("s3Bucket")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("CloudTrail", "s3Bucket is not a string"))?;
    let keys = value
        .get("s3ObjectKey")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("CloudTrail", "s3ObjectKey is not an array"))?;
    keys.iter()
        .map(|key| {
            key.as_str()
                .map(|key| ObjectRef {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
                .ok_or_else(|| malformed("CloudTrail", "an s3ObjectKey that is not a string"))
        })
        .collect()
}

/// S3 event keys are URL-encoded the form way: `+` is a space, `%XX` a byte.
pub fn decode_key(key: &str) -> Result<String, TriggerError> {
    decode_key_of("S3", key)
}

fn decode_key_of(kind: &'static str, key: &str) -> Result<String, TriggerError> {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| malformed(kind, format!("object key {key:?} does not decode to UTF-8")))
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
    // A key ending in `/` is a folder marker (a 0-byte object), never a log file.
    if key.ends_with('/') {
        return KeyKind::Other;
    }
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
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests;
