//! The chain: each digest names the previous digest of its trail (bucket, key,
//! the signature S3 holds for it and the SHA-256 of its uncompressed content).
//! A deleted digest breaks the link from the next one; a digest put in another's
//! place, even one CloudTrail signed, has another signature or hash.
//!
//! The previous digest's signature is part of the string CloudTrail signs, so a
//! digest whose own signature verifies vouches for the link it names: checking
//! the link is comparing what it names with what is there.

use super::digest::{decode_hex, Digest};
use crate::source::ObjectRef;

/// What the previous digest really is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousDigest {
    /// Its `x-amz-meta-signature`.
    pub signature: Option<String>,
    /// SHA-256 of its uncompressed content.
    pub sha256: [u8; 32],
}

/// Why a link does not hold.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("broken chain: the previous digest {0} is missing")]
    PreviousMissing(ObjectRef),
    #[error(
        "broken chain: the signature of the previous digest {0} is not the one this digest names"
    )]
    SignatureDiffers(ObjectRef),
    #[error("broken chain: the content of the previous digest {0} does not have the SHA-256 this digest names")]
    HashDiffers(ObjectRef),
    #[error("broken chain: previousDigestS3Bucket, previousDigestS3Object and previousDigestSignature are not all set or all null")]
    Incomplete,
}

/// The previous digest a digest names, or `None` for a trail's starting digest.
pub fn named_previous(digest: &Digest) -> Result<Option<ObjectRef>, ChainError> {
    match (digest.previous(), &digest.previous_digest_signature) {
        (None, None) => Ok(None),
        (Some((bucket, key)), Some(_)) => Ok(Some(ObjectRef {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })),
        _ => Err(ChainError::Incomplete),
    }
}

/// Checks the link from `digest` to the previous digest as found (`None`: not in
/// the bucket).
pub fn check_link(digest: &Digest, previous: Option<&PreviousDigest>) -> Result<(), ChainError> {
    let Some(named) = named_previous(digest)? else {
        return Ok(());
    };
    let Some(previous) = previous else {
        return Err(ChainError::PreviousMissing(named));
    };
    let same_signature = match (&previous.signature, &digest.previous_digest_signature) {
        (Some(actual), Some(named)) => actual.eq_ignore_ascii_case(named),
        _ => false,
    };
    if !same_signature {
        return Err(ChainError::SignatureDiffers(named));
    }
    if let Some(hash) = &digest.previous_digest_hash_value {
        if decode_hex(hash).as_deref() != Some(previous.sha256.as_slice()) {
            return Err(ChainError::HashDiffers(named));
        }
    }
    Ok(())
}
