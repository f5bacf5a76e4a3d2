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
