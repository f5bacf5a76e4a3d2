//! Integrity in the Lambda function: every log file it scans is hashed and
//! recorded in the [`ledger`](super::ledger), and every digest CloudTrail delivers
//! is checked as it arrives.
//!
//! For a digest, in this order (what can cost an alert first):
//!
//! 1. each log file it lists is looked up in the ledger; one never scanned (a lost
//!    notification, a function that was down or throttled) is scanned now through
//!    the normal pipeline, so the export in it alerts as it would have; one that is
//!    not in the bucket, or whose content does not have the listed SHA-256, is a
//!    finding;
//! 2. its signature ([`verifier`](super::verifier)): an unknown key, a moved or
//!    unsigned digest is a finding;
//! 3. its link to the previous digest ([`chain`](super::chain)).
//!
//! The findings of one digest make one integrity alert ([`alert`](super::alert)).
//! A failed call to AWS (ListPublicKeys, a fetch, the ledger) never stops the
//! steps after it: it is logged, counted by cause, and reported so that Lambda
//! retries the digest; a digest is recorded as checked only when nothing failed,
//! and a redelivered one that was is skipped.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use super::alert::{self, DigestContext, Finding, FindingKind};
use super::chain::{check_link, named_previous, PreviousDigest};
use super::digest::{hex, Digest, DigestKey, ParsedDigest};
use super::hashing::read_object_hashed;
use super::keys::{CloudTrailKeys, KeyRing, PublicKeySource};
use super::ledger::{DynamoLedger, LedgerError, MemoryLedger, ScanLedger};
use super::verifier::{check_digest, fetch_digest, DigestProblem};
use crate::aws_error::Cause;
use crate::config::ConfigError;
use crate::counters::Counters;
use crate::decode::DecodeError;
use crate::detect::{Detector, ObjectReport};
use crate::pipeline::Alerter;
use crate::source::{ObjectRef, ObjectSource, SourceError};
use crate::trigger::{classify_key, KeyKind};

/// The variable that turns integrity checking on in Lambda.
pub const ENABLE_VARIABLE: &str = "TRAILWATCH_INTEGRITY";

/// `TRAILWATCH_INTEGRITY`: `true` turns the checks on (the stack sets it from its
/// `EnableIntegrity` parameter); unset is off.
pub fn enabled_from_env(get: impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match get(ENABLE_VARIABLE).as_deref().map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError {
                variable: ENABLE_VARIABLE,
                problem: format!("{v:?} is neither true nor false"),
            }),
        },
    }
}

/// A call that failed while checking integrity: the digest is retried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{object}: {message}")]
pub struct IntegrityFailure {
    pub object: ObjectRef,
    pub cause: Cause,
    pub message: String,
}

/// The parts of the pipeline a digest's log files go through.
pub struct Pipeline<'a> {
    pub source: &'a dyn ObjectSource,
    pub detector: &'a Arc<Detector>,
    pub alerter: &'a Alerter,
    pub concurrency: usize,
}

/// Keys and ledger, kept for the life of the process.
pub struct IntegrityWatch {
    pub keys: KeyRing,
    pub ledger: Arc<dyn ScanLedger>,
}

impl IntegrityWatch {
    pub fn new(keys: Arc<dyn PublicKeySource>, ledger: Arc<dyn ScanLedger>) -> Self {
        IntegrityWatch {
            keys: KeyRing::new(keys),
            ledger,
        }
    }

    /// Keys from ListPublicKeys; the ledger in the dedup table, or in memory
    /// without one.
    pub fn for_aws(aws: &aws_config::SdkConfig, table: Option<&str>) -> Self {
        let ledger: Arc<dyn ScanLedger> = match table {
            Some(table) => Arc::new(DynamoLedger::new(aws_sdk_dynamodb::Client::new(aws), table)),
            None => Arc::new(MemoryLedger::new()),
        };
        IntegrityWatch::new(Arc::new(CloudTrailKeys::new(aws)), ledger)
    }

