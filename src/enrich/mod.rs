//! Enrichment at alert time: what triage asks first, answered in the alert.
//!
//! For a rule that declares it (`Enrichment:`, see [`crate::rule::EnrichmentSpec`]),
//! three lookups run concurrently in the account and region of the event, under one
//! shared time budget (`TRAILWATCH_ENRICH_TIMEOUT_MS`, 3 s by default):
//!
//! - the export task, `rds:DescribeExportTasks`: status, progress, data extracted,
//!   failure cause;
//! - the source snapshot, `rds:DescribeDBSnapshots` or `DescribeDBClusterSnapshots`
//!   (told by the ARN): engine, instance or cluster, allocated storage, encryption,
//!   snapshot time and type;
//! - the destination bucket, `s3:HeadBucket` with `ExpectedBucketOwner` set to the
//!   exporting account: `confirmed` (200) or `unconfirmed` with the status (a 403
//!   cannot tell another owner from a bucket this role may not see), the bucket's
//!   region, and `trusted` (`TRAILWATCH_TRUSTED_BUCKETS`, or owned by an account of
//!   `TRAILWATCH_TRUSTED_ACCOUNTS`, each probed the same way).
//!
//! A call that is throttled, denied or does not answer in time leaves its fields
//! `unknown` and is listed in `enrichmentErrors` with its cause; [`Enricher::enrich`]
//! returns within the budget whatever AWS does. AWS sits behind [`Lookups`]
//! ([`AwsLookups`] over the SDK, [`fake::FakeLookups`] in memory); the clients of
//! another account come from assuming its member role ([`MemberAccounts`]).
//!
//! The result, [`Enrichment`], serializes as the alert document's members
//! `enrichment` and `enrichmentErrors`, renders the e-mail's rows
//! ([`Enrichment::email_rows`]) and Security Hub's `ProductFields`
//! ([`Enrichment::product_fields`]), and becomes part of the [`Facts`] that the
//! rule's enrichment escalations and containment are evaluated over.

mod accounts;
mod aws;
pub mod fake;
mod render;
mod types;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};

pub use accounts::{partition_of, MemberAccounts};
pub(crate) use aws::call_error;
pub use aws::AwsLookups;
pub use types::{
    BucketInfo, BucketOwner, EnrichmentError, ExportTaskInfo, Known, SourceInfo, NOT_FOUND,
};

use crate::aws_error::Cause;
use crate::config::EnrichSettings;
use crate::rule::{present_text, EnrichmentSpec, Facts, SourceKind};

/// The calls, as `enrichmentErrors` names them.
pub const DESCRIBE_EXPORT_TASKS: &str = "rds:DescribeExportTasks";
pub const DESCRIBE_DB_SNAPSHOTS: &str = "rds:DescribeDBSnapshots";
pub const DESCRIBE_DB_CLUSTER_SNAPSHOTS: &str = "rds:DescribeDBClusterSnapshots";
pub const HEAD_BUCKET: &str = "s3:HeadBucket";
pub const ASSUME_ROLE: &str = "sts:AssumeRole";
pub const GET_CALLER_IDENTITY: &str = "sts:GetCallerIdentity";

/// Where a call acts: the account and region of the event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    pub account: String,
    pub region: String,
}

impl Place {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Place {
        Place {
            account: account.into(),
            region: region.into(),
        }
    }

    /// A twelve-digit account and a region name: something a client can act in.
    pub fn is_valid(&self) -> bool {
        self.account.len() == 12
            && self.account.bytes().all(|b| b.is_ascii_digit())
            && !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// A call to AWS that failed, classified. `via` names the call that really failed
/// when it was not the one asked for (the member role could not be assumed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{cause}: {message}")]
pub struct CallError {
    pub cause: Cause,
    pub message: String,
    pub via: Option<&'static str>,
}

impl CallError {
    pub fn new(cause: Cause, message: impl Into<String>) -> CallError {
        CallError {
            cause,
            message: message.into(),
            via: None,
        }
    }

    /// The call that failed: `via`, else `call`.
    pub fn call<'a>(&self, call: &'a str) -> &'a str {
        self.via.unwrap_or(call)
    }
}

