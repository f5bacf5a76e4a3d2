//! Enrichment's SDK clients against the emulator (`moto_server`): the export task,
//! the snapshot and the bucket as the real calls read them, another account's
//! resources through its member role, and endpoints that fail or never answer.
//!
//! What moto cannot show is tested with the fakes in `src/enrich/tests.rs`: moto
//! ignores `ExpectedBucketOwner` (so HeadBucket's 403 for another owner), and
//! its export tasks are `complete` at once (so a task still `starting`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use trailwatch::aws_error::Cause;
use trailwatch::config::EnrichSettings;
use trailwatch::enrich::{
    AwsLookups, BucketOwner, EnrichRequest, Enricher, Known, Lookups, MemberAccounts, Place,
    SnapshotRef, ASSUME_ROLE, DESCRIBE_DB_SNAPSHOTS, DESCRIBE_EXPORT_TASKS, HEAD_BUCKET,
};

use crate::support::moto::{MotoServer, REGION};
use crate::support::rds::{as_account, config_for, export, BlackHole, Export};

/// moto's default account, that of the static test credentials.
const OWN: &str = "123456789012";
const MEMBER: &str = "111122223333";
const ROLE: &str = "TrailwatchMember";

async fn emulator() -> (MotoServer, aws_config::SdkConfig) {
    let server = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .expect("moto_server starts");
    let conf = server.sdk_config().await;
    (server, conf)
}

fn enricher(accounts: MemberAccounts, budget: Duration) -> Enricher {
    let lookups = AwsLookups::new(Arc::new(accounts.with_s3_path_style(true)));
    Enricher::new(
        Arc::new(lookups) as Arc<dyn Lookups>,
        EnrichSettings {
            budget,
            ..EnrichSettings::default()
        },
    )
}

