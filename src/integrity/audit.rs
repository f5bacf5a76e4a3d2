//! `trailwatch verify`: a bucket's history checked against its digests, as
//! `aws cloudtrail validate-logs` does, plus the files no digest lists.
//!
//! The digests of the range are found with the same pruned listing as `scan
//! s3://` (accounts, regions, days; [`crate::history::layout::plan_folder`] over
//! `CloudTrail-Digest/`), one account and region at a time, so memory holds one
//! area's digests and file names. For each area:
//!
//! - every digest is fetched and checked ([`super::verifier`]): `valid`, or
//!   `invalid` with the reason (format, moved, unknown key, signature);
//! - the chains are followed: a digest named as previous that is not in the
//!   bucket is `missing`; a link whose signature or hash differs makes the later
//!   digest `invalid` (broken chain);
//! - every log file a valid digest lists is read and hashed: `valid`, `modified`
//!   (another SHA-256, or not decodable) or `missing`;
//! - every log file in the bucket that no digest lists is `unlisted` when the
//!   valid digests of its area cover the hour after its time stamp without a gap
//!   (a file CloudTrail did not write, or wrote during a gap the chain does not
//!   show), and `unverified` otherwise (outside the digests' hours, listed by an
//!   invalid digest, or in the hour of a missing digest).
//!
//! Only `unverified` and `valid` leave the exit status at 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::chain::{check_link, named_previous};
use super::digest::{hex, log_key_time, DigestKey};
use super::hashing::read_object_hashed;
use super::keys::KeyRing;
use super::verifier::{check_digest, fetch_digest, CheckedDigest, DigestProblem};
use crate::detect::Detector;
use crate::history::layout::{plan_folder, Days, Filters, S3Url};
use crate::history::list::{ListError, Lister};
use crate::history::window::day_path;
use crate::source::{ObjectRef, ObjectSource, SourceError};

/// How long after its time stamp a log file can still be delivered: a file with
/// an unbroken hour of valid digests after its stamp must be listed by one.
pub const DELIVERY_LAG_MS: i64 = 3_600_000;
/// Digests of one chain meet end to start; this much slack joins them.
const JOIN_SLACK_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    Digest,
    LogFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Valid,
    Modified,
    Missing,
    Unlisted,
    Invalid,
    /// Not checkable (see the module documentation); not a failure by itself.
    Unverified,
    /// It could not be read (throttled, denied): neither valid nor invalid.
    Error,
}

impl Status {
    /// Whether this verdict makes `verify` exit 1.
    pub fn fails(self) -> bool {
        !matches!(self, Status::Valid | Status::Unverified)
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Modified => "MODIFIED",
            Status::Missing => "MISSING",
            Status::Unlisted => "UNLISTED",
            Status::Invalid => "INVALID",
            Status::Unverified => "unverified",
            Status::Error => "ERROR",
        }
    }
}

/// One object's verdict (a `verify --format json` line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub kind: ObjectKind,
    /// `s3://bucket/key`.
    pub object: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Verdict {
    fn new(kind: ObjectKind, object: &ObjectRef, status: Status, detail: Option<String>) -> Self {
        Verdict {
            kind,
            object: object.to_string(),
            status,
            detail,
        }
    }

    /// `Log file<TAB>s3://…<TAB>MODIFIED: detail`, the shape of validate-logs' lines.
    pub fn text(&self) -> String {
        let kind = match self.kind {
            ObjectKind::Digest => "Digest file",
            ObjectKind::LogFile => "Log file",
        };
        match &self.detail {
            Some(detail) => format!("{kind}\t{}\t{}: {detail}", self.object, self.status.label()),
            None => format!("{kind}\t{}\t{}", self.object, self.status.label()),
        }
    }
}

/// Verdicts counted by kind and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub counts: BTreeMap<(ObjectKind, Status), u64>,
}

impl Summary {
    pub fn add(&mut self, verdict: &Verdict) {
        *self
            .counts
            .entry((verdict.kind, verdict.status))
            .or_default() += 1;
    }

    pub fn failed(&self) -> bool {
        self.counts.keys().any(|(_, status)| status.fails())
    }

