//! Enrichment against the in-memory fake: what is looked up, what a failed or
//! silent call leaves, the budget, trust, and the texts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::fake::{Behaviour, FakeLookups};
use super::*;
use crate::rule::{RuleSet, Severity};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const TASK: &str = "orders-export";
const SNAPSHOT_ARN: &str = "arn:aws:rds:us-east-1:123456789012:snapshot:orders-prod-2024-03-15";
const BUCKET: &str = "analytics-exports-7731";

fn settings(budget_ms: u64) -> EnrichSettings {
    EnrichSettings {
        budget: Duration::from_millis(budget_ms),
        ..EnrichSettings::default()
    }
}

fn request() -> EnrichRequest {
    EnrichRequest {
        place: Place::new(ACCOUNT, REGION),
        export_task: Some(TASK.into()),
        source: SnapshotRef::from_arn(SNAPSHOT_ARN),
        bucket: Some(BUCKET.into()),
    }
}

fn snapshot() -> SnapshotFacts {
    SnapshotFacts {
        engine: Some("postgres".into()),
        engine_version: Some("15.4".into()),
        database: Some("orders-prod".into()),
        allocated_storage_gb: Some(250),
        encrypted: Some(true),
        snapshot_time: Some("2024-03-15T10:00:00Z".into()),
        snapshot_type: Some("manual".into()),
        status: Some("available".into()),
    }
}

/// A task in progress, its snapshot, and a bucket HeadBucket answers with `status`.
fn fake(bucket_status: u16) -> FakeLookups {
    FakeLookups::new()
        .task_in(TASK, "IN_PROGRESS", 12, 3)
        .snapshot(
            "orders-prod-2024-03-15",
            Behaviour::Answer(Some(snapshot())),
        )
        .bucket_status(BUCKET, ACCOUNT, bucket_status)
}

async fn enrich(lookups: FakeLookups, settings: EnrichSettings) -> (Enrichment, Arc<FakeLookups>) {
    let lookups = Arc::new(lookups);
    let enricher = Enricher::new(Arc::clone(&lookups) as Arc<dyn Lookups>, settings);
    (enricher.enrich(&request()).await, lookups)
}

fn row(enrichment: &Enrichment, label: &str) -> String {
    enrichment
        .email_rows()
        .into_iter()
        .find(|(l, _)| *l == label)
        .map(|(_, text)| text)
        .unwrap_or_else(|| panic!("no {label} row"))
}

#[tokio::test]
async fn the_three_lookups_fill_the_alert_and_its_rows() {
    let (found, lookups) = enrich(fake(200), settings(3000)).await;
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    let task = found.export_task.as_ref().unwrap();
    assert_eq!(
        task.status.text(),
        "in_progress",
        "RDS's status, lower-cased"
    );
    assert_eq!(row(&found, "Status"), "in_progress, 12% (3 of 250 GB)");
    assert_eq!(
        row(&found, "Source"),
        "postgres 15.4, instance orders-prod, 250 GB, encrypted, manual snapshot of 2024-03-15T10:00:00Z"
    );
    assert_eq!(
        row(&found, "Bucket"),
        "confirmed as owned by 123456789012 (region us-east-1)"
    );
    let calls: Vec<&str> = lookups.calls().iter().map(|c| c.0).collect();
    assert_eq!(calls.len(), 3);
    for call in [DESCRIBE_EXPORT_TASKS, DESCRIBE_DB_SNAPSHOTS, HEAD_BUCKET] {
        assert!(calls.contains(&call), "{call} not made: {calls:?}");
    }
    assert!(lookups
        .calls()
        .iter()
        .all(|(_, place, _)| *place == Place::new(ACCOUNT, REGION)));
    assert!(
        lookups
            .calls()
            .iter()
            .any(|c| c.2 == format!("{BUCKET} {ACCOUNT}")),
        "HeadBucket expects the exporting account as owner"
    );
}

