//! Nothing hides in a gap: CloudTrail's log file integrity validation, used for
//! detection.
//!
//! An attacker who can write to the trail bucket can delete or edit the log file
//! that recorded their export; a lost S3 notification or a function that was down
//! leaves a file unscanned just as surely. CloudTrail signs an hourly digest per
//! account and region that lists every log file it delivered with the SHA-256 of
//! its uncompressed content, chained to the previous digest. This module checks
//! those digests the way AWS documents ("custom implementations of CloudTrail log
//! file integrity validation"; `aws cloudtrail validate-logs` is the reference),
//! and makes every listed file count:
//!
//! - [`digest`]: the digest document and key layout, the signing string;
//! - [`keys`]: public keys (ListPublicKeys or a `--public-keys` file) and their cache;
//! - [`signature`]: SHA256withRSA verification;
//! - [`chain`]: the link from a digest to the previous one;
//! - [`verifier`]: one digest object checked on its own;
//! - [`hashing`]: a log file scanned and hashed in one pass;
//! - [`ledger`]: which log files were scanned, with their hash (DynamoDB in Lambda);
//! - [`watch`]: the Lambda side (digest deliveries checked, unscanned files scanned);
//! - [`audit`]: `trailwatch verify` over a bucket's history;
//! - [`alert`]: the integrity alert.
//!
//! `docs/integrity.md` has the details and what was checked against AWS's files.

pub mod alert;
pub mod audit;
pub mod chain;
pub mod digest;
pub mod hashing;
pub mod keys;
pub mod ledger;
pub mod signature;
pub mod verifier;
pub mod watch;

pub use watch::{IntegrityFailure, IntegrityWatch, Pipeline};

/// Signing for the tests: the throwaway key of `tests/data/integrity/` (AWS
/// publishes no private key; see the README there).
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::Arc;

    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer};
    use sha2::Sha256;

    use super::digest::{hex, Digest};
    use super::keys::{KeyRing, StaticKeys};

    pub const PUBLIC_KEYS: &str = include_str!("../../tests/data/integrity/public-keys.json");
    pub const FINGERPRINT: &str = "5c760abaa63b13867f5fc45e0598ab13";
    const KEY_PEM: &str = include_str!("../../tests/data/integrity/test-signing-key.pem");

    pub fn sign(bytes: &[u8]) -> String {
        let base64: String = KEY_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = aws_smithy_types::base64::decode(base64).expect("the test key is base64");
        let key = rsa::PrivateKey::from_pkcs1_der(&der).expect("the test key is PKCS #1");
        hex(&SigningKey::<Sha256>::new(key).sign(bytes).to_bytes())
    }

    pub fn ring() -> KeyRing {
        KeyRing::new(Arc::new(StaticKeys::parse("test", PUBLIC_KEYS).unwrap()))
    }

    /// A digest object as CloudTrail would deliver `json`: gzip, and the signature
    /// of its signing string.
    pub fn signed(json: &str) -> (Vec<u8>, String) {
        let parsed = Digest::parse_inflated(json.as_bytes()).expect("a test digest");
        let signature = sign(parsed.digest.signing_string(&parsed.sha256).as_bytes());
        (crate::decode::test_gzip(json.as_bytes()), signature)
    }
}