/// A snapshot to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The identifier the Describe call takes (for an ARN, its resource name:
    /// `rds:db-2024-03-15-10-00` for an automated snapshot).
    pub id: String,
    pub cluster: bool,
    /// The ARN when the event gave one.
    pub arn: Option<String>,
}

impl SnapshotRef {
    /// From an RDS ARN, `arn:aws:rds:REGION:ACCOUNT:snapshot:NAME` or
    /// `...:cluster-snapshot:NAME`; `None` for anything else (an Aurora export of a
    /// live cluster names `:cluster:`, which has no snapshot to describe).
    pub fn from_arn(arn: &str) -> Option<SnapshotRef> {
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        let ["arn", _, "rds", _, _, kind, name] = parts.as_slice() else {
            return None;
        };
        let cluster = match *kind {
            "snapshot" => false,
            "cluster-snapshot" => true,
            _ => return None,
        };
        (!name.is_empty()).then(|| SnapshotRef {
            id: (*name).to_owned(),
            cluster,
            arn: Some(arn.to_owned()),
        })
    }

    /// The Describe call this snapshot needs.
    pub fn call(&self) -> &'static str {
        if self.cluster {
            DESCRIBE_DB_CLUSTER_SNAPSHOTS
        } else {
            DESCRIBE_DB_SNAPSHOTS
        }
    }
}

/// What `DescribeExportTasks` says of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportTaskFacts {
    /// As RDS spells it (`STARTING`, `IN_PROGRESS`...); lower-cased in the alert.
    pub status: Option<String>,
    pub percent_progress: Option<i32>,
    pub total_extracted_data_in_gb: Option<i32>,
    pub failure_cause: Option<String>,
}

/// What `DescribeDBSnapshots` / `DescribeDBClusterSnapshots` say of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    /// The DB instance or DB cluster identifier.
    pub database: Option<String>,
    pub allocated_storage_gb: Option<i32>,
    pub encrypted: Option<bool>,
    /// RFC 3339.
    pub snapshot_time: Option<String>,
    /// `manual`, `automated`, `awsbackup`...
    pub snapshot_type: Option<String>,
    pub status: Option<String>,
}

/// A definitive HeadBucket answer: 200 when the bucket exists and the expected
/// owner owns it; 403, 404, 301 or 400 when not (or not visible). Throttling, 5xx
/// and network failures are errors, not answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadBucketAnswer {
    pub status: u16,
    /// `x-amz-bucket-region`, when S3 sent it.
    pub region: Option<String>,
}

/// The calls enrichment makes, each in the account and region given.
#[async_trait]
pub trait Lookups: Send + Sync {
    /// `Ok(None)`: no such task.
    async fn export_task(
        &self,
        at: &Place,
        task_id: &str,
    ) -> Result<Option<ExportTaskFacts>, CallError>;
    /// `Ok(None)`: no such snapshot.
    async fn snapshot(
        &self,
        at: &Place,
        snapshot: &SnapshotRef,
    ) -> Result<Option<SnapshotFacts>, CallError>;
    async fn head_bucket(
        &self,
        at: &Place,
        bucket: &str,
        expected_owner: &str,
    ) -> Result<HeadBucketAnswer, CallError>;
}

/// What to look up for one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichRequest {
    pub place: Place,
    pub export_task: Option<String>,
    pub source: Option<SnapshotRef>,
    pub bucket: Option<String>,
}

