//! [`ExportTasks`] in memory, for tests: tasks in a status, cancels recorded,
//! failures and delays on demand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{CancelAnswer, ExportTasks};
use crate::enrich::{CallError, Place};

/// Export tasks by identifier, with RDS's state rules: a `starting` or
/// `in_progress` task becomes `canceling`; any other refuses with the wrong state.
#[derive(Default)]
pub struct FakeExportTasks {
    statuses: Mutex<HashMap<String, String>>,
    fail_with: Mutex<Option<CallError>>,
    delay: Mutex<Option<Duration>>,
    cancels: Mutex<Vec<(Place, String)>>,
}

impl FakeExportTasks {
    pub fn new() -> FakeExportTasks {
        FakeExportTasks::default()
    }

    /// A task in `status` (lower case, as the alert shows it).
    pub fn with_task(self, task: &str, status: &str) -> Self {
        self.statuses
            .lock()
            .unwrap()
            .insert(task.into(), status.into());
        self
    }

    /// Every cancel call fails with `error`.
    pub fn failing(self, error: CallError) -> Self {
        *self.fail_with.lock().unwrap() = Some(error);
        self
    }

    /// Every cancel call answers after `delay`.
    pub fn slow(self, delay: Duration) -> Self {
        *self.delay.lock().unwrap() = Some(delay);
        self
    }

    /// Every cancel call made, in order.
    pub fn cancels(&self) -> Vec<(Place, String)> {
        self.cancels.lock().unwrap().clone()
    }

    pub fn status_of(&self, task: &str) -> Option<String> {
        self.statuses.lock().unwrap().get(task).cloned()
    }
}

#[async_trait]
impl ExportTasks for FakeExportTasks {
    async fn cancel(&self, at: &Place, task: &str) -> Result<CancelAnswer, CallError> {
        self.cancels
            .lock()
            .unwrap()
            .push((at.clone(), task.to_owned()));
        let delay = *self.delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(error) = self.fail_with.lock().unwrap().clone() {
            return Err(error);
        }
        let mut statuses = self.statuses.lock().unwrap();
        match statuses.get_mut(task) {
            None => Ok(CancelAnswer::NotFound),
            Some(status) if status == "starting" || status == "in_progress" => {
                *status = "canceling".into();
                Ok(CancelAnswer::Accepted {
                    status: status.clone(),
                })
            }
            Some(_) => Ok(CancelAnswer::WrongState),
        }
    }

    async fn status(&self, _at: &Place, task: &str) -> Result<Option<String>, CallError> {
        Ok(self.status_of(task))
    }
}
