//! What enrichment found, as the alert document shows it.
//!
//! A value that a lookup would have given but did not (its call failed) reads
//! `unknown` ([`Known::Unknown`]); a value the lookup answered as absent is `null`.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::{CallError, Enrichment, ExportTaskFacts, HeadBucketAnswer, SnapshotFacts, SnapshotRef};
use crate::aws_error::Cause;

/// The status of a task or snapshot the lookup did not find.
pub const NOT_FOUND: &str = "not-found";

/// A looked-up value, or `unknown` when its lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known<T> {
    Value(T),
    Unknown,
}

impl<T> Known<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Known::Value(v) => Some(v),
            Known::Unknown => None,
        }
    }
}

impl<T> Known<Option<T>> {
    /// The value when it was looked up and present.
    pub fn present(&self) -> Option<&T> {
        self.value().and_then(Option::as_ref)
    }
}

impl Known<String> {
    pub fn text(&self) -> &str {
        self.value().map_or(crate::UNKNOWN, String::as_str)
    }
}

impl<T: Serialize> Serialize for Known<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Known::Value(v) => v.serialize(serializer),
            Known::Unknown => serializer.serialize_str(crate::UNKNOWN),
        }
    }
}

/// The export task (`rds:DescribeExportTasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportTaskInfo {
    pub id: String,
    /// `starting`, `in_progress`, `complete`, `failed`, `canceling`, `canceled`
    /// (RDS's statuses, lower-cased as its filters spell them), `not-found`, or
    /// `unknown`.
    pub status: Known<String>,
    pub percent_progress: Known<Option<i32>>,
    #[serde(rename = "totalExtractedDataInGB")]
    pub total_extracted_data_in_gb: Known<Option<i32>>,
    pub failure_cause: Known<Option<String>>,
}

impl ExportTaskInfo {
    pub fn found(id: &str, facts: ExportTaskFacts) -> ExportTaskInfo {
        ExportTaskInfo {
            id: id.to_owned(),
            status: Known::Value(
                facts
                    .status
                    .map_or_else(|| crate::UNKNOWN.to_owned(), |s| s.to_ascii_lowercase()),
            ),
            percent_progress: Known::Value(facts.percent_progress),
            total_extracted_data_in_gb: Known::Value(facts.total_extracted_data_in_gb),
            failure_cause: Known::Value(facts.failure_cause),
        }
    }

    pub fn not_found(id: &str) -> ExportTaskInfo {
        ExportTaskInfo {
            id: id.to_owned(),
            status: Known::Value(NOT_FOUND.to_owned()),
            percent_progress: Known::Value(None),
            total_extracted_data_in_gb: Known::Value(None),
            failure_cause: Known::Value(None),
        }
    }

    pub fn unknown(id: &str) -> ExportTaskInfo {
        ExportTaskInfo {
            id: id.to_owned(),
            status: Known::Unknown,
            percent_progress: Known::Unknown,
            total_extracted_data_in_gb: Known::Unknown,
            failure_cause: Known::Unknown,
        }
    }
}

/// The source snapshot (`rds:DescribeDBSnapshots` / `DescribeDBClusterSnapshots`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    pub identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// `db-snapshot` or `cluster-snapshot`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `available`, ... as RDS says, `not-found`, or `unknown`.
    pub status: Known<String>,
    pub engine: Known<Option<String>>,
    pub engine_version: Known<Option<String>>,
    /// The DB instance (or, for a cluster snapshot, DB cluster) identifier.
    pub database: Known<Option<String>>,
    #[serde(rename = "allocatedStorageGB")]
    pub allocated_storage_gb: Known<Option<i32>>,
    pub encrypted: Known<Option<bool>>,
    pub snapshot_time: Known<Option<String>>,
    pub snapshot_type: Known<Option<String>>,
}

impl SourceInfo {
    fn base(snapshot: &SnapshotRef, status: Known<String>) -> SourceInfo {
        SourceInfo {
            identifier: snapshot.id.clone(),
            arn: snapshot.arn.clone(),
            kind: if snapshot.cluster {
                "cluster-snapshot"
            } else {
                "db-snapshot"
            },
            status,
            engine: Known::Unknown,
            engine_version: Known::Unknown,
            database: Known::Unknown,
            allocated_storage_gb: Known::Unknown,
            encrypted: Known::Unknown,
            snapshot_time: Known::Unknown,
            snapshot_type: Known::Unknown,
        }
    }

    pub fn found(snapshot: &SnapshotRef, facts: SnapshotFacts) -> SourceInfo {
        SourceInfo {
            engine: Known::Value(facts.engine),
            engine_version: Known::Value(facts.engine_version),
            database: Known::Value(facts.database),
            allocated_storage_gb: Known::Value(facts.allocated_storage_gb),
            encrypted: Known::Value(facts.encrypted),
            snapshot_time: Known::Value(facts.snapshot_time),
            snapshot_type: Known::Value(facts.snapshot_type),
            ..SourceInfo::base(
                snapshot,
                Known::Value(facts.status.unwrap_or_else(|| crate::UNKNOWN.into())),
            )
        }
    }