impl EnrichRequest {
    /// The lookups a rule declares, from the alert's fields (`unknown` or absent
    /// fields are not looked up), in the event's account and region.
    pub fn for_alert(
        spec: &EnrichmentSpec,
        fields: &Map<String, Value>,
        account: &str,
        region: &str,
    ) -> EnrichRequest {
        let field = |name: &Option<String>| {
            name.as_deref()
                .and_then(|n| present_text(fields, n))
                .map(str::to_owned)
        };
        let source = spec.source_of(fields).and_then(|(text, kind)| match kind {
            SourceKind::Arn => SnapshotRef::from_arn(text),
            SourceKind::DbSnapshot | SourceKind::ClusterSnapshot => Some(SnapshotRef {
                id: text.to_owned(),
                cluster: kind == SourceKind::ClusterSnapshot,
                arn: None,
            }),
        });
        EnrichRequest {
            place: Place::new(account, region),
            export_task: field(&spec.export_task),
            source,
            bucket: field(&spec.bucket),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.export_task.is_none() && self.source.is_none() && self.bucket.is_none()
    }
}

/// What enrichment found for one alert. Serialized (see `types`) as two members of
/// the alert document: `enrichment` (`exportTask`, `source`, `bucket`; a lookup the
/// rule does not declare is absent) and `enrichmentErrors` (absent when empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enrichment {
    pub export_task: Option<ExportTaskInfo>,
    pub source: Option<SourceInfo>,
    pub bucket: Option<BucketInfo>,
    pub errors: Vec<EnrichmentError>,
    /// How long the lookups took (not serialized: alerts stay reproducible).
    pub elapsed: Duration,
}

impl Enrichment {
    /// The `enrichment` member as conditions see it (with `errors`), for [`Facts`].
    pub fn facts_value(&self) -> Value {
        let mut value = types::found_value(self);
        if let Value::Object(map) = &mut value {
            map.insert(
                "errors".into(),
                serde_json::to_value(&self.errors).unwrap_or_default(),
            );
        }
        value
    }

    /// `facts` with this enrichment added.
    pub fn add_to(&self, facts: Facts) -> Facts {
        facts.with_enrichment(self.facts_value())
    }
}

/// Counts for an invocation's summary and metrics (part of
/// [`crate::counters::Counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnrichCounters {
    /// Matches enriched (lookups attempted).
    pub enriched: u64,
    /// Calls that failed, each listed in an alert's `enrichmentErrors`.
    pub errors: u64,
    pub errors_by_cause: std::collections::BTreeMap<Cause, u64>,
    /// Matches whose severity an enrichment escalation raised (an export to an
    /// unconfirmed, untrusted bucket).
    pub escalations: u64,
}

impl EnrichCounters {
    pub fn add(&mut self, enrichment: &Enrichment) {
        self.enriched += 1;
        for error in &enrichment.errors {
            self.errors += 1;
            *self.errors_by_cause.entry(error.cause).or_default() += 1;
        }
    }

    pub fn absorb(&mut self, other: &EnrichCounters) {
        self.enriched += other.enriched;
        self.errors += other.errors;
        for (cause, n) in &other.errors_by_cause {
            *self.errors_by_cause.entry(*cause).or_default() += n;
        }
        self.escalations += other.escalations;
    }

    /// EMF metrics: `Enriched`, `EnrichmentErrors`, `EnrichmentEscalations`.
    pub fn metrics(&self) -> [(&'static str, u64); 3] {
        [
            ("Enriched", self.enriched),
            ("EnrichmentErrors", self.errors),
            ("EnrichmentEscalations", self.escalations),
        ]
    }
}

/// Runs a rule's lookups for an alert, within the budget.
pub struct Enricher {
    lookups: Arc<dyn Lookups>,
    settings: EnrichSettings,
}

/// A call's result, or why there is none.
type Answer<T> = Result<T, CallError>;

/// The shared deadline every call of one alert's enrichment runs under.
#[derive(Debug, Clone, Copy)]
struct Budget {
    deadline: tokio::time::Instant,
    budget: Duration,
}

impl Budget {
    /// The call's answer, or a `timeout` error at the deadline.
    async fn run<T>(self, call: impl std::future::Future<Output = Answer<T>>) -> Answer<T> {
        match tokio::time::timeout_at(self.deadline, call).await {
            Ok(answer) => answer,
            Err(_) => Err(CallError::new(
                Cause::Timeout,
                format!(
                    "no answer within the enrichment budget of {} ms",
                    self.budget.as_millis()
                ),
            )),
        }
    }
}

impl Enricher {
    pub fn new(lookups: Arc<dyn Lookups>, settings: EnrichSettings) -> Enricher {
        Enricher { lookups, settings }
    }

    /// The enricher of a deployment: the SDK's lookups through `accounts`.
    pub fn for_aws(settings: &EnrichSettings, accounts: Arc<MemberAccounts>) -> Enricher {
        Enricher::new(Arc::new(AwsLookups::new(accounts)), settings.clone())
    }

