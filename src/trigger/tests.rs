//! The trigger parser's tests: every event shape, keys that are not log files,
//! malformed events named as such.

use super::*;
use serde_json::json;

const LOG_KEY: &str = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/123456789012_CloudTrail_us-east-1_20240115T1035Z_abc.json.gz";

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

fn sns_envelope(message: &Value) -> Value {
    json!({
        "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
        "Subject": "Amazon S3 Notification", "Message": message.to_string(),
        "Timestamp": "2024-01-15T10:35:01.000Z", "SignatureVersion": "1", "Signature": "s",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/c.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
}

fn sqs_event(bodies: &[(&str, String)]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": "h", "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "md5OfBody": "x", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn log_object(key: &str) -> ObjectRef {
    ObjectRef {
        bucket: "trail-bucket".into(),
        key: key.into(),
    }
}

#[test]
fn s3_notifications_yield_decoded_keys() {
    let t = parse_trigger(&s3_event(
        "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/a%3Ab+c.json.gz",
    ))
    .unwrap();
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
        parse_trigger(&json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}))
            .unwrap(),
        Trigger::TestEvent
    );
    assert_eq!(
        parse_trigger(
            &json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
        )
        .unwrap(),
        Trigger::Scheduled
    );
}

#[test]
fn unknown_shapes_are_clear_errors() {
    let err = parse_trigger(&json!({"hello": 1})).unwrap_err();
    assert!(err.to_string().contains("hello"));
    assert!(parse_trigger(&json!([1, 2]))
        .unwrap_err()
        .to_string()
        .contains("array"));
    assert!(parse_trigger(&json!(null)).is_err());
    for shape in [
        json!({"Records": []}),
        json!({"Records": [1]}),
        json!({"Records": [{"eventSource": "aws:kinesis"}]}),
        json!({"Records": "s3"}),
        json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}),
    ] {
        assert!(
            matches!(parse_trigger(&shape), Err(TriggerError::UnknownShape(_))),
            "{shape}"
        );
    }
}

#[test]
fn sqs_messages_succeed_or_fail_alone() {
    let good = s3_event(&LOG_KEY.replace("abc", "a+b"));
    let wrapped = sns_envelope(&s3_event(LOG_KEY));
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-15T10:00:00.000Z",
                            "Bucket": "trail-bucket", "RequestId": "R", "HostId": "H"});
    let event = sqs_event(&[
        ("m-1", good.to_string()),
        ("m-2", "{\"Records\": [".into()),
        ("m-3", wrapped.to_string()),
        ("m-4", test_event.to_string()),
        ("m-5", json!({"hello": "world"}).to_string()),
    ]);
    let Trigger::Batch(messages) = parse_trigger(&event).unwrap() else {
        panic!("an SQS event is a batch");
    };
    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, ["m-1", "m-2", "m-3", "m-4", "m-5"]);
    assert_eq!(
        messages[0].objects,
        Ok(vec![log_object(&LOG_KEY.replace("abc", "a b"))])
    );
    let err = messages[1].objects.clone().unwrap_err().to_string();
    assert!(err.contains("m-2") && err.contains("not JSON"), "{err}");
    assert_eq!(messages[2].objects, Ok(vec![log_object(LOG_KEY)]));
    assert_eq!(messages[3].objects, Ok(vec![]));
    let err = messages[4].objects.clone().unwrap_err().to_string();
    assert!(err.contains("m-5") && err.contains("hello"), "{err}");
}

#[test]
fn an_sqs_message_without_an_id_fails_the_batch() {
    let mut event = sqs_event(&[("m-1", s3_event(LOG_KEY).to_string())]);
    event["Records"][0]
        .as_object_mut()
        .unwrap()
        .remove("messageId");
    let err = parse_trigger(&event).unwrap_err();
    assert!(err.to_string().contains("messageId"), "{err}");
}

#[test]
fn sqs_message_with_a_wrongly_typed_field_fails_alone() {
    let mut event = sqs_event(&[
        ("m-1", s3_event(LOG_KEY).to_string()),
        ("m-2", s3_event(LOG_KEY).to_string()),
    ]);
    event["Records"][1]["body"] = json!(42);
    let Trigger::Batch(messages) = parse_trigger(&event).unwrap() else {
        panic!("an SQS event is a batch");
    };
    assert_eq!(messages[0].objects, Ok(vec![log_object(LOG_KEY)]));
    assert!(messages[1].objects.is_err());
}

#[test]
fn sns_subscription_messages_in_a_queue_are_acknowledged() {
    let mut confirmation = sns_envelope(&json!("You have chosen to subscribe"));
    confirmation["Type"] = json!("SubscriptionConfirmation");
    confirmation["Message"] = json!("You have chosen to subscribe to the topic");
    let event = sqs_event(&[("m-1", confirmation.to_string())]);
    let Trigger::Batch(messages) = parse_trigger(&event).unwrap() else {
        panic!("an SQS event is a batch");
    };
    assert_eq!(messages[0].objects, Ok(vec![]));
}

