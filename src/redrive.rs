//! Dead-letter redrive: a Lambda destination record (what an on-failure
//! destination or a redriven dead-letter queue delivers) carries the original
//! event in `requestPayload`. Unwrapping it lets the failed invocation be
//! processed again exactly as the first time.

use serde_json::Value;

/// The original event of a destination record, or `None` if `value` is not one.
pub fn original_event(value: &Value) -> Option<&Value> {
    let context = value.get("requestContext")?;
    context.get("functionArn")?.as_str()?;
    value.get("requestPayload").filter(|p| p.is_object())
}

/// The event with every destination record replaced by its original event: the
/// event itself, or the bodies of an SQS batch (bodies stay JSON text). Anything
/// else is returned unchanged.
pub fn unwrap(event: Value) -> Value {
    if let Some(original) = original_event(&event) {
        return original.clone();
    }
    let mut event = event;
    if let Some(records) = event.get_mut("Records").and_then(Value::as_array_mut) {
        for record in records {
            let is_sqs = record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs");
            let Some(body) = record
                .get("body")
                .and_then(Value::as_str)
                .filter(|_| is_sqs)
            else {
                continue;
            };
            let Ok(parsed) = serde_json::from_str::<Value>(body) else {
                continue;
            };
            if let Some(original) = original_event(&parsed) {
                record["body"] = Value::String(original.to_string());
            }
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(payload: Value) -> Value {
        json!({
            "version": "1.0",
            "timestamp": "2024-03-15T10:40:00.000Z",
            "requestContext": {
                "requestId": "c2a6f2b4-1111-2222-3333-444455556666",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:trailwatch:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "ObjectsFailed", "errorMessage": "..."}
        })
    }

    #[test]
    fn records_are_unwrapped_alone_and_in_sqs_bodies() {
        let original = json!({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]});
        assert_eq!(unwrap(record(original.clone())), original);
        let sqs = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "1", "body": record(original.clone()).to_string()},
            {"eventSource": "aws:sqs", "messageId": "2", "body": "{\"Records\":[]}"},
            {"eventSource": "aws:sqs", "messageId": "3", "body": "not json"}
        ]});
        let unwrapped = unwrap(sqs);
        let body: Value =
            serde_json::from_str(unwrapped["Records"][0]["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, original);
        assert_eq!(unwrapped["Records"][1]["body"], "{\"Records\":[]}");
        assert_eq!(unwrapped["Records"][2]["body"], "not json");
    }

    #[test]
    fn look_alikes_are_left_alone() {
        let no_arn = json!({"requestContext": {}, "requestPayload": {"a": 1}});
        assert!(original_event(&no_arn).is_none());
        let text_payload = json!({"requestContext": {"functionArn": "f"}, "requestPayload": "x"});
        assert_eq!(unwrap(text_payload.clone()), text_payload);
    }
}
