//! [`Lookups`] in memory, for tests: each call answers what it was told, after an
//! optional delay, or never; every call is recorded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    CallError, ExportTaskFacts, HeadBucketAnswer, Lookups, Place, SnapshotFacts, SnapshotRef,
};

/// What a fake call does.
#[derive(Debug, Clone)]
pub enum Behaviour<T> {
    Answer(T),
    Fail(CallError),
    /// Answers after a delay.
    Slow(Duration, T),
    /// Never answers.
    Hang,
}

impl<T: Clone> Behaviour<T> {
    async fn run(&self) -> Result<T, CallError> {
        match self {
            Behaviour::Answer(v) => Ok(v.clone()),
            Behaviour::Fail(e) => Err(e.clone()),
            Behaviour::Slow(delay, v) => {
                tokio::time::sleep(*delay).await;
                Ok(v.clone())
            }
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

/// One recorded call: (call, place, argument).
pub type Call = (&'static str, Place, String);

/// The fake. Unset calls answer "not found" (tasks, snapshots) or 404 (buckets).
#[derive(Default)]
pub struct FakeLookups {
    tasks: Mutex<HashMap<String, Behaviour<Option<ExportTaskFacts>>>>,
    snapshots: Mutex<HashMap<String, Behaviour<Option<SnapshotFacts>>>>,
    /// By (bucket, expected owner).
    buckets: Mutex<HashMap<(String, String), Behaviour<HeadBucketAnswer>>>,
    calls: Mutex<Vec<Call>>,
}

impl FakeLookups {
    pub fn new() -> FakeLookups {
        FakeLookups::default()
    }

    pub fn task(self, id: &str, behaviour: Behaviour<Option<ExportTaskFacts>>) -> Self {
        self.tasks.lock().unwrap().insert(id.into(), behaviour);
        self
    }

    pub fn snapshot(self, id: &str, behaviour: Behaviour<Option<SnapshotFacts>>) -> Self {
        self.snapshots.lock().unwrap().insert(id.into(), behaviour);
        self
    }

    pub fn bucket(self, name: &str, owner: &str, behaviour: Behaviour<HeadBucketAnswer>) -> Self {
        self.buckets
            .lock()
            .unwrap()
            .insert((name.into(), owner.into()), behaviour);
        self
    }

    /// A task in a status (`STARTING`...), as DescribeExportTasks answers it.
    pub fn task_in(self, id: &str, status: &str, percent: i32, extracted_gb: i32) -> Self {
        self.task(
            id,
            Behaviour::Answer(Some(ExportTaskFacts {
                status: Some(status.into()),
                percent_progress: Some(percent),
                total_extracted_data_in_gb: Some(extracted_gb),
                failure_cause: None,
            })),
        )
    }

    /// HeadBucket answering `status` for this bucket and expected owner.
    pub fn bucket_status(self, name: &str, owner: &str, status: u16) -> Self {
        self.bucket(
            name,
            owner,
            Behaviour::Answer(HeadBucketAnswer {
                status,
                region: Some("us-east-1".into()),
            }),
        )
    }

    /// Every call made so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: &'static str, at: &Place, argument: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((call, at.clone(), argument.to_owned()));
    }
}

#[async_trait]
impl Lookups for FakeLookups {
    async fn export_task(
        &self,
        at: &Place,
        task_id: &str,
    ) -> Result<Option<ExportTaskFacts>, CallError> {
        self.record(super::DESCRIBE_EXPORT_TASKS, at, task_id);
        let behaviour = self.tasks.lock().unwrap().get(task_id).cloned();
        match behaviour {
            Some(b) => b.run().await,
            None => Ok(None),
        }
    }

    async fn snapshot(
        &self,
        at: &Place,
        snapshot: &SnapshotRef,
    ) -> Result<Option<SnapshotFacts>, CallError> {
        self.record(snapshot.call(), at, &snapshot.id);
        let behaviour = self.snapshots.lock().unwrap().get(&snapshot.id).cloned();
        match behaviour {
            Some(b) => b.run().await,
            None => Ok(None),
        }
    }

    async fn head_bucket(
        &self,
        at: &Place,
        bucket: &str,
        expected_owner: &str,
    ) -> Result<HeadBucketAnswer, CallError> {
        self.record(
            super::HEAD_BUCKET,
            at,
            &format!("{bucket} {expected_owner}"),
        );
        let behaviour = self
            .buckets
            .lock()
            .unwrap()
            .get(&(bucket.to_owned(), expected_owner.to_owned()))
            .cloned();
        match behaviour {
            Some(b) => b.run().await,
            None => Ok(HeadBucketAnswer {
                status: 404,
                region: None,
            }),
        }
    }
}
