//! [`Lookups`] over the AWS SDK, in the account of the event ([`MemberAccounts`]).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{
    CallError, ExportTaskFacts, HeadBucketAnswer, Lookups, MemberAccounts, Place, SnapshotFacts,
    SnapshotRef, ASSUME_ROLE,
};
use crate::aws_error::{classify, Cause};

/// HeadBucket statuses that answer the ownership question (the others are errors:
/// throttling, 5xx).
const ANSWERS: [u16; 5] = [200, 301, 400, 403, 404];

/// The lookups of the function's deployment.
#[derive(Clone)]
pub struct AwsLookups {
    accounts: Arc<MemberAccounts>,
}

impl AwsLookups {
    pub fn new(accounts: Arc<MemberAccounts>) -> AwsLookups {
        AwsLookups { accounts }
    }
}

/// A failed SDK call, classified. When the credentials of the member role could not
/// be had, the failure is `sts:AssumeRole`'s, classified from its own error.
pub(crate) fn call_error<E>(error: SdkError<E, Response>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(assume) = current.downcast_ref::<SdkError<AssumeRoleError, Response>>() {
            return CallError {
                cause: classify(assume),
                message: aws_sdk_sts::error::DisplayErrorContext(assume).to_string(),
                via: Some(ASSUME_ROLE),
            };
        }
        source = current.source();
    }
    CallError::new(
        classify(&error),
        aws_smithy_types::error::display::DisplayErrorContext(&error).to_string(),
    )
}

/// The SDK's not-found answer for a task or snapshot.
fn not_found<E: ProvideErrorMetadata>(error: &SdkError<E, Response>) -> bool {
    match error {
        SdkError::ServiceError(service) => {
            matches!(
                service.err().code(),
                Some(
                    "ExportTaskNotFound"
                        | "ExportTaskNotFoundFault"
                        | "DBSnapshotNotFound"
                        | "DBSnapshotNotFoundFault"
                        | "DBClusterSnapshotNotFoundFault"
                )
            ) || service.raw().status().as_u16() == 404
        }
        _ => false,
    }
}

fn time_text(time: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    time.and_then(|t| t.fmt(Format::DateTime).ok())
}

#[async_trait]
impl Lookups for AwsLookups {
    async fn export_task(
        &self,
        at: &Place,
        task_id: &str,
    ) -> Result<Option<ExportTaskFacts>, CallError> {
        let clients = self.accounts.clients(at).await?;
        let output = match clients
            .rds
            .describe_export_tasks()
            .export_task_identifier(task_id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(call_error(e)),
        };
        Ok(output
            .export_tasks()
            .iter()
            .find(|t| t.export_task_identifier() == Some(task_id))
            .map(|t| ExportTaskFacts {
                status: t.status().map(str::to_owned),
                percent_progress: t.percent_progress(),
                total_extracted_data_in_gb: t.total_extracted_data_in_gb(),
                failure_cause: t.failure_cause().map(str::to_owned),
            }))
    }

    async fn snapshot(
        &self,
        at: &Place,
        snapshot: &SnapshotRef,
    ) -> Result<Option<SnapshotFacts>, CallError> {
        let clients = self.accounts.clients(at).await?;
        if snapshot.cluster {
            let output = match clients
                .rds
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(&snapshot.id)
                .send()
                .await
            {
                Ok(output) => output,
                Err(e) if not_found(&e) => return Ok(None),
                Err(e) => return Err(call_error(e)),
            };
            return Ok(output
                .db_cluster_snapshots()
                .first()
                .map(|s| SnapshotFacts {
                    engine: s.engine().map(str::to_owned),
                    engine_version: s.engine_version().map(str::to_owned),
                    database: s.db_cluster_identifier().map(str::to_owned),
                    allocated_storage_gb: s.allocated_storage(),
                    encrypted: s.storage_encrypted(),
                    snapshot_time: time_text(s.snapshot_create_time()),
                    snapshot_type: s.snapshot_type().map(str::to_owned),
                    status: s.status().map(str::to_owned),
                }));
        }
        let output = match clients
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(&snapshot.id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(call_error(e)),
        };
        Ok(output.db_snapshots().first().map(|s| SnapshotFacts {
            engine: s.engine().map(str::to_owned),
            engine_version: s.engine_version().map(str::to_owned),
            database: s.db_instance_identifier().map(str::to_owned),
            allocated_storage_gb: s.allocated_storage(),
            encrypted: s.encrypted(),
            snapshot_time: time_text(s.snapshot_create_time()),
            snapshot_type: s.snapshot_type().map(str::to_owned),
            status: s.status().map(str::to_owned),
        }))
    }

    async fn head_bucket(
        &self,
        at: &Place,
        bucket: &str,
        expected_owner: &str,
    ) -> Result<HeadBucketAnswer, CallError> {
        let clients = self.accounts.clients(at).await?;
        match clients
            .s3
            .head_bucket()
            .bucket(bucket)
            .expected_bucket_owner(expected_owner)
            .send()
            .await
        {
            Ok(output) => Ok(HeadBucketAnswer {
                status: 200,
                region: output.bucket_region().map(str::to_owned),
            }),
            Err(SdkError::ServiceError(service))
                if ANSWERS.contains(&service.raw().status().as_u16())
                    && Cause::from_code(service.err().code(), 400) != Cause::Throttled =>
            {
                let raw = service.raw();
                Ok(HeadBucketAnswer {
                    status: raw.status().as_u16(),
                    region: raw.headers().get("x-amz-bucket-region").map(str::to_owned),
                })
            }
            Err(e) => Err(call_error(e)),
        }
    }
}