fn request(account: &str, export: &Export) -> EnrichRequest {
    EnrichRequest {
        place: Place::new(account, REGION),
        export_task: Some(export.task.clone()),
        source: SnapshotRef::from_arn(&export.snapshot_arn),
        bucket: Some(export.bucket.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_answers_every_lookup_in_the_own_account() {
    let (server, conf) = emulator().await;
    let export = export(&conf, &server.s3_client(&conf)).await;
    // The own account is learned from sts:GetCallerIdentity: no role is assumed.
    let found = enricher(
        MemberAccounts::new(&conf, Some(ROLE.into())),
        Duration::from_secs(20),
    )
    .enrich(&request(OWN, &export))
    .await;
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    let doc = serde_json::to_value(&found).unwrap();
    let enrichment = &doc["enrichment"];
    assert_eq!(enrichment["exportTask"]["id"], export.task.as_str());
    assert_eq!(
        enrichment["exportTask"]["status"], "complete",
        "moto's only status"
    );
    assert_eq!(enrichment["source"]["allocatedStorageGB"], 250);
    assert_eq!(enrichment["source"]["engine"], "postgres");
    assert_eq!(enrichment["source"]["database"], export.db.as_str());
    assert_eq!(enrichment["source"]["identifier"], export.snapshot.as_str());
    assert_eq!(enrichment["source"]["encrypted"], true);
    assert_eq!(enrichment["source"]["snapshotType"], "manual");
    assert_eq!(enrichment["bucket"]["owner"], "confirmed");
    assert_eq!(enrichment["bucket"]["status"], 200);
    assert_eq!(enrichment["bucket"]["expectedOwner"], OWN);
    let rows = found.email_rows();
    assert!(rows[0].1.starts_with("complete"), "{rows:?}");
    assert!(
        rows[1].1.contains("postgres") && rows[1].1.contains("250 GB"),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_emulator_does_not_have_reads_not_found() {
    let (server, conf) = emulator().await;
    let found = enricher(MemberAccounts::new(&conf, None), Duration::from_secs(20))
        .enrich(&EnrichRequest {
            place: Place::new(OWN, REGION),
            export_task: Some("no-such-task".into()),
            source: SnapshotRef::from_arn("arn:aws:rds:us-east-1:123456789012:snapshot:nope"),
            bucket: Some("no-such-bucket-for-trailwatch".into()),
        })
        .await;
    drop(server);
    assert!(
        found.errors.is_empty(),
        "not found is an answer: {:?}",
        found.errors
    );
    assert_eq!(found.export_task.unwrap().status.text(), "not-found");
    assert_eq!(found.source.unwrap().status.text(), "not-found");
    let bucket = found.bucket.unwrap();
    assert_eq!(bucket.owner, BucketOwner::Unconfirmed);
    assert_eq!(bucket.status, Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_resources_are_read_through_its_member_role() {
    let (server, conf) = emulator().await;
    // Created in the member account only.
    let member = as_account(&conf, MEMBER, "setup").await;
    let export = export(&member, &server.s3_client(&member)).await;

    let found = enricher(
        MemberAccounts::new(&conf, Some(ROLE.into())),
        Duration::from_secs(20),
    )
    .enrich(&request(MEMBER, &export))
    .await;
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    assert_eq!(found.export_task.unwrap().status.text(), "complete");
    assert_eq!(
        found.source.unwrap().allocated_storage_gb,
        Known::Value(Some(250))
    );

    // With the function's own credentials the member's task is not there: the
    // answer above came through the role.
    let own = AwsLookups::new(Arc::new(
        MemberAccounts::new(&conf, None).with_own_account(MEMBER),
    ));
    let missing = own
        .export_task(&Place::new(MEMBER, REGION), &export.task)
        .await
        .unwrap();
    assert_eq!(missing, None);

    // Without a member role another account is not looked up at all.
    let refused = enricher(MemberAccounts::new(&conf, None), Duration::from_secs(20))
        .enrich(&request(MEMBER, &export))
        .await;
    assert_eq!(refused.errors.len(), 3);
    assert!(
        refused.errors.iter().all(|e| e.call == ASSUME_ROLE),
        "{:?}",
        refused.errors
    );
    assert_eq!(refused.export_task.unwrap().status, Known::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_never_answers_costs_the_budget_and_no_more() {
    let hole = BlackHole::new();
    let conf = config_for(&hole.endpoint).await;
    let export = Export {
        db: "db".into(),
        snapshot: "snap".into(),
        snapshot_arn: "arn:aws:rds:us-east-1:123456789012:snapshot:snap".into(),
        task: "task".into(),
        bucket: "bucket".into(),
    };
    let budget = Duration::from_millis(600);
    // sts:GetCallerIdentity goes to the same endpoint: it counts against the budget too.
    let enricher = enricher(MemberAccounts::new(&conf, Some(ROLE.into())), budget);
    let started = Instant::now();
    let found = enricher.enrich(&request(OWN, &export)).await;
    let took = started.elapsed();
    assert!(
        took >= budget && took < budget + Duration::from_millis(300),
        "returned after {took:?} for a budget of {budget:?}"
    );
    let calls: Vec<(&str, Cause)> = found
        .errors
        .iter()
        .map(|e| (e.call.as_str(), e.cause))
        .collect();
    assert_eq!(
        calls,
        [
            (DESCRIBE_EXPORT_TASKS, Cause::Timeout),
            (DESCRIBE_DB_SNAPSHOTS, Cause::Timeout),
            (HEAD_BUCKET, Cause::Timeout)
        ]
    );
    let doc = serde_json::to_value(&found).unwrap();
    assert_eq!(doc["enrichment"]["exportTask"]["status"], "unknown");
    assert_eq!(doc["enrichment"]["source"]["allocatedStorageGB"], "unknown");
    assert_eq!(doc["enrichment"]["bucket"]["owner"], "unknown");
    assert_eq!(doc["enrichmentErrors"][0]["cause"], "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_network_error_not_a_wait() {
    // A port nobody listens on: refused at once.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let conf = config_for(&format!("http://127.0.0.1:{port}")).await;
    let lookups = AwsLookups::new(Arc::new(
        MemberAccounts::new(&conf, None).with_own_account(OWN),
    ));
    let started = Instant::now();
    let error = lookups
        .export_task(&Place::new(OWN, REGION), "task")
        .await
        .unwrap_err();
    assert_eq!(error.cause, Cause::Network, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_role_is_assumed_once_per_account_whatever_the_region() {
    let (server, conf) = emulator().await;
    let member = as_account(&conf, MEMBER, "setup").await;
    let export = export(&member, &server.s3_client(&member)).await;
    let enricher = enricher(
        MemberAccounts::new(&conf, Some(ROLE.into())),
        Duration::from_secs(20),
    );
    server.start_recording().await;
    for region in [REGION, REGION, "us-west-2"] {
        let mut request = request(MEMBER, &export);
        request.place = Place::new(MEMBER, region);
        let found = enricher.enrich(&request).await;
        assert!(found.errors.is_empty(), "{region}: {:?}", found.errors);
    }
    let recorded = server.recorded().await;
    let count = |action: &str| {
        recorded
            .iter()
            .filter(|r| r.body_text().contains(&format!("Action={action}&")))
            .count()
    };
    assert_eq!(
        count("AssumeRole"),
        1,
        "the SDK's identity cache keeps the credentials"
    );
    assert_eq!(
        count("GetCallerIdentity"),
        1,
        "the own account is learned once"
    );
    assert_eq!(count("DescribeExportTasks"), 3);
}
