//! The e-mail and the subject cannot be forged: a caller sets its own user agent
//! and request parameters, and whatever it puts in them (line breaks of every
//! kind, terminal escapes, bidirectional overrides) stays on the line the e-mail
//! shows it on. The e-mail is read as SNS delivers it (the `email` variant of the
//! published message), built by the detector and the alert code from the record's
//! text.

use proptest::prelude::*;
use serde_json::{json, Value};

use trailwatch::alert::build_alert;
use trailwatch::decode::Limits;
use trailwatch::detect::Detector;
use trailwatch::rule::RuleSet;

/// Every field of the export rule's e-mail that a record fills.
const SHOWN: &[&str] = &[
    "/eventTime",
    "/eventID",
    "/awsRegion",
    "/recipientAccountId",
    "/sourceIPAddress",
    "/userAgent",
    "/userIdentity/arn",
    "/userIdentity/type",
    "/userIdentity/userName",
    "/userIdentity/principalId",
    "/requestParameters/sourceArn",
    "/requestParameters/s3BucketName",
    "/requestParameters/s3Prefix",
    "/requestParameters/exportTaskIdentifier",
    "/requestParameters/kmsKeyId",
    "/requestParameters/iamRoleArn",
    "/requestParameters/exportOnly/0",
    "/requestParameters/exportOnly/1",
];

/// Characters that break a line somewhere (mail clients, terminals, editors) or
/// change what a reader sees, with text a forger would write around them: at least
/// one of them in every value (so that no value is by chance one the rule reads
/// as more severe, `Root`).
fn hostile() -> impl Strategy<Value = String> {
    let breaking = prop_oneof![
        Just("\n".to_owned()),
        Just("\r".to_owned()),
        Just("\r\n".to_owned()),
        Just("\u{85}".to_owned()),
        Just("\u{2028}".to_owned()),
        Just("\u{2029}".to_owned()),
        Just("\u{b}".to_owned()),
        Just("\u{c}".to_owned()),
        Just("\u{1b}[2J\u{1b}[H".to_owned()),
        Just("\u{9b}31m".to_owned()),
        Just("\u{7}\u{0}\u{7f}".to_owned()),
        Just("\u{202e}".to_owned()),
        Just("\u{2066}".to_owned()),
        Just("\t".to_owned()),
    ];
    let text = prop_oneof![
        Just("[High] RDS snapshot exported by a friend".to_owned()),
        Just("Bucket: confirmed yours".to_owned()),
        "[a-zA-Z0-9 /._-]{0,6}",
        breaking.clone(),
    ];
    (
        proptest::collection::vec(text.clone(), 0..3),
        breaking,
        proptest::collection::vec(text, 0..3),
    )
        .prop_map(|(before, breaking, after)| before.concat() + &breaking + &after.concat())
}

fn record() -> Value {
    json!({
        "eventVersion": "1.09", "eventSource": "rds.amazonaws.com", "eventName": "StartExportTask",
        "eventTime": "2024-03-15T10:33:41Z", "eventID": "e-1", "awsRegion": "us-east-1",
        "recipientAccountId": "123456789012", "sourceIPAddress": "198.51.100.23", "userAgent": "aws-cli/2.15.30",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/jdoe",
                         "userName": "jdoe", "principalId": "AIDAEXAMPLE"},
        "requestParameters": {
            "sourceArn": "arn:aws:rds:us-east-1:123456789012:snapshot:orders",
            "s3BucketName": "exports", "s3Prefix": "rds/orders", "exportTaskIdentifier": "orders-export",
            "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1111", "iamRoleArn": "arn:aws:iam::123456789012:role/export",
            "exportOnly": ["orders.customers", "orders.payments"]
        }
    })
}

/// The SNS e-mail variant and the subject of the alert for `record`.
fn email_and_subject(record: &Value, source: &str) -> (String, String) {
    let detector = Detector::new(RuleSet::embedded(), Limits::default());
    let report = detector.detect_record(record.to_string().as_bytes(), source);
    assert!(report.error.is_none(), "a valid record: {:?}", report.error);
    let matches = report.matches;
    assert_eq!(matches.len(), 1, "the export matches");
    let rule = &detector.rules.rules[matches[0].rule];
    let notification = build_alert(rule, &matches[0], "k", 0, 3_600_000);
    let message: Value = serde_json::from_str(&notification.sns_message()).unwrap();
    let email = message["email"]
        .as_str()
        .expect("an email variant")
        .to_owned();
    (email, notification.subject)
}

/// Line breaks as anything that renders text may take them.
fn lines(text: &str) -> Vec<&str> {
    text.split([
        '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}',
    ])
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_record_field_adds_a_line_or_starts_one(
        values in proptest::collection::vec(hostile(), SHOWN.len()),
        key in hostile(),
    ) {
        let mut forged = record();
        for (pointer, value) in SHOWN.iter().zip(&values) {
            *forged.pointer_mut(pointer).unwrap() = Value::String(value.clone());
        }
        let source = format!("s3://trail/AWSLogs/123456789012/CloudTrail/{key}.json.gz");
        let (email, subject) = email_and_subject(&forged, &source);
        let (plain, _) = email_and_subject(&record(), "s3://trail/AWSLogs/123456789012/CloudTrail/k.json.gz");
        let (got, expected) = (lines(&email), lines(&plain));
        prop_assert_eq!(got.len(), expected.len(), "{}", email);
        for (line, clean) in got.iter().zip(&expected) {
            // Every line starts as it does in the e-mail of a plain record: with the
            // e-mail's own text (a label, the rule's texts), never with the record's.
            let head: String = clean.chars().take(9).collect();
            prop_assert!(line.starts_with(&head), "{:?} should start with {:?}", line, head);
            prop_assert!(
                !line.chars().any(trailwatch::text::is_shown_escaped),
                "raw control or separator in {:?}", line
            );
        }
        prop_assert!(subject.is_ascii() && lines(&subject).len() == 1, "{:?}", subject);
        prop_assert!(subject.starts_with("[HIGH] RDS snapshot "), "{:?}", subject);
        prop_assert!(!subject.chars().any(|c| c.is_ascii_control()), "{:?}", subject);
    }
}

#[test]
fn a_user_agent_cannot_write_a_line_of_its_own() {
    let mut forged = record();
    forged["userAgent"] = json!("aws-cli/2\n[High] nothing to see\r\nBucket: confirmed yours");
    let (email, subject) = email_and_subject(&forged, "s3://trail/k.json.gz");
    assert!(
        email.contains(r"From:     198.51.100.23 with aws-cli/2\n[High] nothing to see\r\nBucket: confirmed yours"),
        "{email}"
    );
    assert!(!email
        .lines()
        .any(|l| l.starts_with("[High]") || l.starts_with("Bucket")));
    assert!(
        subject.starts_with("[HIGH] RDS snapshot orders exported"),
        "{subject}"
    );
}