#[tokio::test]
async fn lookups_run_concurrently() {
    let slow = Duration::from_millis(300);
    let lookups = FakeLookups::new()
        .task(TASK, Behaviour::Slow(slow, None))
        .snapshot("orders-prod-2024-03-15", Behaviour::Slow(slow, None))
        .bucket(
            BUCKET,
            ACCOUNT,
            Behaviour::Slow(
                slow,
                HeadBucketAnswer {
                    status: 200,
                    region: None,
                },
            ),
        );
    let started = Instant::now();
    let (found, _) = enrich(lookups, settings(3000)).await;
    let took = started.elapsed();
    assert!(found.errors.is_empty());
    assert!(
        took < Duration::from_millis(800),
        "three 300 ms calls took {took:?}: not concurrent"
    );
    assert_eq!(found.export_task.unwrap().status.text(), NOT_FOUND);
    assert_eq!(found.source.unwrap().status.text(), NOT_FOUND);
}

#[tokio::test]
async fn a_call_that_never_answers_is_unknown_within_the_budget() {
    let lookups = fake(200).task(TASK, Behaviour::Hang);
    let started = Instant::now();
    let (found, _) = enrich(lookups, settings(250)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(250 + 150),
        "returned after {took:?} for a budget of 250 ms"
    );
    let task = found.export_task.as_ref().unwrap();
    assert_eq!(task.status, Known::Unknown);
    assert_eq!(task.percent_progress, Known::Unknown);
    assert_eq!(found.errors.len(), 1, "{:?}", found.errors);
    assert_eq!(found.errors[0].call, DESCRIBE_EXPORT_TASKS);
    assert_eq!(found.errors[0].cause, Cause::Timeout);
    assert!(found.errors[0].message.contains("250 ms"));
    // The others answered within the budget and are kept.
    assert_eq!(found.bucket.as_ref().unwrap().owner, BucketOwner::Confirmed);
    assert_eq!(
        found.source.as_ref().unwrap().allocated_storage_gb,
        Known::Value(Some(250))
    );
    assert_eq!(
        row(&found, "Status"),
        "unknown (rds:DescribeExportTasks: timeout)"
    );
    let doc = serde_json::to_value(&found).unwrap();
    assert_eq!(doc["enrichment"]["exportTask"]["status"], "unknown");
    assert_eq!(
        doc["enrichment"]["exportTask"]["totalExtractedDataInGB"],
        "unknown"
    );
    assert_eq!(
        doc["enrichmentErrors"][0]["call"],
        "rds:DescribeExportTasks"
    );
    assert_eq!(doc["enrichmentErrors"][0]["cause"], "timeout");
}

#[tokio::test]
async fn nothing_answering_still_returns_within_the_budget() {
    let lookups = FakeLookups::new()
        .task(TASK, Behaviour::Hang)
        .snapshot("orders-prod-2024-03-15", Behaviour::Hang)
        .bucket(BUCKET, ACCOUNT, Behaviour::Hang);
    let started = Instant::now();
    let (found, _) = enrich(lookups, settings(200)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(350), "took {took:?}");
    let calls: Vec<&str> = found.errors.iter().map(|e| e.call.as_str()).collect();
    assert_eq!(
        calls,
        [DESCRIBE_EXPORT_TASKS, DESCRIBE_DB_SNAPSHOTS, HEAD_BUCKET]
    );
    assert!(found.errors.iter().all(|e| e.cause == Cause::Timeout));
    assert_eq!(found.bucket.as_ref().unwrap().owner, BucketOwner::Unknown);
    assert!(row(&found, "Bucket").starts_with("ownership by 123456789012 unknown"));
}

#[tokio::test]
async fn throttled_and_denied_calls_name_their_cause() {
    let throttled = CallError::new(Cause::Throttled, "Rate exceeded");
    let denied = CallError {
        cause: Cause::AccessDenied,
        message: "not authorized to perform sts:AssumeRole".into(),
        via: Some(ASSUME_ROLE),
    };
    let lookups = fake(200)
        .task(TASK, Behaviour::Fail(throttled))
        .snapshot("orders-prod-2024-03-15", Behaviour::Fail(denied));
    let (found, _) = enrich(lookups, settings(3000)).await;
    let errors: Vec<(&str, Cause)> = found
        .errors
        .iter()
        .map(|e| (e.call.as_str(), e.cause))
        .collect();
    assert_eq!(
        errors,
        [
            (DESCRIBE_EXPORT_TASKS, Cause::Throttled),
            (ASSUME_ROLE, Cause::AccessDenied)
        ]
    );
    assert_eq!(
        row(&found, "Status"),
        "unknown (rds:DescribeExportTasks: throttled)"
    );
    assert_eq!(
        row(&found, "Source"),
        "unknown (sts:AssumeRole: access denied)"
    );
    let doc = serde_json::to_value(&found).unwrap();
    assert_eq!(doc["enrichment"]["source"]["allocatedStorageGB"], "unknown");
    assert_eq!(doc["enrichmentErrors"][1]["cause"], "accessDenied");
    let mut counters = EnrichCounters::default();
    counters.add(&found);
    assert_eq!(
        counters.metrics(),
        [
            ("Enriched", 1),
            ("EnrichmentErrors", 2),
            ("EnrichmentEscalations", 0)
        ]
    );
    assert_eq!(counters.errors_by_cause[&Cause::Throttled], 1);
}

