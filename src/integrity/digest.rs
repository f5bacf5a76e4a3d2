//! The digest file: what CloudTrail signs every hour for each account and region,
//! read into typed fields, and where such a file lives in the bucket.
//!
//! A digest lists every log file CloudTrail delivered during its hour with the
//! SHA-256 of the file's uncompressed content, and names the previous digest of
//! its trail (bucket, key, signature, hash), which chains the hours together. Its
//! own signature is not in the file but in the object's metadata
//! (`x-amz-meta-signature`, `x-amz-meta-signature-algorithm`), over a signing
//! string built from a few of these fields ([`Digest::signing_string`]).
//!
//! Layout (AWS's "CloudTrail digest file structure"):
//!
//! ```text
//! [prefix/]AWSLogs/[o-org/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/
//!     <account>_CloudTrail-Digest_<region>_<trail>_<home-region>_<YYYYMMDDTHHMMSSZ>.json.gz
//! ```
//!
//! Nothing here trusts the file: every field that is read is checked, and a
//! digest that cannot be read is an error naming the object and the cause.

use std::io::Read;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::time::parse_event_time;

/// Inflated size allowed for one digest. A digest lists one hour of one account
/// and region (a few hundred bytes per log file): 64 MiB is far above any real one
/// and bounds what a planted file can make us allocate.
pub const MAX_DIGEST_BYTES: u64 = 64 << 20;

/// A digest file's content (every field CloudTrail documents; unknown ones are
/// ignored so that a new field never fails validation).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    #[serde(default)]
    pub digest_signature_algorithm: Option<String>,
    #[serde(default)]
    pub newest_event_time: Option<String>,
    #[serde(default)]
    pub oldest_event_time: Option<String>,
    /// The `previousDigest*` fields are `null` in a trail's starting digest (and
    /// after validation or logging was turned off and on again).
    #[serde(default)]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(default)]
    pub previous_digest_s3_object: Option<String>,
    #[serde(default)]
    pub previous_digest_hash_value: Option<String>,
    #[serde(default)]
    pub previous_digest_hash_algorithm: Option<String>,
    #[serde(default)]
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<ListedLogFile>,
}

/// One log file a digest lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedLogFile {
    pub s3_bucket: String,
    pub s3_object: String,
    /// Hex SHA-256 of the uncompressed content.
    pub hash_value: String,
    #[serde(default)]
    pub hash_algorithm: Option<String>,
    #[serde(default)]
    pub newest_event_time: Option<String>,
    #[serde(default)]
    pub oldest_event_time: Option<String>,
}

/// Why a digest's bytes are not a digest.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not gzip: {0}")]
    Gzip(String),
    #[error("larger than {MAX_DIGEST_BYTES} bytes once inflated")]
    TooLarge,
    #[error("not a digest document: {0}")]
    Json(String),
    #[error("{field} {value:?} is not {expected}")]
    Field {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// A digest as read from the bucket: its fields, the inflated bytes' SHA-256 (it
/// enters the signing string, and the next digest's `previousDigestHashValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDigest {
    pub digest: Digest,
    pub sha256: [u8; 32],
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Digest {
    /// Inflates (gzip, as CloudTrail delivers it; plain JSON is accepted too) and
    /// parses a digest object's bytes.
    pub fn parse(bytes: &[u8]) -> Result<ParsedDigest, FormatError> {
        let inflated = inflate(bytes)?;
        Self::parse_inflated(&inflated)
    }

    /// Parses the inflated document.
    pub fn parse_inflated(inflated: &[u8]) -> Result<ParsedDigest, FormatError> {
        let digest: Digest =
            serde_json::from_slice(inflated).map_err(|e| FormatError::Json(e.to_string()))?;
        let time = |field: &'static str, value: &str| {
            parse_event_time(value).ok_or_else(|| FormatError::Field {
                field,
                value: value.to_owned(),
                expected: "an RFC 3339 UTC time",
            })
        };
        let start_ms = time("digestStartTime", &digest.digest_start_time)?;
        let end_ms = time("digestEndTime", &digest.digest_end_time)?;
        for file in &digest.log_files {
            if decode_hex(&file.hash_value).is_none_or(|h| h.len() != 32) {
                return Err(FormatError::Field {
                    field: "logFiles[].hashValue",
                    value: file.hash_value.clone(),
                    expected: "a hex SHA-256",
                });
            }
        }
        Ok(ParsedDigest {
            digest,
            sha256: Sha256::digest(inflated).into(),
            start_ms,
            end_ms,
        })
    }

    /// The string CloudTrail signs (AWS's "custom implementation of CloudTrail log
    /// file integrity validation", step D):
    ///
    /// ```text
    /// digestEndTime \n digestS3Bucket/digestS3Object \n hex(SHA-256(inflated digest)) \n previousDigestSignature
    /// ```
    ///
    /// with `null` for the previous signature of a starting digest.
    pub fn signing_string(&self, inflated_sha256: &[u8; 32]) -> String {
        format!(
            "{}\n{}/{}\n{}\n{}",
            self.digest_end_time,
            self.digest_s3_bucket,
            self.digest_s3_object,
            hex(inflated_sha256),
            self.previous_digest_signature.as_deref().unwrap_or("null")
        )
    }

    /// The previous digest this one names, when it names one.
    pub fn previous(&self) -> Option<(&str, &str)> {
        match (
            &self.previous_digest_s3_bucket,
            &self.previous_digest_s3_object,
        ) {
            (Some(bucket), Some(key)) => Some((bucket, key)),
            _ => None,
        }
    }
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_DIGEST_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| FormatError::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_DIGEST_BYTES {
        return Err(FormatError::TooLarge);
    }
    Ok(out)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Hex (either case) to bytes; `None` for anything else.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The parts of a digest's key. Digests of one trail in one account and region
/// form one chain ([`DigestKey::chain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestKey<'a> {
    /// Everything up to and including `CloudTrail-Digest/<region>/`.
    pub folder: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub trail: &'a str,
    pub home_region: &'a str,
    /// `YYYYMMDDTHHMMSSZ`: the digest's end time.
    pub stamp: &'a str,
    /// The end time (epoch ms) the stamp says.
    pub end_ms: i64,
}