#[test]
fn sns_notifications_carry_s3_notifications() {
    let event = json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:s",
        "Sns": sns_envelope(&s3_event("prefix+with+spaces/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/01/15/x.json.gz"))
    }]});
    assert_eq!(
        parse_trigger(&event).unwrap(),
        Trigger::Objects(vec![log_object(
            "prefix with spaces/AWSLogs/o-a1b2c3d4e5/123456789012/CloudTrail/us-east-1/2024/01/15/x.json.gz"
        )])
    );
    let mut broken = event.clone();
    broken["Records"][0]["Sns"]["Message"] = json!("not json");
    assert!(matches!(
        parse_trigger(&broken),
        Err(TriggerError::Malformed { kind: "SNS", .. })
    ));
    let mut missing = event;
    missing["Records"][0]["Sns"]
        .as_object_mut()
        .unwrap()
        .remove("Message");
    assert!(parse_trigger(&missing).is_err());
}

#[test]
fn cloudtrail_notices_name_their_keys_verbatim() {
    let notice = json!({"s3Bucket": "trail-bucket", "s3ObjectKey": [LOG_KEY, "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/a+b.json.gz"]});
    let event =
        json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": notice.to_string()}}]});
    assert_eq!(
        parse_trigger(&event).unwrap(),
        Trigger::Objects(vec![
            log_object(LOG_KEY),
            log_object("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/a+b.json.gz"),
        ])
    );
}

fn eventbridge_event(detail_type: &str, key: &str) -> Value {
    json!({
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": detail_type,
        "source": "aws.s3", "account": "123456789012", "time": "2024-01-15T10:35:00Z",
        "region": "us-east-1", "resources": ["arn:aws:s3:::trail-bucket"],
        "detail": {"version": "0", "bucket": {"name": "trail-bucket"},
                   "object": {"key": key, "size": 5, "etag": "e", "sequencer": "1"},
                   "request-id": "R", "requester": "123456789012", "reason": "PutObject"}
    })
}

