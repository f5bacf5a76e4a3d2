//! [`ExportTasks`] over the AWS SDK, in the account of the event through the
//! member role ([`MemberAccounts`]).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_rds::operation::cancel_export_task::CancelExportTaskError;

use super::{CancelAnswer, ExportTasks};
use crate::enrich::{CallError, MemberAccounts, Place};

/// `rds:CancelExportTask` and `rds:DescribeExportTasks` of the deployment.
#[derive(Clone)]
pub struct AwsExportTasks {
    accounts: Arc<MemberAccounts>,
}

impl AwsExportTasks {
    pub fn new(accounts: Arc<MemberAccounts>) -> AwsExportTasks {
        AwsExportTasks { accounts }
    }
}

#[async_trait]
impl ExportTasks for AwsExportTasks {
    async fn cancel(&self, at: &Place, task: &str) -> Result<CancelAnswer, CallError> {
        let clients = self.accounts.clients(at).await?;
        match clients
            .rds
            .cancel_export_task()
            .export_task_identifier(task)
            .send()
            .await
        {
            Ok(output) => Ok(CancelAnswer::Accepted {
                status: output.status().unwrap_or("canceling").to_ascii_lowercase(),
            }),
            Err(e) => match e.as_service_error() {
                Some(CancelExportTaskError::InvalidExportTaskStateFault(_)) => {
                    Ok(CancelAnswer::WrongState)
                }
                Some(CancelExportTaskError::ExportTaskNotFoundFault(_)) => {
                    Ok(CancelAnswer::NotFound)
                }
                _ => Err(crate::enrich::call_error(e)),
            },
        }
    }

    async fn status(&self, at: &Place, task: &str) -> Result<Option<String>, CallError> {
        use crate::enrich::Lookups;
        let lookups = crate::enrich::AwsLookups::new(Arc::clone(&self.accounts));
        Ok(lookups
            .export_task(at, task)
            .await?
            .and_then(|t| t.status)
            .map(|s| s.to_ascii_lowercase()))
    }
}