impl<'a> DigestKey<'a> {
    /// Parses `…AWSLogs/[o-org/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/<file>`.
    pub fn parse(key: &'a str) -> Option<DigestKey<'a>> {
        let marker = "/CloudTrail-Digest/";
        let at = key.find(marker)?;
        let account_start = key[..at].rfind('/').map_or(0, |i| i + 1);
        let account = &key[account_start..at];
        let rest = &key[at + marker.len()..];
        let (region, rest) = rest.split_once('/')?;
        let folder = &key[..at + marker.len() + region.len() + 1];
        let file = rest.rsplit('/').next()?;
        let stem = file.strip_suffix(".json.gz")?;
        let (head, stamp) = stem.rsplit_once('_')?;
        let (head, home_region) = head.rsplit_once('_')?;
        let trail = head.strip_prefix(&format!("{account}_CloudTrail-Digest_{region}_"))?;
        let end_ms = parse_stamp(stamp)?;
        let valid = account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !region.is_empty()
            && !trail.is_empty();
        valid.then_some(DigestKey {
            folder,
            account,
            region,
            trail,
            home_region,
            stamp,
            end_ms,
        })
    }

    /// One trail's digests in one account and region: what a chain links.
    pub fn chain(&self) -> String {
        format!("{}{}_{}", self.folder, self.trail, self.home_region)
    }
}

/// `20150817T150131Z` (digest keys) or `20150817T1445Z` (log keys) -> epoch ms.
pub fn parse_stamp(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    let ok = (b.len() == 16 || b.len() == 14)
        && b[8] == b'T'
        && b[b.len() - 1] == b'Z'
        && b[..8]
            .iter()
            .chain(&b[9..b.len() - 1])
            .all(u8::is_ascii_digit);
    if !ok {
        return None;
    }
    let seconds = if b.len() == 16 { &stamp[13..15] } else { "00" };
    parse_event_time(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        seconds
    ))
}

/// The time stamp in a log file's name (`…_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz`),
/// which CloudTrail documents as the time of the file's newest event.
pub fn log_key_time(key: &str) -> Option<i64> {
    let file = key.rsplit('/').next()?;
    file.split('_').find_map(|part| {
        (part.len() == 14 && part.as_bytes()[8] == b'T')
            .then(|| parse_stamp(part))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_keys_name_their_chain_and_time() {
        let key = "p/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_my_trail-1_us-west-2_20150817T150131Z.json.gz";
        let k = DigestKey::parse(key).unwrap();
        assert_eq!(
            (k.account, k.region, k.trail, k.home_region, k.stamp),
            (
                "111122223333",
                "us-east-2",
                "my_trail-1",
                "us-west-2",
                "20150817T150131Z"
            )
        );
        assert_eq!(k.end_ms, parse_event_time("2015-08-17T15:01:31Z").unwrap());
        assert_eq!(
            k.chain(),
            "p/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail-Digest/us-east-2/my_trail-1_us-west-2"
        );
        for bad in [
            "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/x.json.gz",
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/garbage.json.gz",
            "AWSLogs/1111/CloudTrail-Digest/us-east-2/2015/08/17/1111_CloudTrail-Digest_us-east-2_t_us-east-2_20150817T150131Z.json.gz",
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_t_us-east-2_2015X817T150131Z.json.gz",
        ] {
            assert!(DigestKey::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            log_key_time("AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz"),
            parse_event_time("2015-08-17T14:45:00Z")
        );
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(decode_hex("00ABff"), Some(vec![0, 0xab, 0xff]));
        for bad in ["0", "zz", "0g", "é1"] {
            assert_eq!(decode_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn garbage_is_a_format_error_never_a_panic() {
        let gzip_of = |text: &[u8]| crate::decode::test_gzip(text);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "not a digest"),
            (b"\x1f\x8b\x08garbage".to_vec(), "not gzip"),
            (gzip_of(b"[1,2]"), "not a digest"),
            (gzip_of(b"{\"awsAccountId\":\"1\"}"), "missing field"),
            (
                gzip_of(br#"{"awsAccountId":"1","digestStartTime":"x","digestEndTime":"2015-08-17T15:01:31Z","digestS3Bucket":"b","digestS3Object":"k","digestPublicKeyFingerprint":"f","logFiles":[]}"#),
                "digestStartTime",
            ),
            (
                gzip_of(br#"{"awsAccountId":"1","digestStartTime":"2015-08-17T14:01:31Z","digestEndTime":"2015-08-17T15:01:31Z","digestS3Bucket":"b","digestS3Object":"k","digestPublicKeyFingerprint":"f","logFiles":[{"s3Bucket":"b","s3Object":"o","hashValue":"abc"}]}"#),
                "hashValue",
            ),
        ];
        for (bytes, expected) in cases {
            let error = Digest::parse(&bytes).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} (expected {expected})");
        }
    }
}
