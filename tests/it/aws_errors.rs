//! Failed calls to AWS keep their cause (throttled, access denied, not found, ...)
//! from the SDK error to the invocation's error, against a local AWS emulator.

use std::sync::Arc;

use trailwatch::aws_error::Cause;
use trailwatch::dedup::{DedupStore, DynamoStore};
use trailwatch::handler::{Failure, HandlerError};
use trailwatch::sink::{AlertSink, SnsSink};

use crate::support::stack::{export_record, log_file, log_key, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_bucket_or_table_is_reported_as_not_found() {
    let stack = Stack::start().await;
    let key = log_key("123456789012", "causes");
    let record = export_record("cause-1", "2024-05-01T10:00:00Z", "123456789012", "db");
    stack.put_object(&key, log_file(&[record])).await;

    // Publishing to a topic that does not exist.
    let missing_topic: Arc<dyn AlertSink> = Arc::new(SnsSink::new(
        stack.sns.clone(),
        "arn:aws:sns:us-east-1:123456789012:no-such-topic",
    ));
    let error = stack
        .handler(Some(missing_topic))
        .handle(stack.s3_event(std::slice::from_ref(&key)))
        .await
        .expect_err("the alert cannot be published");
    let text = error.to_string();
    assert!(
        text.contains("publishing alert") && text.contains("(not found)"),
        "{text}"
    );
    assert_eq!(
        only_failure(&error).cause(),
        Some(Cause::NotFound),
        "{text}"
    );
    assert!(
        matches!(only_failure(&error), Failure::Publish(_)),
        "{text}"
    );

    // Reading from a bucket that does not exist.
    let event = crate::support::fixtures::s3_event("no-such-bucket", &[key.as_str()]);
    let error = stack
        .handler(None)
        .handle(event)
        .await
        .expect_err("the object cannot be fetched");
    let text = error.to_string();
    assert!(
        text.contains("s3://no-such-bucket/") && text.contains("(not found)"),
        "{text}"
    );
    assert!(matches!(only_failure(&error), Failure::Fetch(_)), "{text}");
    assert_eq!(
        only_failure(&error).cause(),
        Some(Cause::NotFound),
        "{text}"
    );
    assert!(!only_failure(&error).is_transient());

    // Dedup windows in a table that does not exist.
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&stack.conf), "no-such-table");
    let error = store
        .take_rollups(0, true)
        .await
        .expect_err("the table is missing");
    assert_eq!(error.cause, Cause::NotFound, "{error}");
    assert!(error.to_string().contains("no-such-table"), "{error}");
}

/// The one failure of an invocation that failed on its objects.
fn only_failure(error: &HandlerError) -> &Failure {
    match error {
        HandlerError::Objects(failures) if failures.len() == 1 => &failures[0],
        other => panic!("expected one object failure, got {other:?}"),
    }
}