    /// The deadline of an enrichment starting now: also the alert's deadline for
    /// its response (see [`crate::respond::Responder::respond`]).
    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.settings.budget
    }

    /// What the pipeline calls for a match: `None` when enrichment is off
    /// (`TRAILWATCH_ENRICH=false`), the rule declares none, or the alert has no
    /// value to look up; otherwise the lookups, done by `deadline`.
    pub async fn enrich_alert(
        &self,
        spec: Option<&EnrichmentSpec>,
        fields: &Map<String, Value>,
        account: &str,
        region: &str,
        deadline: tokio::time::Instant,
    ) -> Option<Enrichment> {
        if !self.settings.enabled {
            return None;
        }
        let request = EnrichRequest::for_alert(spec?, fields, account, region);
        if request.is_empty() {
            return None;
        }
        Some(self.enrich_until(&request, deadline).await)
    }

    pub fn settings(&self) -> &EnrichSettings {
        &self.settings
    }

    /// Looks up what `request` asks, concurrently, and returns within the budget
    /// (plus the scheduler's slack): a call without an answer by then is `unknown`
    /// with a `timeout` error. Never fails.
    pub async fn enrich(&self, request: &EnrichRequest) -> Enrichment {
        self.enrich_until(request, self.deadline()).await
    }

    /// [`Enricher::enrich`] by a deadline shared with other work of the alert.
    pub async fn enrich_until(
        &self,
        request: &EnrichRequest,
        deadline: tokio::time::Instant,
    ) -> Enrichment {
        let started = Instant::now();
        let budget = self.settings.budget;
        let place = &request.place;
        let mut enrichment = Enrichment::default();
        if !place.is_valid() {
            let error = CallError::new(
                Cause::Other,
                format!("the event names no usable account and region ({place})"),
            );
            self.fill_without_calls(request, &mut enrichment, &error);
            enrichment.elapsed = started.elapsed();
            return enrichment;
        }
        let within = Budget { deadline, budget };
        let task = async {
            match &request.export_task {
                Some(id) => Some(within.run(self.lookups.export_task(place, id)).await),
                None => None,
            }
        };
        let source = async {
            match &request.source {
                Some(snapshot) => Some(within.run(self.lookups.snapshot(place, snapshot)).await),
                None => None,
            }
        };
        let bucket = async {
            match &request.bucket {
                Some(name) => Some(self.bucket(place, name, within).await),
                None => None,
            }
        };
        let (task, source, bucket) = tokio::join!(task, source, bucket);
        if let (Some(id), Some(answer)) = (&request.export_task, task) {
            enrichment.export_task = Some(self.task_info(id, answer, &mut enrichment.errors));
        }
        if let (Some(snapshot), Some(answer)) = (&request.source, source) {
            enrichment.source = Some(source_info(snapshot, answer, &mut enrichment.errors));
        }
        if let Some((info, errors)) = bucket {
            enrichment.bucket = Some(info);
            enrichment.errors.extend(errors);
        }
        enrichment.elapsed = started.elapsed();
        self.log(place, &enrichment);
        enrichment
    }

    fn task_info(
        &self,
        id: &str,
        answer: Answer<Option<ExportTaskFacts>>,
        errors: &mut Vec<EnrichmentError>,
    ) -> ExportTaskInfo {
        match answer {
            Ok(Some(facts)) => ExportTaskInfo::found(id, facts),
            Ok(None) => ExportTaskInfo::not_found(id),
            Err(e) => {
                errors.push(EnrichmentError::of(DESCRIBE_EXPORT_TASKS, &e));
                ExportTaskInfo::unknown(id)
            }
        }
    }