#[test]
fn eventbridge_object_created_events() {
    assert_eq!(
        parse_trigger(&eventbridge_event(
            "Object Created",
            "audit+logs/AWSLogs/123456789012/CloudTrail/x%3Ay"
        ))
        .unwrap(),
        Trigger::Objects(vec![log_object(
            "audit logs/AWSLogs/123456789012/CloudTrail/x:y"
        )])
    );
    assert_eq!(
        parse_trigger(&eventbridge_event("Object Deleted", LOG_KEY)).unwrap(),
        Trigger::Objects(vec![])
    );
    let mut no_key = eventbridge_event("Object Created", LOG_KEY);
    no_key["detail"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("key");
    assert!(matches!(
        parse_trigger(&no_key),
        Err(TriggerError::Malformed {
            kind: "EventBridge",
            ..
        })
    ));
    let through_sqs = sqs_event(&[(
        "m-1",
        eventbridge_event("Object Created", LOG_KEY).to_string(),
    )]);
    let Trigger::Batch(messages) = parse_trigger(&through_sqs).unwrap() else {
        panic!("an SQS event is a batch");
    };
    assert_eq!(messages[0].objects, Ok(vec![log_object(LOG_KEY)]));
}

#[test]
fn keys_that_do_not_decode_to_utf8_are_malformed() {
    let err = parse_trigger(&s3_event("AWSLogs/%FF/x")).unwrap_err();
    assert!(err.to_string().contains("%FF"), "{err}");
}

#[test]
fn key_classification() {
    for (key, kind) in [
        (
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/x.json.gz",
            KeyKind::Log,
        ),
        (
            "prefix/deeper/AWSLogs/123456789012/CloudTrail/eu-west-1/2024/01/15/x.json.gz",
            KeyKind::Log,
        ),
        (
            "AWSLogs/o-abcdef1234/123456789012/CloudTrail/us-east-1/2024/x.json.gz",
            KeyKind::Log,
        ),
        (
            "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/x.json.gz",
            KeyKind::Digest,
        ),
        (
            "AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2024/x.json.gz",
            KeyKind::Insight,
        ),
        (
            "AWSLogs/123456789012/elasticloadbalancing/us-east-1/x.log.gz",
            KeyKind::Other,
        ),
        (
            "AWSLogs/12345/CloudTrail/us-east-1/x.json.gz",
            KeyKind::Other,
        ),
        ("AWSLogs/123456789012/CloudTrail/", KeyKind::Other),
        (
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/",
            KeyKind::Other,
        ),
        ("random/file.json.gz", KeyKind::Other),
        ("AWSLogs/o-short/123456789012/CloudTrail/x", KeyKind::Other),
    ] {
        assert_eq!(classify_key(key), kind, "{key}");
    }
}

// ---- EventBridge "AWS API Call via CloudTrail" events (real time) ------------------

fn api_call_event() -> Value {
    json!({
        "version": "0", "id": "4c2f8e1a-93d7-4b6e-a5c0-7d1e2f3a4b5c",
        "detail-type": "AWS API Call via CloudTrail", "source": "aws.rds",
        "account": "123456789012", "time": "2024-01-15T10:30:00Z", "region": "us-east-1",
        "resources": [],
        "detail": {"eventVersion": "1.08", "eventSource": "rds.amazonaws.com",
                   "eventName": "StartExportTask", "eventID": "f1e2d3c4", "awsRegion": "us-east-1"}
    })
}

const API_CALL_SOURCE: &str = "eventbridge:us-east-1:4c2f8e1a-93d7-4b6e-a5c0-7d1e2f3a4b5c";
const API_CALL_RECORD: &str = r#"{"eventVersion":"1.08","eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventID":"f1e2d3c4","awsRegion":"us-east-1"}"#;

fn the_call() -> ApiCall {
    ApiCall {
        source: API_CALL_SOURCE.into(),
        record: API_CALL_RECORD.into(),
    }
}

#[test]
fn an_api_call_event_is_one_record() {
    assert_eq!(
        parse_trigger(&api_call_event()).unwrap(),
        Trigger::ApiCalls(vec![the_call()])
    );
    // S3's own API calls (data events) are records too, not object notifications.
    let mut s3_call = api_call_event();
    s3_call["source"] = json!("aws.s3");
    assert!(matches!(
        parse_trigger(&s3_call).unwrap(),
        Trigger::ApiCalls(calls) if calls.len() == 1
    ));
}

#[test]
fn api_call_events_in_sqs_and_sns_keep_their_detail_text() {
    // Pretty-printed as a queue or topic target would carry it.
    let text = serde_json::to_string_pretty(&api_call_event()).unwrap();
    let detail_text = serde_json::to_string_pretty(&api_call_event()["detail"]).unwrap();
    let event = sqs_event(&[
        ("m-1", text.clone()),
        ("m-2", sns_envelope(&api_call_event()).to_string()),
        ("m-3", s3_event(LOG_KEY).to_string()),
    ]);
    let Trigger::Batch(messages) = parse_trigger(&event).unwrap() else {
        panic!("an SQS event is a batch");
    };
    assert_eq!(messages[0].objects, Ok(vec![]));
    assert_eq!(messages[0].api_calls.len(), 1);
    let indented = detail_text.replace('\n', "\n  ");
    assert_eq!(
        messages[0].api_calls[0].record, indented,
        "the body's own text"
    );
    assert_eq!(messages[0].api_calls[0].source, API_CALL_SOURCE);
    assert_eq!(messages[1].api_calls, vec![the_call()]);
    assert_eq!(messages[2].objects, Ok(vec![log_object(LOG_KEY)]));
    assert!(messages[2].api_calls.is_empty());

    let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": api_call_event().to_string()}}]});
    assert_eq!(
        parse_trigger(&sns).unwrap(),
        Trigger::ApiCalls(vec![the_call()])
    );
    let mixed = json!({"Records": [
        {"EventSource": "aws:sns", "Sns": {"Message": api_call_event().to_string()}},
        {"EventSource": "aws:sns", "Sns": {"Message": s3_event(LOG_KEY).to_string()}}
    ]});
    let error = parse_trigger(&mixed).unwrap_err().to_string();
    assert!(error.contains("mixes"), "{error}");
}

#[test]
fn a_redriven_api_call_is_the_original_event() {
    let record = json!({
        "version": "1.0", "timestamp": "2024-01-15T10:45:00.000Z",
        "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:trailwatch:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": api_call_event(),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ObjectsFailedTransient", "errorMessage": "..."}
    });
    let direct = crate::redrive::unwrap(record.clone());
    assert_eq!(
        parse_trigger(&direct).unwrap(),
        Trigger::ApiCalls(vec![the_call()])
    );
    let queued = crate::redrive::unwrap(sqs_event(&[("m-1", record.to_string())]));
    let Trigger::Batch(messages) = parse_trigger(&queued).unwrap() else {
        panic!("an SQS event is a batch");
    };
    assert_eq!(messages[0].api_calls, vec![the_call()]);
}

#[test]
fn an_api_call_event_without_detail_fails_its_message_only() {
    let mut broken = api_call_event();
    broken.as_object_mut().unwrap().remove("detail");
    let error = parse_trigger(&broken).unwrap_err().to_string();
    assert!(
        error.contains("malformed EventBridge event") && error.contains("no detail"),
        "{error}"
    );
    let event = sqs_event(&[
        ("m-1", broken.to_string()),
        ("m-2", api_call_event().to_string()),
    ]);
    let Trigger::Batch(messages) = parse_trigger(&event).unwrap() else {
        panic!("an SQS event is a batch");
    };
    let error = messages[0].objects.clone().unwrap_err().to_string();
    assert!(
        error.contains("message m-1") && error.contains("no detail"),
        "{error}"
    );
    assert_eq!(messages[1].api_calls.len(), 1);
}