    /// Scans a log file, hashing it, and records it in the ledger. A ledger that
    /// cannot be written costs nothing but a second read when the digest comes:
    /// the failure is returned to be logged and counted, not to fail the object.
    pub async fn read_and_record(
        &self,
        source: &dyn ObjectSource,
        detector: &Arc<Detector>,
        object: &ObjectRef,
    ) -> (Result<ObjectReport, SourceError>, Option<LedgerError>) {
        match read_object_hashed(source, detector, object).await {
            Ok(hashed) => {
                let recorded = match &hashed.sha256 {
                    Some(sha) => self.ledger.record_scan(object, sha).await.err(),
                    None => None,
                };
                (Ok(hashed.report), recorded)
            }
            Err(e) => (Err(e), None),
        }
    }

    /// Checks one delivered digest (see the module documentation). Rescanned log
    /// files are counted in `counters` like any other; their matches are decided
    /// and published by the pipeline's alerter.
    pub async fn on_digest(
        &self,
        pipe: &Pipeline<'_>,
        object: &ObjectRef,
        counters: &mut Counters,
    ) -> Vec<IntegrityFailure> {
        let mut check = DigestCheck {
            watch: self,
            pipe,
            object,
            findings: Vec::new(),
            failures: Vec::new(),
            counters: Counters::default(),
            rescanned: 0,
        };
        let context = check.run().await;
        let DigestCheck {
            findings,
            mut failures,
            counters: counted,
            rescanned,
            ..
        } = check;
        counters.absorb(&counted);
        let published = match alert::build(&context, &findings) {
            Some(notification) => match pipe.alerter.sink.publish(&notification).await {
                Ok(()) => {
                    tracing::warn!(alert_id = %notification.alert_id, digest = %object, findings = findings.len(), "integrity alert published");
                    true
                }
                Err(e) => {
                    counters.publish_failures += 1;
                    *counters.errors_by_cause.entry(e.cause).or_default() += 1;
                    failures.push(IntegrityFailure {
                        object: object.clone(),
                        cause: e.cause,
                        message: e.to_string(),
                    });
                    false
                }
            },
            None => false,
        };
        for failure in &failures {
            tracing::error!(object = %failure.object, cause = failure.cause.label(), error = %failure.message, "integrity check incomplete; the digest will be retried");
        }
        tracing::info!(
            digest = %object,
            findings = findings.len(),
            rescanned,
            integrity_alert = published,
            failures = failures.len(),
            "digest checked"
        );
        failures
    }
}

struct DigestCheck<'a, 'p> {
    watch: &'a IntegrityWatch,
    pipe: &'a Pipeline<'p>,
    object: &'a ObjectRef,
    findings: Vec<Finding>,
    failures: Vec<IntegrityFailure>,
    /// Rescanned objects, and failed calls by cause.
    counters: Counters,
    rescanned: u64,
}

impl DigestCheck<'_, '_> {
    fn finding(&mut self, kind: FindingKind, object: String, detail: String) {
        self.findings.push(Finding {
            kind,
            object,
            detail,
        });
    }

    /// A failed call, counted by cause (the digest will be retried).
    fn failed(&mut self, object: &ObjectRef, cause: Cause, message: String) {
        *self.counters.errors_by_cause.entry(cause).or_default() += 1;
        self.failures.push(IntegrityFailure {
            object: object.clone(),
            cause,
            message,
        });
    }