    /// The bucket: its owner as HeadBucket tells it, and whether it is trusted. A
    /// trusted account other than the exporting one is probed with its own
    /// `ExpectedBucketOwner`, concurrently with the main call.
    async fn bucket(
        &self,
        place: &Place,
        name: &str,
        within: Budget,
    ) -> (BucketInfo, Vec<EnrichmentError>) {
        let trusted_by_name = self.settings.trusted_buckets.iter().any(|b| b == name);
        let probes: Vec<&String> = if trusted_by_name {
            Vec::new()
        } else {
            self.settings
                .trusted_accounts
                .iter()
                .filter(|a| **a != place.account)
                .collect()
        };
        let main = within.run(self.lookups.head_bucket(place, name, &place.account));
        let others = futures::future::join_all(
            probes
                .iter()
                .map(|owner| within.run(self.lookups.head_bucket(place, name, owner))),
        );
        let (main, others) = tokio::join!(main, others);
        let mut errors = Vec::new();
        let mut info = BucketInfo::new(name, &place.account);
        match main {
            Ok(answer) => info.answered(&answer),
            Err(e) => {
                errors.push(EnrichmentError::of(HEAD_BUCKET, &e));
                info.failed(&e);
            }
        }
        if trusted_by_name {
            info.trust("TRAILWATCH_TRUSTED_BUCKETS".into());
        } else if info.owner == BucketOwner::Confirmed
            && self.settings.trusted_accounts.contains(&place.account)
        {
            info.trust(format!(
                "owner {} in TRAILWATCH_TRUSTED_ACCOUNTS",
                place.account
            ));
        }
        for (owner, answer) in probes.iter().zip(others) {
            match answer {
                Ok(HeadBucketAnswer { status: 200, .. }) if !info.trusted => {
                    info.trust(format!("owner {owner} in TRAILWATCH_TRUSTED_ACCOUNTS"));
                }
                Ok(_) => {}
                Err(e) => errors.push(EnrichmentError {
                    call: format!("{} (ExpectedBucketOwner {owner})", e.call(HEAD_BUCKET)),
                    cause: e.cause,
                    message: e.message,
                }),
            }
        }
        (info, errors)
    }

    /// Every requested lookup unknown, for the one reason no call can be made.
    fn fill_without_calls(
        &self,
        request: &EnrichRequest,
        enrichment: &mut Enrichment,
        error: &CallError,
    ) {
        if let Some(id) = &request.export_task {
            enrichment.export_task = Some(ExportTaskInfo::unknown(id));
            enrichment
                .errors
                .push(EnrichmentError::of(DESCRIBE_EXPORT_TASKS, error));
        }
        if let Some(snapshot) = &request.source {
            enrichment.source = Some(SourceInfo::unknown(snapshot));
            enrichment
                .errors
                .push(EnrichmentError::of(snapshot.call(), error));
        }
        if let Some(name) = &request.bucket {
            let mut info = BucketInfo::new(name, &request.place.account);
            info.failed(error);
            if self.settings.trusted_buckets.iter().any(|b| b == name) {
                info.trust("TRAILWATCH_TRUSTED_BUCKETS".into());
            }
            enrichment.bucket = Some(info);
            enrichment
                .errors
                .push(EnrichmentError::of(HEAD_BUCKET, error));
        }
    }

    fn log(&self, place: &Place, enrichment: &Enrichment) {
        let elapsed_ms = enrichment.elapsed.as_millis() as u64;
        for error in &enrichment.errors {
            tracing::warn!(
                account = %place.account,
                region = %place.region,
                call = %error.call,
                cause = error.cause.label(),
                error = %error.message,
                "enrichment lookup failed; its fields read unknown"
            );
        }
        tracing::info!(
            account = %place.account,
            region = %place.region,
            task_status = enrichment.export_task.as_ref().map(|t| t.status.text()).unwrap_or_default(),
            bucket_owner = enrichment.bucket.as_ref().map(|b| b.owner.label()).unwrap_or_default(),
            errors = enrichment.errors.len(),
            elapsed_ms,
            "alert enriched"
        );
    }
}

fn source_info(
    snapshot: &SnapshotRef,
    answer: Answer<Option<SnapshotFacts>>,
    errors: &mut Vec<EnrichmentError>,
) -> SourceInfo {
    match answer {
        Ok(Some(facts)) => SourceInfo::found(snapshot, facts),
        Ok(None) => SourceInfo::not_found(snapshot),
        Err(e) => {
            errors.push(EnrichmentError::of(snapshot.call(), &e));
            SourceInfo::unknown(snapshot)
        }
    }
}

#[cfg(test)]
mod tests;