fn severity_with(found: &Enrichment) -> (Severity, Option<String>) {
    let rule = RuleSet::embedded()
        .get("AWS.RDS.SnapshotExport")
        .unwrap()
        .clone();
    let fields = json!({"s3Bucket": BUCKET, "exportTaskIdentifier": TASK});
    let facts = found.add_to(Facts::new(fields.as_object().unwrap(), ACCOUNT, REGION));
    rule.enrichment
        .unwrap()
        .escalate(rule.severity, None, &facts)
}

#[tokio::test]
async fn head_bucket_403_is_unconfirmed_critical_and_says_what_it_cannot_tell() {
    let (found, _) = enrich(fake(403), settings(3000)).await;
    let bucket = found.bucket.as_ref().unwrap();
    assert_eq!(bucket.owner, BucketOwner::Unconfirmed);
    assert_eq!(bucket.status, Some(403));
    assert!(!bucket.trusted);
    assert_eq!(
        row(&found, "Bucket"),
        "NOT confirmed as owned by 123456789012 (HeadBucket 403: another account owns the \
         bucket, or it is not visible to this role; S3 does not say which)"
    );
    let (severity, reason) = severity_with(&found);
    assert_eq!(severity, Severity::Critical);
    assert!(reason
        .unwrap()
        .contains("not confirmed as owned by the exporting account"));
    let doc = serde_json::to_value(&found).unwrap();
    assert_eq!(doc["enrichment"]["bucket"]["owner"], "unconfirmed");
    assert_eq!(doc["enrichment"]["bucket"]["status"], 403);
    assert!(
        doc.get("enrichmentErrors").is_none(),
        "a 403 is an answer, not an error"
    );

    let (confirmed, _) = enrich(fake(200), settings(3000)).await;
    assert_eq!(severity_with(&confirmed), (Severity::High, None));
    let (missing, _) = enrich(fake(404), settings(3000)).await;
    assert_eq!(severity_with(&missing).0, Severity::Critical);
    assert!(row(&missing, "Bucket").contains("HeadBucket 404: no such bucket"));
}

#[tokio::test]
async fn an_unanswered_head_bucket_does_not_escalate() {
    let lookups = fake(200).bucket(
        BUCKET,
        ACCOUNT,
        Behaviour::Fail(CallError::new(Cause::Throttled, "SlowDown")),
    );
    let (found, _) = enrich(lookups, settings(3000)).await;
    assert_eq!(found.bucket.as_ref().unwrap().owner, BucketOwner::Unknown);
    assert_eq!(severity_with(&found), (Severity::High, None));
}