    async fn run(&mut self) -> DigestContext {
        let object = self.object;
        let key = DigestKey::parse(&object.key);
        let mut context = DigestContext {
            digest: object.to_string(),
            account: key.as_ref().map_or("unknown", |k| k.account).to_owned(),
            region: key.as_ref().map_or("unknown", |k| k.region).to_owned(),
            start_ms: None,
            end_ms: key.as_ref().map(|k| k.end_ms),
        };
        match self.watch.ledger.digest(object).await {
            Ok(Some(_)) => {
                tracing::info!(digest = %object, "digest already checked (a redelivery): skipped");
                return context;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "integrity ledger unreadable; checking the digest again")
            }
        }
        let fetched = match fetch_digest(self.pipe.source, object).await {
            Ok(fetched) => fetched,
            Err(SourceError::NotFound(_)) => {
                self.finding(
                    FindingKind::InvalidDigest,
                    object.to_string(),
                    "the digest was deleted after CloudTrail delivered it".into(),
                );
                return context;
            }
            Err(e) => {
                self.failed(object, e.cause(), e.to_string());
                return context;
            }
        };
        let parsed = match Digest::parse(&fetched.bytes) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.finding(
                    FindingKind::InvalidDigest,
                    object.to_string(),
                    DigestProblem::from(e).to_string(),
                );
                return context;
            }
        };
        context.start_ms = Some(parsed.start_ms);
        context.end_ms = Some(parsed.end_ms);
        self.log_files(&parsed).await;
        let signed = match check_digest(&self.watch.keys, &fetched).await {
            Ok(checked) => {
                for problem in &checked.problems {
                    self.finding(
                        FindingKind::InvalidDigest,
                        object.to_string(),
                        problem.to_string(),
                    );
                }
                checked.as_previous()
            }
            Err(e) => {
                self.failed(object, e.cause(), e.to_string());
                None
            }
        };
        self.chain(&parsed.digest).await;
        if self.failures.is_empty() {
            let what = signed.unwrap_or(PreviousDigest {
                signature: fetched
                    .metadata
                    .get(super::signature::SIGNATURE_METADATA)
                    .cloned(),
                sha256: parsed.sha256,
            });
            if let Err(e) = self.watch.ledger.record_digest(object, &what).await {
                tracing::warn!(error = %e, digest = %object, "digest checked but not recorded");
            }
        }
        context
    }

    /// Step 1: every listed log file scanned, present and unchanged.
    async fn log_files(&mut self, parsed: &ParsedDigest) {
        let mut listed: Vec<(ObjectRef, String)> = Vec::new();
        for file in &parsed.digest.log_files {
            let target = ObjectRef {
                bucket: file.s3_bucket.clone(),
                key: file.s3_object.clone(),
            };
            if target.bucket != self.object.bucket || classify_key(&target.key) != KeyKind::Log {
                self.finding(
                    FindingKind::InvalidDigest,
                    self.object.to_string(),
                    format!("lists {target}, which is not a log file of this trail bucket"),
                );
                continue;
            }
            listed.push((target, file.hash_value.to_ascii_lowercase()));
        }
        let objects: Vec<ObjectRef> = listed.iter().map(|(o, _)| o.clone()).collect();
        let known = match self.watch.ledger.scanned(&objects).await {
            Ok(known) => known,
            Err(e) => {
                *self.counters.errors_by_cause.entry(e.cause).or_default() += 1;
                tracing::warn!(error = %e, "integrity ledger unreadable: every listed log file is scanned again");
                HashMap::new()
            }
        };
        let mut to_scan = Vec::new();
        for (target, expected) in listed {
            match known.get(&target) {
                Some(sha) if hex(sha) == expected => {}
                Some(sha) => self.finding(
                    FindingKind::Modified,
                    target.to_string(),
                    format!(
                        "trailwatch scanned it with SHA-256 {}, the digest lists {expected}: it changed around the time it was read",
                        hex(sha)
                    ),
                ),
                None => to_scan.push((target, expected)),
            }
        }
        let pipe = self.pipe;
        let ledger = &self.watch.ledger;
        let reads: Vec<_> = stream::iter(to_scan)
            .map(|(target, expected)| async move {
                let read = read_object_hashed(pipe.source, pipe.detector, &target).await;
                let recorded = match &read {
                    Ok(hashed) => match &hashed.sha256 {
                        Some(sha) => ledger.record_scan(&target, sha).await.err(),
                        None => None,
                    },
                    Err(_) => None,
                };
                (target, expected, read, recorded)
            })
            .buffer_unordered(pipe.concurrency.max(1))
            .collect()
            .await;
        let mut matches = Vec::new();
        for (target, expected, read, recorded) in reads {
            if let Some(e) = recorded {
                *self.counters.errors_by_cause.entry(e.cause).or_default() += 1;
                tracing::warn!(error = %e, object = %target, "scanned but not recorded in the integrity ledger");
            }
            match read {
                Ok(hashed) => {
                    self.rescanned += 1;
                    self.counters.add_object(&hashed.report);
                    tracing::warn!(object = %target, matches = hashed.report.matches.len(), "log file listed by a digest had not been scanned: scanned now");
                    match (&hashed.sha256, &hashed.report.error) {
                        (Some(sha), _) if hex(sha) == expected => {}
                        (Some(sha), _) => self.finding(
                            FindingKind::Modified,
                            target.to_string(),
                            format!("its content has SHA-256 {}, the digest lists {expected}", hex(sha)),
                        ),
                        (None, Some(DecodeError::Io(e))) => {
                            self.failed(&target, Cause::Network, format!("reading it: {e}"))
                        }
                        (None, error) => self.finding(
                            FindingKind::Modified,
                            target.to_string(),
                            format!(
                                "it cannot be read as CloudTrail wrote it ({}); the digest lists SHA-256 {expected}",
                                error.as_ref().map_or_else(String::new, ToString::to_string)
                            ),
                        ),
                    }
                    matches.extend(hashed.report.matches);
                }
                Err(SourceError::NotFound(_)) => self.finding(
                    FindingKind::Missing,
                    target.to_string(),
                    format!("the digest lists it with SHA-256 {expected}; it is not in the bucket"),
                ),
                Err(e) => {
                    crate::events::fetch_failed(&mut self.counters, &e);
                    self.failures.push(IntegrityFailure {
                        object: target,
                        cause: e.cause(),
                        message: e.to_string(),
                    });
                }
            }
        }
        let published = pipe
            .alerter
            .process(matches, crate::time::now_ms(), &mut self.counters)
            .await;
        // (Counted by the alerter.)
        for failure in published {
            self.failures.push(IntegrityFailure {
                object: self.object.clone(),
                cause: failure.cause,
                message: format!(
                    "publishing an alert of {}: {}",
                    failure.source, failure.message
                ),
            });
        }
    }

    /// Step 3: the link to the previous digest.
    async fn chain(&mut self, digest: &Digest) {
        let object = self.object;
        let previous = match named_previous(digest) {
            Ok(Some(previous)) => previous,
            Ok(None) => return,
            Err(e) => {
                self.finding(FindingKind::BrokenChain, object.to_string(), e.to_string());
                return;
            }
        };
        if previous.bucket != object.bucket {
            tracing::info!(digest = %object, previous = %previous, "previous digest in another bucket: link not checked");
            return;
        }
        let found = match self.watch.ledger.digest(&previous).await {
            Ok(Some(found)) => Some(found),
            _ => match fetch_digest(self.pipe.source, &previous).await {
                Ok(fetched) => match Digest::parse(&fetched.bytes) {
                    Ok(parsed) => Some(PreviousDigest {
                        signature: fetched
                            .metadata
                            .get(super::signature::SIGNATURE_METADATA)
                            .cloned(),
                        sha256: parsed.sha256,
                    }),
                    // Not a digest: a link to it cannot hold (its own delivery
                    // was, or will be, reported).
                    Err(_) => Some(PreviousDigest {
                        signature: None,
                        sha256: [0; 32],
                    }),
                },
                Err(SourceError::NotFound(_)) => None,
                Err(e) => {
                    self.failed(&previous, e.cause(), e.to_string());
                    return;
                }
            },
        };
        if let Err(e) = check_link(digest, found.as_ref()) {
            self.finding(FindingKind::BrokenChain, object.to_string(), e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_is_read_like_the_other_booleans() {
        let with = |value: Option<&str>| enabled_from_env(|_| value.map(str::to_owned));
        assert_eq!(with(None), Ok(false));
        assert_eq!(with(Some(" ")), Ok(false));
        assert_eq!(with(Some("TRUE")), Ok(true));
        assert_eq!(with(Some("false")), Ok(false));
        let error = with(Some("maybe")).unwrap_err().to_string();
        assert_eq!(
            error,
            "configuration: TRAILWATCH_INTEGRITY: \"maybe\" is neither true nor false"
        );
    }
}
