//! One digest object, checked on its own: readable, where it says it was
//! delivered, signed by a CloudTrail key of its region. The link to the previous
//! digest ([`super::chain`]) and the log files it lists are checked by the
//! callers, which know what else is in the bucket (the `verify` command's
//! [`super::audit`], the Lambda's [`super::watch`]).

use std::io::Read;

use super::chain::PreviousDigest;
use super::digest::{Digest, DigestKey, FormatError, ParsedDigest, MAX_DIGEST_BYTES};
use super::keys::{KeyError, KeyLookupError, KeyRing};
use super::signature::{self, SignatureError, ALGORITHM_METADATA, SIGNATURE_METADATA};
use crate::aws_error::Cause;
use crate::source::{Metadata, ObjectRef, ObjectSource, SourceError};

/// A digest object as fetched: its bytes (gzip) and user metadata.
#[derive(Debug, Clone)]
pub struct FetchedDigest {
    pub object: ObjectRef,
    pub bytes: Vec<u8>,
    pub metadata: Metadata,
}

/// Fetches a digest object whole (a few KB; bounded all the same).
pub async fn fetch_digest(
    source: &dyn ObjectSource,
    object: &ObjectRef,
) -> Result<FetchedDigest, SourceError> {
    let (body, metadata) = source.open_with_metadata(object).await?;
    let failed = |message: String| SourceError::Failed {
        object: object.clone(),
        cause: Cause::Other,
        message,
    };
    let bytes = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        body.take(MAX_DIGEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
    })
    .await
    .map_err(|e| failed(format!("reading the digest stopped unexpectedly: {e}")))?
    .map_err(|e| SourceError::Failed {
        object: object.clone(),
        cause: Cause::Network,
        message: format!("reading the digest: {e}"),
    })?;
    if bytes.len() as u64 > MAX_DIGEST_BYTES {
        return Err(failed(format!(
            "larger than {MAX_DIGEST_BYTES} bytes: not a digest"
        )));
    }
    Ok(FetchedDigest {
        object: object.clone(),
        bytes,
        metadata,
    })
}

/// Why a digest is invalid, each as `aws cloudtrail validate-logs` words it where
/// it has words for it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DigestProblem {
    #[error("invalid format: {0}")]
    Format(#[from] FormatError),
    #[error("the key is not a CloudTrail digest key")]
    NotADigestKey,
    #[error("has been moved from its original location (it says s3://{bucket}/{key})")]
    Moved { bucket: String, key: String },
    #[error("{0}")]
    Key(KeyLookupError),
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    Chain(#[from] super::chain::ChainError),
}

/// A digest after [`check_digest`].
#[derive(Debug, Clone)]
pub struct CheckedDigest {
    pub object: ObjectRef,
    /// `None` when the bytes are not a digest.
    pub parsed: Option<ParsedDigest>,
    /// Its `x-amz-meta-signature`.
    pub signature: Option<String>,
    /// Empty: readable, in place, and signed by CloudTrail.
    pub problems: Vec<DigestProblem>,
}

impl CheckedDigest {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.parsed.as_ref().map(|p| &p.digest)
    }

    /// What the next digest's link is compared with.
    pub fn as_previous(&self) -> Option<PreviousDigest> {
        self.parsed.as_ref().map(|p| PreviousDigest {
            signature: self.signature.clone(),
            sha256: p.sha256,
        })
    }
}

/// Reads and checks one digest. `Err` only when the keys could not be fetched:
/// the digest is then neither valid nor invalid yet.
pub async fn check_digest(
    ring: &KeyRing,
    fetched: &FetchedDigest,
) -> Result<CheckedDigest, KeyError> {
    let object = &fetched.object;
    let signature = fetched.metadata.get(SIGNATURE_METADATA).cloned();
    let mut checked = CheckedDigest {
        object: object.clone(),
        parsed: None,
        signature: signature.clone(),
        problems: Vec::new(),
    };
    let parsed = match Digest::parse(&fetched.bytes) {
        Ok(parsed) => parsed,
        Err(e) => {
            checked.problems.push(e.into());
            return Ok(checked);
        }
    };
    let digest = &parsed.digest;
    if digest.digest_s3_bucket != object.bucket || digest.digest_s3_object != object.key {
        checked.problems.push(DigestProblem::Moved {
            bucket: digest.digest_s3_bucket.clone(),
            key: digest.digest_s3_object.clone(),
        });
    }
    match DigestKey::parse(&object.key) {
        None => checked.problems.push(DigestProblem::NotADigestKey),
        Some(key) => {
            let found = ring
                .key(
                    key.region,
                    &digest.digest_public_key_fingerprint,
                    parsed.start_ms,
                    parsed.end_ms,
                )
                .await;
            match found {
                Ok(public_key) => {
                    let signed = digest.signing_string(&parsed.sha256);
                    if let Err(e) = signature::verify(
                        &public_key,
                        signed.as_bytes(),
                        signature.as_deref(),
                        fetched.metadata.get(ALGORITHM_METADATA).map(String::as_str),
                    ) {
                        checked.problems.push(e.into());
                    }
                }
                Err(KeyLookupError::Source(e)) => return Err(e),
                Err(e) => checked.problems.push(DigestProblem::Key(e)),
            }
        }
    }
    checked.parsed = Some(parsed);
    Ok(checked)
}
