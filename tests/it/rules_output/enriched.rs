//! The export rule's alerts with enrichment and a response, pinned byte for byte
//! (`tests/golden/export_*enriched*.txt`, `export_response_follow_up.txt`), built
//! through the pipeline with in-memory AWS and a fixed clock; and what Security
//! Hub findings carry of them.

use std::time::Duration;

use serde_json::Value;

use trailwatch::respond::fake::FakeExportTasks;

use super::{assert_golden, rendered};
use crate::enrich_respond::{fakes, lookups, the_export, TASK};

const EVENT_ID: &str = "c0ffee00-5e1f-4b2a-9d3c-7a8b9c0d1e2f";
const EVENT_TIME: &str = "2024-03-15T10:33:41Z";

#[tokio::test]
async fn enriched_alerts_render_exactly_as_published() {
    // An export still writing to a bucket HeadBucket refuses: Critical, cancelled.
    let f = fakes(
        lookups("IN_PROGRESS", 403),
        FakeExportTasks::new().with_task(TASK, "in_progress"),
        &[("TRAILWATCH_RESPONSE", "cancel")],
    );
    f.run(vec![the_export(EVENT_ID, EVENT_TIME)]).await;
    let [alert] = f.sink.notifications().try_into().unwrap();
    assert_golden("export_alert_enriched_canceled.txt", &rendered(&alert));

    // The exporting account's own bucket: High, nothing to do (report mode).
    let f = fakes(
        lookups("IN_PROGRESS", 200),
        FakeExportTasks::new().with_task(TASK, "in_progress"),
        &[],
    );
    f.run(vec![the_export(EVENT_ID, EVENT_TIME)]).await;
    let [alert] = f.sink.notifications().try_into().unwrap();
    assert_golden("export_alert_enriched_confirmed.txt", &rendered(&alert));

    // A cancel that outlasts the alert's deadline: its follow-up.
    let f = fakes(
        lookups("STARTING", 403),
        FakeExportTasks::new()
            .with_task(TASK, "starting")
            .slow(Duration::from_millis(600)),
        &[
            ("TRAILWATCH_RESPONSE", "cancel"),
            ("TRAILWATCH_ENRICH_TIMEOUT_MS", "100"),
        ],
    );
    f.run(vec![the_export(EVENT_ID, EVENT_TIME)]).await;
    let [alert, follow_up] = f.sink.notifications().try_into().unwrap();
    assert!(alert.document.contains(r#""outcome":"pending""#));
    assert_golden("export_response_follow_up.txt", &rendered(&follow_up));
}

#[cfg(feature = "securityhub")]
#[tokio::test]
async fn security_hub_findings_carry_the_enrichment_and_the_response() {
    use trailwatch::sink::securityhub::{finding_for, product_arn};
    let f = fakes(
        lookups("IN_PROGRESS", 403),
        FakeExportTasks::new().with_task(TASK, "in_progress"),
        &[("TRAILWATCH_RESPONSE", "cancel")],
    );
    f.run(vec![the_export(EVENT_ID, EVENT_TIME)]).await;
    let [alert] = f.sink.notifications().try_into().unwrap();
    let product = product_arn("aws", "us-east-1", "123456789012");
    let finding = finding_for(&alert, &product, "2024-03-15T10:34:00Z")
        .unwrap()
        .expect("an alert is a finding");
    let fields = finding.product_fields().expect("product fields");
    for (name, value) in [
        ("trailwatch/enrichment/exportTask/status", "in_progress"),
        ("trailwatch/enrichment/source/allocatedStorageGB", "250"),
        ("trailwatch/enrichment/bucket/owner", "unconfirmed"),
        ("trailwatch/enrichment/bucket/status", "403"),
        ("trailwatch/response/mode", "cancel"),
        ("trailwatch/response/outcome", "canceled"),
        ("trailwatch/response/target", TASK),
        ("trailwatch/response/at", "2024-03-15T10:33:44Z"),
        (
            "trailwatch/principalArn",
            "arn:aws:sts::123456789012:assumed-role/DataEngineer/jdoe",
        ),
    ] {
        assert_eq!(fields.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert!(fields.len() <= 50, "Security Hub's limit: {}", fields.len());
    let severity = finding.severity().and_then(|s| s.label()).unwrap();
    assert_eq!(severity.as_str(), "CRITICAL");
    let description = finding.description().unwrap();
    assert!(
        description.contains("Raised to CRITICAL because the destination bucket"),
        "{description}"
    );
    let doc: Value = serde_json::from_str(&alert.document).unwrap();
    assert_eq!(doc["response"]["outcome"], "canceled");
}
