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

#[cfg(test)]
mod tests {
    use super::super::chain::{check_link, ChainError};
    use super::super::keys::KeyLookupError;
    use super::super::testkit::{ring, signed, FINGERPRINT};
    use super::*;

    const DOC_DIGEST: &str = include_str!("../../tests/data/integrity/aws-doc-digest.json");
    const BUCKET: &str = "S3-bucket-name";
    const KEY: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz";

    fn fetched(bytes: Vec<u8>, signature: &str) -> FetchedDigest {
        FetchedDigest {
            object: ObjectRef {
                bucket: BUCKET.into(),
                key: KEY.into(),
            },
            bytes,
            metadata: Metadata::from([
                ("signature".into(), signature.into()),
                ("signature-algorithm".into(), "SHA256withRSA".into()),
            ]),
        }
    }

    async fn problems(f: &FetchedDigest) -> Vec<String> {
        check_digest(&ring(), f)
            .await
            .unwrap()
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[tokio::test]
    async fn a_digest_laid_out_as_aws_documents_it_verifies() {
        let (bytes, signature) = signed(DOC_DIGEST);
        let checked = check_digest(&ring(), &fetched(bytes, &signature))
            .await
            .unwrap();
        assert!(checked.is_valid(), "{:?}", checked.problems);
        let digest = checked.digest().unwrap();
        assert_eq!(digest.digest_public_key_fingerprint, FINGERPRINT);
        assert_eq!(digest.log_files.len(), 1);
        assert_eq!(
            digest.log_files[0].hash_value,
            "9bb6196fc6b84d6f075a56548feca262bd99ba3c2de41b618e5b6e22c1fc71f6"
        );
        // The signing string, as AWS's step D lays it out.
        let parsed = checked.parsed.as_ref().unwrap();
        let signed = digest.signing_string(&parsed.sha256);
        let lines: Vec<&str> = signed.split('\n').collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "2015-08-17T15:01:31Z");
        assert_eq!(lines[1], format!("{BUCKET}/{KEY}"));
        assert_eq!(lines[2], super::super::digest::hex(&parsed.sha256));
        assert!(lines[3].starts_with("50887ccffad4c002"));
    }

    #[tokio::test]
    async fn a_tampered_signature_or_content_is_reported() {
        let (bytes, signature) = signed(DOC_DIGEST);
        // One hex digit of the signature changed.
        let mut tampered = signature.clone().into_bytes();
        tampered[10] = if tampered[10] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            problems(&fetched(bytes.clone(), &tampered)).await,
            ["signature verification failed"]
        );
        // The content changed (a listed hash edited), the signature kept.
        let edited = DOC_DIGEST.replace("9bb6196f", "0bb6196f");
        let bytes_edited = crate::decode::test_gzip(edited.as_bytes());
        assert_eq!(
            problems(&fetched(bytes_edited, &signature)).await,
            ["signature verification failed"]
        );
        // Garbage where the signature goes, none at all, another algorithm.
        assert_eq!(
            problems(&fetched(bytes.clone(), "zz")).await,
            ["x-amz-meta-signature is not hex"]
        );
        assert_eq!(
            problems(&fetched(bytes.clone(), "abcd")).await,
            ["signature verification failed"]
        );
        let mut unsigned = fetched(bytes.clone(), "");
        unsigned.metadata.clear();
        assert_eq!(
            problems(&unsigned).await,
            ["no x-amz-meta-signature metadata"]
        );
        let mut md5 = fetched(bytes, &signature);
        md5.metadata
            .insert("signature-algorithm".into(), "MD5withRSA".into());
        assert_eq!(
            problems(&md5).await,
            ["signature algorithm \"MD5withRSA\" is not SHA256withRSA"]
        );
    }

    #[tokio::test]
    async fn a_wrong_fingerprint_is_reported() {
        let json = DOC_DIGEST.replace(FINGERPRINT, "31e8b5433410dfb61a9dc45cc65b22ff");
        let (bytes, signature) = signed(&json);
        assert_eq!(
            problems(&fetched(bytes, &signature)).await,
            ["public key not found in region us-east-2 for fingerprint 31e8b5433410dfb61a9dc45cc65b22ff"]
        );
        let unknown = ring().key("us-east-2", "nope", 0, 1).await.unwrap_err();
        assert!(matches!(unknown, KeyLookupError::Unknown { .. }));
    }

    #[tokio::test]
    async fn a_moved_or_garbage_digest_is_reported() {
        let (bytes, signature) = signed(DOC_DIGEST);
        let mut moved = fetched(bytes, &signature);
        moved.object.key = KEY.replace("20150817T150131Z", "20150817T160131Z");
        let found = problems(&moved).await;
        assert!(
            found[0].starts_with("has been moved from its original location"),
            "{found:?}"
        );
        for garbage in [&b"\x1f\x8b\x08\x00garbage"[..], b"{}", b"\x00\x01"] {
            let found = problems(&fetched(garbage.to_vec(), &signature)).await;
            assert!(found[0].starts_with("invalid format"), "{found:?}");
        }
    }

    #[tokio::test]
    async fn a_broken_chain_is_reported() {
        // The previous digest, and one that names it.
        let previous_json = DOC_DIGEST
            .replace("T150131Z", "T140131Z")
            .replace("15:01:31Z", "14:01:31Z")
            .replace(
                "\"2015-08-17T14:01:31Z\",\n  \"digestEndTime\"",
                "\"2015-08-17T13:01:31Z\",\n  \"digestEndTime\"",
            );
        let (previous_bytes, previous_signature) = signed(&previous_json);
        let previous = fetched(previous_bytes, &previous_signature);
        let previous = check_digest(&ring(), &previous).await.unwrap();
        let link = previous.as_previous().unwrap();
        let sha = super::super::digest::hex(&link.sha256);
        let current_json = DOC_DIGEST
            .replace(
                "97fb791cf91ffc440d274f8190dbdd9aa09c34432aba82739df18b6d3c13df2d",
                &sha,
            )
            .replace(
                &DOC_DIGEST[DOC_DIGEST.find("\"previousDigestSignature\": \"").unwrap() + 28..]
                    [..512],
                &previous_signature,
            );
        let (bytes, signature) = signed(&current_json);
        let current = check_digest(&ring(), &fetched(bytes, &signature))
            .await
            .unwrap();
        assert!(current.is_valid(), "{:?}", current.problems);
        let digest = current.digest().unwrap();
        assert_eq!(check_link(digest, Some(&link)), Ok(()));
        // Another digest in the previous one's place, or none at all.
        let mut other = link.clone();
        other.signature = Some(super::super::testkit::sign(b"another digest"));
        assert!(matches!(
            check_link(digest, Some(&other)),
            Err(ChainError::SignatureDiffers(_))
        ));
        let mut edited = link.clone();
        edited.sha256[0] ^= 1;
        assert!(matches!(
            check_link(digest, Some(&edited)),
            Err(ChainError::HashDiffers(_))
        ));
        assert!(matches!(
            check_link(digest, None),
            Err(ChainError::PreviousMissing(_))
        ));
        // A starting digest links to nothing.
        let mut start = digest.clone();
        start.previous_digest_s3_bucket = None;
        start.previous_digest_s3_object = None;
        start.previous_digest_signature = None;
        assert_eq!(check_link(&start, None), Ok(()));
        start.previous_digest_signature = Some("ab".into());
        assert_eq!(check_link(&start, None), Err(ChainError::Incomplete));
    }
}
