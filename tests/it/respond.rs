//! Containment's SDK clients against the emulator (`moto_server`): the cancel
//! call itself, report mode leaving the task alone, and the circuit breaker shared
//! through the DynamoDB table by concurrent instances.
//!
//! moto marks a new export task `complete` at once, while a real one starts in
//! `starting`: these tests give the responder facts that say the task is
//! `starting` (as enrichment would read a real task) and use the emulator for the
//! calls. The status conditions themselves are tested with fakes in
//! `src/respond/tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use trailwatch::config::{AllowList, ResponseMode, ResponseSettings};
use trailwatch::dedup::{DedupStore, DynamoStore};
use trailwatch::enrich::{MemberAccounts, Place};
use trailwatch::respond::{
    AwsExportTasks, CancelBreaker, DynamoBreaker, ExportTasks, MemoryBreaker, Outcome, Responder,
    Responding, BREAKER_KIND,
};
use trailwatch::rule::{Containment, Facts, RuleSet};

use crate::support::moto::{MotoServer, REGION};
use crate::support::rds::{export, start_export, task_status};
use crate::support::stack::Stack;

const OWN: &str = "123456789012";

fn containment() -> Containment {
    RuleSet::embedded()
        .get("AWS.RDS.SnapshotExport")
        .unwrap()
        .containment
        .clone()
        .unwrap()
}

/// The facts of an export to an unconfirmed, untrusted bucket whose task is
/// `starting` (as a real task would be when the alert is raised).
fn facts(task: &str, bucket: &str) -> Facts {
    let fields = json!({"exportTaskIdentifier": task, "s3Bucket": bucket});
    Facts::new(fields.as_object().unwrap(), OWN, REGION)
        .with_principal("arn:aws:sts::123456789012:assumed-role/Admin/eve", None)
        .with_enrichment(json!({
            "exportTask": {"id": task, "status": "starting"},
            "bucket": {"name": bucket, "owner": "unconfirmed", "trusted": false},
        }))
}

fn responder(
    mode: ResponseMode,
    conf: &aws_config::SdkConfig,
    breaker: Arc<dyn CancelBreaker>,
) -> Responder {
    let accounts = Arc::new(MemberAccounts::new(conf, None));
    Responder::new(
        ResponseSettings {
            mode,
            max_per_hour: 3,
        },
        Arc::new(AwsExportTasks::new(accounts)) as Arc<dyn ExportTasks>,
        breaker,
        AllowList::default(),
    )
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(20)
}