    /// `digest files: 4 valid, 1 MISSING; log files: 9 valid, 1 MODIFIED`.
    pub fn line(&self) -> String {
        let part = |kind: ObjectKind, name: &str| {
            let items: Vec<String> = self
                .counts
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|((_, s), n)| format!("{n} {}", s.label()))
                .collect();
            if items.is_empty() {
                format!("{name}: none")
            } else {
                format!("{name}: {}", items.join(", "))
            }
        };
        format!(
            "{}; {}",
            part(ObjectKind::Digest, "digest files"),
            part(ObjectKind::LogFile, "log files")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    List(#[from] ListError),
    #[error("{0}: verify takes the trail's bucket and prefix (the part before AWSLogs/)")]
    InsideLayout(String),
}

/// What an audit runs with.
pub struct Audit {
    pub lister: Arc<dyn Lister>,
    pub source: Arc<dyn ObjectSource>,
    pub detector: Arc<Detector>,
    pub keys: Arc<KeyRing>,
    /// Objects fetched at once.
    pub jobs: usize,
}

/// One account and region: its digest folder prefix and the days to list.
struct Area {
    digests: String,
    logs: String,
    days: Vec<Option<i64>>,
}

impl Audit {
    /// Verifies `url` over `filters`, calling `emit` with each verdict.
    pub async fn run(
        &self,
        url: &S3Url,
        filters: &Filters,
        today: i64,
        mut emit: impl FnMut(&Verdict),
    ) -> Result<Summary, AuditError> {
        if url.prefix.contains("AWSLogs/") {
            return Err(AuditError::InsideLayout(format!(
                "s3://{}/{}",
                url.bucket, url.prefix
            )));
        }
        // Digests are filed under the day their hour ends: the last hour of the
        // range closes in the next digest, up to a day later.
        let mut digest_filters = filters.clone();
        digest_filters.window.until_ms = filters.window.until_ms.map(|t| t + 2 * DELIVERY_LAG_MS);
        let plan = plan_folder(
            self.lister.as_ref(),
            url,
            &digest_filters,
            today,
            "CloudTrail-Digest",
        )
        .await?;
        let mut summary = Summary::default();
        for scope in &plan.scopes {
            let days: Vec<Option<i64>> = match &scope.days {
                Days::Range { first, last } => (*first..=*last).map(Some).collect(),
                Days::Found(days) => days.iter().copied().map(Some).collect(),
                Days::Whole => vec![None],
            };
            let area = Area {
                digests: scope.prefix.clone(),
                logs: scope
                    .prefix
                    .replacen("/CloudTrail-Digest/", "/CloudTrail/", 1),
                days,
            };
            for verdict in self.area(&plan.bucket, &area, filters).await? {
                summary.add(&verdict);
                emit(&verdict);
            }
        }
        Ok(summary)
    }

    async fn list(
        &self,
        bucket: &str,
        base: &str,
        days: &[Option<i64>],
    ) -> Result<Vec<String>, ListError> {
        let mut keys = Vec::new();
        for day in days {
            let prefix = match day {
                Some(day) => format!("{base}{}/", day_path(*day)),
                None => base.to_owned(),
            };
            let mut pages = self.lister.pages(bucket, &prefix, false);
            while let Some(page) = pages.next().await {
                keys.extend(page?.objects.into_iter().map(|o| o.key));
            }
        }
        Ok(keys)
    }

    async fn area(
        &self,
        bucket: &str,
        area: &Area,
        filters: &Filters,
    ) -> Result<Vec<Verdict>, AuditError> {
        let since = filters.window.since_ms.unwrap_or(i64::MIN);
        let until = filters.window.until_ms.unwrap_or(i64::MAX);
        let digest_keys: Vec<String> = self
            .list(bucket, &area.digests, &area.days)
            .await?
            .into_iter()
            .filter(|k| {
                DigestKey::parse(k).is_some_and(|d| {
                    d.end_ms >= since && d.end_ms <= until.saturating_add(2 * DELIVERY_LAG_MS)
                })
            })
            .collect();
        let mut verdicts = Vec::new();
        // Fetch and check every digest.
        let checked: Vec<(ObjectRef, Result<CheckedDigest, String>)> = stream::iter(digest_keys)
            .map(|key| async move {
                let object = ObjectRef {
                    bucket: bucket.to_owned(),
                    key,
                };
                let result = match fetch_digest(self.source.as_ref(), &object).await {
                    Ok(fetched) => check_digest(&self.keys, &fetched)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (object, result)
            })
            .buffer_unordered(self.jobs.max(1))
            .collect()
            .await;
        let mut digests: BTreeMap<ObjectRef, CheckedDigest> = BTreeMap::new();
        for (object, result) in checked {
            match result {
                Ok(checked) => {
                    digests.insert(object, checked);
                }
                Err(e) => verdicts.push(Verdict::new(
                    ObjectKind::Digest,
                    &object,
                    Status::Error,
                    Some(e),
                )),
            }
        }
        // Chains: each digest's link to the one it names.
        let mut chains: BTreeMap<String, Vec<&ObjectRef>> = BTreeMap::new();
        for object in digests.keys() {
            if let Some(key) = DigestKey::parse(&object.key) {
                chains.entry(key.chain()).or_default().push(object);
            }
        }
        let mut gaps: Vec<(i64, i64)> = Vec::new();
        let mut broken: HashMap<ObjectRef, DigestProblem> = HashMap::new();
        let mut missing_reported: HashSet<ObjectRef> = HashSet::new();
        for members in chains.values_mut() {
            members.sort_by_key(|o| DigestKey::parse(&o.key).map_or(0, |k| k.end_ms));
            for (i, object) in members.iter().enumerate() {
                let Some(digest) = digests[*object].digest() else {
                    continue;
                };
                let previous = match named_previous(digest) {
                    Ok(Some(previous)) => previous,
                    Ok(None) => continue,
                    Err(e) => {
                        broken.insert((*object).clone(), e.into());
                        continue;
                    }
                };
                let found = match digests.get(&previous) {
                    Some(found) => found.as_previous(),
                    None => match fetch_digest(self.source.as_ref(), &previous).await {
                        Ok(fetched) => super::digest::Digest::parse(&fetched.bytes).ok().map(|p| {
                            super::chain::PreviousDigest {
                                signature: fetched
                                    .metadata
                                    .get(super::signature::SIGNATURE_METADATA)
                                    .cloned(),
                                sha256: p.sha256,
                            }
                        }),
                        Err(SourceError::NotFound(_)) => None,
                        Err(e) => {
                            verdicts.push(Verdict::new(
                                ObjectKind::Digest,
                                &previous,
                                Status::Error,
                                Some(e.to_string()),
                            ));
                            continue;
                        }
                    },
                };
                match found {
                    None => {
                        // Deleted: its hour (from the digest before it, to this
                        // one's start) has no valid digest.
                        let gap_start = i
                            .checked_sub(1)
                            .and_then(|j| digests[members[j]].parsed.as_ref())
                            .map_or(i64::MIN, |p| p.end_ms);
                        let gap_end = digests[*object]
                            .parsed
                            .as_ref()
                            .map_or(i64::MAX, |p| p.start_ms);
                        gaps.push((gap_start, gap_end));
                        if missing_reported.insert(previous.clone()) {
                            verdicts.push(Verdict::new(
                                ObjectKind::Digest,
                                &previous,
                                Status::Missing,
                                Some(format!("named as previous by {object}, not in the bucket")),
                            ));
                        }
                    }
                    Some(found) => {
                        if let Err(e) = check_link(digest, Some(&found)) {
                            broken.insert((*object).clone(), e.into());
                        }
                    }
                }
            }
        }
        // Digest verdicts; the listed files of valid ones.
        let mut listed: HashMap<ObjectRef, String> = HashMap::new();
        let mut listed_by_invalid: HashSet<ObjectRef> = HashSet::new();
        let mut coverage: Vec<(i64, i64)> = Vec::new();
        for (object, checked) in &digests {
            let mut problems: Vec<String> =
                checked.problems.iter().map(ToString::to_string).collect();
            if let Some(problem) = broken.get(object) {
                problems.push(problem.to_string());
            }
            let valid = problems.is_empty();
            verdicts.push(Verdict::new(
                ObjectKind::Digest,
                object,
                if valid {
                    Status::Valid
                } else {
                    Status::Invalid
                },
                (!valid).then(|| problems.join("; ")),
            ));
            let Some(parsed) = &checked.parsed else {
                continue;
            };
            if valid {
                coverage.push((parsed.start_ms, parsed.end_ms));
            }
            for file in &parsed.digest.log_files {
                let target = ObjectRef {
                    bucket: file.s3_bucket.clone(),
                    key: file.s3_object.clone(),
                };
                if valid {
                    listed.insert(target, file.hash_value.to_ascii_lowercase());
                } else {
                    listed_by_invalid.insert(target);
                }
            }
        }
        // Listed files: present and unchanged.
        let mut checks: Vec<(ObjectRef, String)> =
            listed.iter().map(|(o, h)| (o.clone(), h.clone())).collect();
        checks.sort();
        let file_verdicts: Vec<Verdict> = stream::iter(checks)
            .map(|(target, expected)| async move {
                let read = read_object_hashed(self.source.as_ref(), &self.detector, &target).await;
                let (status, detail) = match read {
                    Ok(hashed) => match (hashed.sha256, hashed.report.error) {
                        (Some(sha), _) if hex(&sha) == expected => (Status::Valid, None),
                        (Some(sha), _) => (
                            Status::Modified,
                            Some(format!(
                                "hash value doesn't match: SHA-256 {}, the digest lists {expected}",
                                hex(&sha)
                            )),
                        ),
                        (None, error) => (
                            Status::Modified,
                            Some(format!(
                                "invalid format: {}",
                                error.map_or_else(String::new, |e| e.to_string())
                            )),
                        ),
                    },
                    Err(SourceError::NotFound(_)) => {
                        (Status::Missing, Some("not found".to_owned()))
                    }
                    Err(e) => (Status::Error, Some(e.to_string())),
                };
                Verdict::new(ObjectKind::LogFile, &target, status, detail)
            })
            .buffer_unordered(self.jobs.max(1))
            .collect()
            .await;
        verdicts.extend(file_verdicts);
        // Files no digest lists.
        let coverage = merge(coverage);
        let in_range = |t: i64| t >= since && t <= until;
        for key in self.list(bucket, &area.logs, &area.days).await? {
            let object = ObjectRef {
                bucket: bucket.to_owned(),
                key,
            };
            if listed.contains_key(&object) {
                continue;
            }
            let stamp = log_key_time(&object.key);
            if stamp.is_some_and(|t| !in_range(t)) {
                continue;
            }
            let verdict = if listed_by_invalid.contains(&object) {
                Verdict::new(
                    ObjectKind::LogFile,
                    &object,
                    Status::Unverified,
                    Some("listed only by an invalid digest".into()),
                )
            } else {
                match stamp {
                    None => Verdict::new(
                        ObjectKind::LogFile,
                        &object,
                        Status::Unlisted,
                        Some(
                            "no digest lists it, and its name has no CloudTrail time stamp".into(),
                        ),
                    ),
                    Some(t) => {
                        let span = (t, t + DELIVERY_LAG_MS);
                        let in_gap = gaps.iter().any(|&(a, b)| span.0 <= b && a <= span.1);
                        let covered = coverage.iter().any(|&(a, b)| a <= span.0 && span.1 <= b);
                        if covered && !in_gap {
                            Verdict::new(ObjectKind::LogFile, &object, Status::Unlisted, Some("no digest lists it, though the digests cover its hour: CloudTrail did not deliver it".into()))
                        } else if in_gap {
                            Verdict::new(
                                ObjectKind::LogFile,
                                &object,
                                Status::Unverified,
                                Some("its digest is missing".into()),
                            )
                        } else {
                            Verdict::new(
                                ObjectKind::LogFile,
                                &object,
                                Status::Unverified,
                                Some("no valid digest covers its hour (yet)".into()),
                            )
                        }
                    }
                }
            };
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }
}

/// Joins intervals that meet (within [`JOIN_SLACK_MS`]).
fn merge(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.sort();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 + JOIN_SLACK_MS => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_that_meet_make_one_span() {
        let h = 3_600_000;
        assert_eq!(
            merge(vec![(2 * h, 3 * h), (0, h), (h + 1000, 2 * h)]),
            vec![(0, 3 * h)]
        );
        assert_eq!(
            merge(vec![(0, h), (2 * h, 3 * h)]),
            vec![(0, h), (2 * h, 3 * h)]
        );
    }

    #[test]
    fn only_valid_and_unverified_pass() {
        for status in [Status::Valid, Status::Unverified] {
            assert!(!status.fails());
        }
        for status in [
            Status::Modified,
            Status::Missing,
            Status::Unlisted,
            Status::Invalid,
            Status::Error,
        ] {
            assert!(status.fails());
        }
        let mut summary = Summary::default();
        let object = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
        };
        summary.add(&Verdict::new(
            ObjectKind::Digest,
            &object,
            Status::Valid,
            None,
        ));
        assert!(!summary.failed());
        summary.add(&Verdict::new(
            ObjectKind::LogFile,
            &object,
            Status::Missing,
            Some("not found".into()),
        ));
        assert!(summary.failed());
        assert_eq!(
            summary.line(),
            "digest files: 1 valid; log files: 1 MISSING"
        );
    }
}
