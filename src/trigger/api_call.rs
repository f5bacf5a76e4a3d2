//! EventBridge "AWS API Call via CloudTrail" events: one CloudTrail record each.
//!
//! CloudTrail writes a call into a log file minutes later (AWS documents "an average
//! of about 5 minutes", with no upper bound), but sends the same record to the
//! EventBridge default bus of the call's region within seconds, as the `detail` of
//! an event whose `detail-type` is [`DETAIL_TYPE`]. Reading that `detail` lets an
//! export be alerted while the snapshot is still being restored for it; the log file
//! stays the backstop (EventBridge delivery is best effort), and the dedup store
//! makes the second sighting of the same `eventID` a redelivery.
//!
//! The event reaches the function directly (an EventBridge rule targeting it), in an
//! SQS body or an SNS `Message` (a rule targeting a queue or topic), or inside a
//! Lambda destination record on redrive (unwrapped by [`crate::redrive`]). Where the
//! event arrives as text, the `detail` is kept byte for byte; a direct invocation's
//! payload was already parsed by the runtime, so its `detail` is written back in
//! its original member order (`serde_json`'s `preserve_order`).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{malformed, TriggerError};
use crate::UNKNOWN;

/// The `detail-type` of every event CloudTrail sends to EventBridge for an API call.
pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// One CloudTrail record that EventBridge delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `eventbridge:<region>:<event id>`: the alert's `source`.
    pub source: String,
    /// The record (the event's `detail`) as JSON text.
    pub record: String,
}

/// Is this an "AWS API Call via CloudTrail" event (whatever the service)?
pub fn is_api_call(event: &Value) -> bool {
    event.get("detail-type").and_then(Value::as_str) == Some(DETAIL_TYPE)
}

/// The record of an API-call event that arrived as a parsed value (a direct
/// invocation).
pub fn from_value(event: &Value) -> Result<ApiCall, TriggerError> {
    let detail = event
        .get("detail")
        .ok_or_else(|| malformed("EventBridge", missing_detail(event)))?;
    Ok(ApiCall {
        source: source_of(event),
        record: detail.to_string(),
    })
}

/// The record of an API-call event that arrived as text (an SQS body, an SNS
/// message), `event` being that text parsed: the `detail` is cut from the text as
/// it was.
pub fn from_text(text: &str, event: &Value) -> Result<ApiCall, TriggerError> {
    #[derive(Deserialize)]
    struct Detail<'a> {
        #[serde(borrow)]
        detail: Option<&'a RawValue>,
    }
    let raw = serde_json::from_str::<Detail>(text)
        .ok()
        .and_then(|d| d.detail)
        .map(|raw| raw.get().trim().to_owned());
    match raw {
        Some(record) => Ok(ApiCall {
            source: source_of(event),
            record,
        }),
        None => from_value(event),
    }
}

/// `eventbridge:<region>:<id>`, `unknown` for a part the event lacks: the record is
/// what is evaluated, so a hand-made envelope without them still alerts.
fn source_of(event: &Value) -> String {
    let text = |name: &str| {
        event
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(UNKNOWN)
    };
    format!("eventbridge:{}:{}", text("region"), text("id"))
}

fn missing_detail(event: &Value) -> String {
    let id = event.get("id").and_then(Value::as_str).unwrap_or(UNKNOWN);
    format!("\"{DETAIL_TYPE}\" event {id} has no detail (the CloudTrail record)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "version": "0", "id": "6f4e2c1a-0000-4000-8000-000000000001",
            "detail-type": DETAIL_TYPE, "source": "aws.rds", "account": "123456789012",
            "time": "2024-01-15T10:30:00Z", "region": "us-east-1", "resources": [],
            "detail": {"eventSource": "rds.amazonaws.com", "eventName": "StartExportTask", "eventID": "e1"}
        })
    }

    #[test]
    fn the_detail_is_the_record_and_the_source_names_region_and_id() {
        let call = from_value(&event()).unwrap();
        assert_eq!(
            call.source,
            "eventbridge:us-east-1:6f4e2c1a-0000-4000-8000-000000000001"
        );
        assert_eq!(
            call.record,
            r#"{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventID":"e1"}"#,
            "members in their original order"
        );
    }

    #[test]
    fn text_keeps_the_detail_byte_for_byte() {
        let text = r#"{"id":"i","region":"eu-west-1","detail-type":"AWS API Call via CloudTrail",
            "detail": {"eventName" : "\u0053tartExportTask", "n": 1.50}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let call = from_text(text, &value).unwrap();
        assert_eq!(
            call.record,
            r#"{"eventName" : "\u0053tartExportTask", "n": 1.50}"#
        );
        assert_eq!(call.source, "eventbridge:eu-west-1:i");
    }

    #[test]
    fn an_event_without_detail_is_malformed_and_named() {
        let mut e = event();
        e.as_object_mut().unwrap().remove("detail");
        let error = from_value(&e).unwrap_err().to_string();
        assert!(
            error.contains("malformed EventBridge event")
                && error.contains("6f4e2c1a-0000-4000-8000-000000000001")
                && error.contains("no detail"),
            "{error}"
        );
        assert!(from_text(&e.to_string(), &e).is_err());
    }

    #[test]
    fn missing_envelope_fields_read_unknown() {
        let call = from_value(&json!({"detail-type": DETAIL_TYPE, "detail": {}})).unwrap();
        assert_eq!(call.source, "eventbridge:unknown:unknown");
        assert!(is_api_call(&event()));
        assert!(!is_api_call(&json!({"detail-type": "Object Created"})));
    }
}