/// What `responder` decides (and does) for the export of `task` to `bucket`.
async fn respond(responder: &Responder, task: &str, bucket: &str, place: &Place) -> Responding {
    responder
        .respond(&containment(), &facts(task, bucket), place, deadline())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mode_cancels_the_task_and_report_mode_leaves_it_alone() {
    let server = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .expect("moto_server starts");
    let conf = server.sdk_config().await;
    let export = export(&conf, &server.s3_client(&conf)).await;
    let place = Place::new(OWN, REGION);

    let report = responder(ResponseMode::Report, &conf, Arc::new(MemoryBreaker::new()));
    let said = respond(&report, &export.task, &export.bucket, &place)
        .await
        .response;
    assert_eq!(said.outcome, Outcome::WouldCancel);
    assert_eq!(
        task_status(&conf, &export.task).await,
        "complete",
        "report calls nothing"
    );

    let cancel = responder(ResponseMode::Cancel, &conf, Arc::new(MemoryBreaker::new()));
    let done = respond(&cancel, &export.task, &export.bucket, &place).await;
    assert!(done.in_flight.is_none());
    assert_eq!(
        done.response.outcome,
        Outcome::Canceled,
        "{:?}",
        done.response
    );
    assert_eq!(task_status(&conf, &export.task).await, "canceled");
    let doc = serde_json::to_value(&done.response).unwrap();
    assert_eq!(doc["outcome"], "canceled");
    assert_eq!(doc["target"], export.task.as_str());

    // A retried invocation: still success, nothing else happens.
    let again = respond(&cancel, &export.task, &export.bucket, &place)
        .await
        .response;
    assert_eq!(again.outcome, Outcome::Canceled);

    // A task that does not exist: the cancel fails, and says so.
    let missing = respond(&cancel, "no-such-task", &export.bucket, &place)
        .await
        .response;
    assert_eq!(missing.outcome, Outcome::Failed);
    assert!(missing
        .cause
        .unwrap()
        .contains("no export task no-such-task"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_instances_past_the_breaker_cancel_exactly_the_limit() {
    let stack = Stack::start().await;
    let export = export(&stack.conf, &stack.s3).await;
    let mut tasks = vec![export.task.clone()];
    for _ in 0..3 {
        tasks.push(start_export(&stack.conf, &export.snapshot_arn, &export.bucket).await);
    }
    // Four instances, each with its own clients and breaker on the shared table.
    let instances: Vec<Responder> = (0..4)
        .map(|_| {
            let breaker = DynamoBreaker::new(
                aws_sdk_dynamodb::Client::new(&stack.conf),
                stack.table.clone(),
            );
            responder(ResponseMode::Cancel, &stack.conf, Arc::new(breaker))
        })
        .collect();
    let place = Place::new(OWN, REGION);
    let runs = instances.iter().zip(&tasks).map(|(responder, task)| {
        let (place, export) = (place.clone(), &export);
        async move {
            respond(responder, task, &export.bucket, &place)
                .await
                .response
        }
    });
    let responses = futures::future::join_all(runs).await;

    let canceled: Vec<&str> = responses
        .iter()
        .filter(|r| r.outcome == Outcome::Canceled)
        .map(|r| r.target.as_str())
        .collect();
    assert_eq!(canceled.len(), 3, "{responses:?}");
    let refused: Vec<_> = responses
        .iter()
        .filter(|r| r.outcome == Outcome::WouldCancel)
        .collect();
    assert_eq!(refused.len(), 1, "{responses:?}");
    assert!(refused[0].breaker_open);
    let mut statuses = Vec::new();
    for task in &tasks {
        statuses.push(task_status(&stack.conf, task).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "canceled").count(),
        3,
        "exactly the limit cancelled in the emulator: {statuses:?}"
    );
    assert_eq!(
        task_status(&stack.conf, &refused[0].target).await,
        "complete",
        "the refused task was not touched"
    );

    // The shared item: one per account, the admitted tasks, its own kind.
    let item = stack
        .dynamodb
        .get_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(DynamoBreaker::pk(OWN)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the breaker item");
    assert_eq!(item["kind"], AttributeValue::S(BREAKER_KIND.into()));
    let AttributeValue::M(cancels) = &item["cancels"] else {
        panic!("cancels is a map: {item:?}");
    };
    assert_eq!(cancels.len(), 3);

    // A retry of an admitted task is admitted without counting; another account
    // has its own budget.
    let retry = respond(&instances[0], canceled[0], &export.bucket, &place)
        .await
        .response;
    assert_eq!(retry.outcome, Outcome::Canceled);
    let breaker = DynamoBreaker::new(
        aws_sdk_dynamodb::Client::new(&stack.conf),
        stack.table.clone(),
    );
    let other = breaker
        .admit("111122223333", "t", trailwatch::time::now_ms(), 3)
        .await
        .unwrap();
    assert_eq!(
        other,
        trailwatch::respond::Admission::Admitted { repeat: false }
    );

    // The dedup store shares the table and never mistakes these items for its own.
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&stack.conf),
        stack.table.clone(),
    );
    assert!(store
        .take_rollups(i64::MAX / 2, true)
        .await
        .unwrap()
        .is_empty());
}

/// The member role as `deploy/member.yaml` declares it: the lookups only, and the
/// cancel only under `ResponseMode=cancel`, trusting only the function's role, in
/// one region per account. (cfn-lint and `sam validate --lint` check the
/// template's syntax.)
#[test]
fn the_member_role_grants_reads_and_the_cancel_only_when_enabled() {
    use serde_yaml_ng::Value;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/member.yaml");
    let template: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let resources = &template["Resources"];
    fn actions(statements: &Value) -> Vec<String> {
        statements
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["Effect"], Value::from("Allow"));
                s["Action"].as_str().unwrap().to_owned()
            })
            .collect()
    }
    let role = &resources["MemberRole"];
    assert_eq!(role["Condition"], Value::from("CreateMemberRole"));
    let role = &role["Properties"];
    let mut read: Vec<String> = role["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|p| actions(&p["PolicyDocument"]["Statement"]))
        .collect();
    read.sort();
    assert_eq!(
        read,
        [
            "rds:DescribeDBClusterSnapshots",
            "rds:DescribeDBSnapshots",
            "rds:DescribeExportTasks",
            "s3:ListBucket"
        ]
    );
    let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Action"], Value::from("sts:AssumeRole"));
    assert!(
        !trust["Condition"]["ArnEquals"]["aws:PrincipalArn"].is_null(),
        "only the function's role may assume it"
    );
    let cancel = &resources["CancelExportTaskPolicy"];
    assert_eq!(cancel["Condition"], Value::from("EnableCancel"));
    assert_eq!(
        actions(&cancel["Properties"]["PolicyDocument"]["Statement"]),
        ["rds:CancelExportTask"]
    );
    // Forwarding, the role and its cancel policy: nothing else.
    let mut names: Vec<&str> = resources
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(Value::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "CancelExportTaskPolicy",
            "ForwardRole",
            "ForwardRule",
            "MemberRole"
        ]
    );
    // The role exists once per account (IAM is global), and only when asked for;
    // the cancel needs both the role and ResponseMode=cancel.
    let text = std::fs::read_to_string(path).unwrap();
    for needle in [
        "CreateMemberRole: !And",
        "!Equals [!Ref AWS::Region, !Ref MemberRoleRegion]",
        "!Not [!Equals [!Ref TrailwatchRoleArn, \"\"]]",
        "- !Condition CreateMemberRole\n    - !Equals [!Ref ResponseMode, cancel]",
    ] {
        assert!(text.contains(needle), "deploy/member.yaml lacks {needle:?}");
    }
}