#[tokio::test]
async fn trusted_buckets_and_trusted_owners() {
    let by_name = EnrichSettings {
        trusted_buckets: vec![BUCKET.into()],
        trusted_accounts: vec!["999988887777".into()],
        ..settings(3000)
    };
    let (found, lookups) = enrich(fake(403), by_name).await;
    let bucket = found.bucket.as_ref().unwrap();
    assert!(bucket.trusted);
    assert_eq!(
        bucket.trusted_by.as_deref(),
        Some("TRAILWATCH_TRUSTED_BUCKETS")
    );
    assert_eq!(
        lookups
            .calls()
            .iter()
            .filter(|c| c.0 == HEAD_BUCKET)
            .count(),
        1,
        "a bucket trusted by name needs no owner probe"
    );
    assert_eq!(severity_with(&found), (Severity::High, None));
    assert!(row(&found, "Bucket").ends_with("; trusted (TRAILWATCH_TRUSTED_BUCKETS)"));

    let by_owner = EnrichSettings {
        trusted_accounts: vec!["999988887777".into(), "111122223333".into()],
        ..settings(3000)
    };
    let lake = fake(403)
        .bucket_status(BUCKET, "999988887777", 200)
        .bucket_status(BUCKET, "111122223333", 403);
    let (found, lookups) = enrich(lake, by_owner.clone()).await;
    let bucket = found.bucket.as_ref().unwrap();
    assert_eq!(bucket.owner, BucketOwner::Unconfirmed);
    assert!(bucket.trusted);
    assert_eq!(
        bucket.trusted_by.as_deref(),
        Some("owner 999988887777 in TRAILWATCH_TRUSTED_ACCOUNTS")
    );
    assert_eq!(
        lookups
            .calls()
            .iter()
            .filter(|c| c.0 == HEAD_BUCKET)
            .count(),
        3
    );
    assert_eq!(severity_with(&found), (Severity::High, None));

    let elsewhere = fake(403).bucket_status(BUCKET, "999988887777", 403).bucket(
        BUCKET,
        "111122223333",
        Behaviour::Fail(CallError::new(Cause::Throttled, "SlowDown")),
    );
    let (found, _) = enrich(elsewhere, by_owner).await;
    assert!(!found.bucket.as_ref().unwrap().trusted);
    assert_eq!(severity_with(&found).0, Severity::Critical);
    assert_eq!(found.errors.len(), 1);
    assert_eq!(
        found.errors[0].call,
        "s3:HeadBucket (ExpectedBucketOwner 111122223333)"
    );
}

#[tokio::test]
async fn an_event_without_an_account_is_not_looked_up() {
    let lookups = Arc::new(fake(200));
    let enricher = Enricher::new(Arc::clone(&lookups) as Arc<dyn Lookups>, settings(3000));
    let mut req = request();
    req.place = Place::new(crate::UNKNOWN, REGION);
    let found = enricher.enrich(&req).await;
    assert!(lookups.calls().is_empty());
    assert_eq!(found.errors.len(), 3);
    assert!(found.errors.iter().all(|e| e.cause == Cause::Other));
    assert_eq!(found.bucket.unwrap().owner, BucketOwner::Unknown);
}

#[test]
fn requests_come_from_the_rules_declared_fields() {
    let rule = RuleSet::embedded()
        .get("AWS.RDS.SnapshotExport")
        .unwrap()
        .clone();
    let spec = rule.enrichment.as_ref().unwrap();
    let fields =
        json!({"snapshotArn": SNAPSHOT_ARN, "exportTaskIdentifier": TASK, "s3Bucket": "unknown"});
    let req = EnrichRequest::for_alert(spec, fields.as_object().unwrap(), ACCOUNT, REGION);
    assert_eq!(req.export_task.as_deref(), Some(TASK));
    assert_eq!(req.bucket, None, "an unknown field is not looked up");
    let source = req.source.unwrap();
    assert_eq!(
        (source.id.as_str(), source.cluster),
        ("orders-prod-2024-03-15", false)
    );

    let shared = RuleSet::every_embedded()
        .get("AWS.RDS.SnapshotShared")
        .unwrap()
        .clone();
    let fields = json!({"dbSnapshot": null, "clusterSnapshot": "aurora-snap"});
    let req = EnrichRequest::for_alert(
        shared.enrichment.as_ref().unwrap(),
        fields.as_object().unwrap(),
        ACCOUNT,
        REGION,
    );
    let source = req.source.unwrap();
    assert_eq!((source.id.as_str(), source.cluster), ("aurora-snap", true));
    assert_eq!(source.call(), DESCRIBE_DB_CLUSTER_SNAPSHOTS);
    assert!(req.export_task.is_none() && req.bucket.is_none());
}

#[test]
fn snapshot_arns() {
    let automated =
        SnapshotRef::from_arn("arn:aws:rds:us-east-1:1:snapshot:rds:orders-2024-03-15-10-00")
            .unwrap();
    assert_eq!(automated.id, "rds:orders-2024-03-15-10-00");
    let cluster = SnapshotRef::from_arn("arn:aws:rds:us-east-1:1:cluster-snapshot:c1").unwrap();
    assert!(cluster.cluster);
    assert_eq!(
        SnapshotRef::from_arn("arn:aws:rds:us-east-1:1:cluster:live"),
        None
    );
    assert_eq!(SnapshotRef::from_arn("arn:aws:s3:::bucket"), None);
    assert_eq!(SnapshotRef::from_arn("orders"), None);
}