    pub fn not_found(snapshot: &SnapshotRef) -> SourceInfo {
        SourceInfo {
            engine: Known::Value(None),
            engine_version: Known::Value(None),
            database: Known::Value(None),
            allocated_storage_gb: Known::Value(None),
            encrypted: Known::Value(None),
            snapshot_time: Known::Value(None),
            snapshot_type: Known::Value(None),
            ..SourceInfo::base(snapshot, Known::Value(NOT_FOUND.to_owned()))
        }
    }

    pub fn unknown(snapshot: &SnapshotRef) -> SourceInfo {
        SourceInfo::base(snapshot, Known::Unknown)
    }
}

/// Whether HeadBucket confirmed the expected owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketOwner {
    /// 200: the bucket exists and the exporting account owns it.
    Confirmed,
    /// Any other answer (403, 404, 301...): not confirmed; `status` says which.
    Unconfirmed,
    /// No answer (throttled, timed out, the role could not be assumed).
    Unknown,
}

impl BucketOwner {
    pub fn label(self) -> &'static str {
        match self {
            BucketOwner::Confirmed => "confirmed",
            BucketOwner::Unconfirmed => "unconfirmed",
            BucketOwner::Unknown => crate::UNKNOWN,
        }
    }
}

/// The destination bucket (`s3:HeadBucket` with `ExpectedBucketOwner`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketInfo {
    pub name: String,
    pub owner: BucketOwner,
    /// The account HeadBucket was asked to confirm: the exporting account.
    pub expected_owner: String,
    /// HeadBucket's HTTP status; `null` without an answer.
    pub status: Option<u16>,
    /// `x-amz-bucket-region`, when S3 sent it.
    pub region: Option<String>,
    /// In `TRAILWATCH_TRUSTED_BUCKETS`, or owned by an account of
    /// `TRAILWATCH_TRUSTED_ACCOUNTS`.
    pub trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_by: Option<String>,
    /// What the answer means, in words.
    pub detail: String,
}

impl BucketInfo {
    pub fn new(name: &str, expected_owner: &str) -> BucketInfo {
        BucketInfo {
            name: name.to_owned(),
            owner: BucketOwner::Unknown,
            expected_owner: expected_owner.to_owned(),
            status: None,
            region: None,
            trusted: false,
            trusted_by: None,
            detail: "not looked up".into(),
        }
    }

    pub fn answered(&mut self, answer: &HeadBucketAnswer) {
        self.status = Some(answer.status);
        self.region = answer.region.clone();
        self.owner = if answer.status == 200 {
            BucketOwner::Confirmed
        } else {
            BucketOwner::Unconfirmed
        };
        let region = answer.region.as_deref().unwrap_or(crate::UNKNOWN);
        self.detail = match answer.status {
            200 => format!(
                "HeadBucket 200: the bucket exists and {} owns it",
                self.expected_owner
            ),
            403 => "HeadBucket 403: another account owns the bucket, or it is not visible to \
                    this role; S3 does not say which"
                .into(),
            404 => "HeadBucket 404: no such bucket".into(),
            301 => format!("HeadBucket 301: the bucket is in another region ({region})"),
            other => format!("HeadBucket {other}: the owner was not confirmed"),
        };
    }

    pub fn failed(&mut self, error: &CallError) {
        self.owner = BucketOwner::Unknown;
        self.detail = format!(
            "no answer ({}: {})",
            error.call(super::HEAD_BUCKET),
            error.cause
        );
    }

    pub fn trust(&mut self, by: String) {
        self.trusted = true;
        self.trusted_by = Some(by);
    }
}

/// A lookup that failed: the call, the cause, and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrichmentError {
    /// `rds:DescribeExportTasks`, `s3:HeadBucket`, `sts:AssumeRole`...
    pub call: String,
    pub cause: Cause,
    pub message: String,
}

impl EnrichmentError {
    pub fn of(call: &str, error: &CallError) -> EnrichmentError {
        EnrichmentError {
            call: error.call(call).to_owned(),
            cause: error.cause,
            message: crate::text::truncate_marked(&error.message, 512).into_owned(),
        }
    }
}

/// The `enrichment` member: the lookups made, each under its name.
pub(super) fn found_value(enrichment: &Enrichment) -> Value {
    let mut map = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            map.insert(name.to_owned(), value);
        }
    };
    put("exportTask", enrichment.export_task.as_ref().map(to_value));
    put("source", enrichment.source.as_ref().map(to_value));
    put("bucket", enrichment.bucket.as_ref().map(to_value));
    Value::Object(map)
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("enrichment values serialize")
}

/// Two members, so that the alert document carries it flattened:
/// `enrichment` and, when a call failed, `enrichmentErrors`.
impl Serialize for Enrichment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let members = if self.errors.is_empty() { 1 } else { 2 };
        let mut map = serializer.serialize_map(Some(members))?;
        map.serialize_entry("enrichment", &found_value(self))?;
        if !self.errors.is_empty() {
            map.serialize_entry("enrichmentErrors", &self.errors)?;
        }
        map.end()
    }
}