#[tokio::test]
async fn document_members_rows_and_product_fields() {
    let (found, _) = enrich(fake(200), settings(3000)).await;
    let doc = serde_json::to_value(&found).unwrap();
    let members: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(
        members,
        ["enrichment"],
        "no enrichmentErrors when none failed"
    );
    assert_eq!(
        doc["enrichment"],
        json!({
            "exportTask": {"id": TASK, "status": "in_progress", "percentProgress": 12,
                           "totalExtractedDataInGB": 3, "failureCause": null},
            "source": {"identifier": "orders-prod-2024-03-15", "arn": SNAPSHOT_ARN,
                       "type": "db-snapshot", "status": "available", "engine": "postgres",
                       "engineVersion": "15.4", "database": "orders-prod",
                       "allocatedStorageGB": 250, "encrypted": true,
                       "snapshotTime": "2024-03-15T10:00:00Z", "snapshotType": "manual"},
            "bucket": {"name": BUCKET, "owner": "confirmed", "expectedOwner": ACCOUNT,
                       "status": 200, "region": "us-east-1", "trusted": false,
                       "detail": "HeadBucket 200: the bucket exists and 123456789012 owns it"},
        })
    );
    let facts = found.facts_value();
    assert_eq!(facts["errors"], json!([]));
    let fields: std::collections::HashMap<String, String> =
        found.product_fields().into_iter().collect();
    assert_eq!(
        fields["trailwatch/enrichment/exportTask/status"],
        "in_progress"
    );
    assert_eq!(
        fields["trailwatch/enrichment/source/allocatedStorageGB"],
        "250"
    );
    assert_eq!(fields["trailwatch/enrichment/bucket/owner"], "confirmed");
    assert!(!fields.contains_key("trailwatch/enrichment/errors"));
    assert!(fields.values().all(|v: &String| !v.is_empty()));
}

#[tokio::test]
async fn what_the_pipeline_calls_is_off_when_nothing_is_to_be_looked_up() {
    let rule = RuleSet::embedded()
        .get("AWS.RDS.SnapshotExport")
        .unwrap()
        .clone();
    let spec = rule.enrichment.as_ref();
    let fields =
        json!({"snapshotArn": SNAPSHOT_ARN, "exportTaskIdentifier": TASK, "s3Bucket": BUCKET});
    let fields = fields.as_object().unwrap();
    let lookups = Arc::new(fake(403));
    let on = Enricher::new(Arc::clone(&lookups) as Arc<dyn Lookups>, settings(3000));
    let found = on
        .enrich_alert(spec, fields, ACCOUNT, REGION, on.deadline())
        .await
        .expect("the export rule enriches");
    assert_eq!(found.bucket.unwrap().owner, BucketOwner::Unconfirmed);
    assert_eq!(lookups.calls().len(), 3);

    let off = Enricher::new(
        Arc::clone(&lookups) as Arc<dyn Lookups>,
        EnrichSettings {
            enabled: false,
            ..settings(3000)
        },
    );
    assert!(off
        .enrich_alert(spec, fields, ACCOUNT, REGION, off.deadline())
        .await
        .is_none());
    assert!(on
        .enrich_alert(None, fields, ACCOUNT, REGION, on.deadline())
        .await
        .is_none());
    let nothing = json!({"exportTaskIdentifier": "unknown"});
    assert!(on
        .enrich_alert(
            spec,
            nothing.as_object().unwrap(),
            ACCOUNT,
            REGION,
            on.deadline()
        )
        .await
        .is_none());
    assert_eq!(
        lookups.calls().len(),
        3,
        "no call when off or nothing to look up"
    );

    // A deadline already spent by other work of the alert: unknown at once.
    let hanging = Arc::new(fake(200).task(TASK, Behaviour::Hang));
    let enricher = Enricher::new(hanging as Arc<dyn Lookups>, settings(3000));
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    let found = enricher
        .enrich_alert(spec, fields, ACCOUNT, REGION, deadline)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(found.export_task.unwrap().status, Known::Unknown);
}
