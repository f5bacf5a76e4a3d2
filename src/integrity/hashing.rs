//! A log file read once for both purposes: the rules run over its records and its
//! uncompressed bytes are hashed (SHA-256, as CloudTrail's digests list them) in
//! the same pass, through the scanner's observer hook. `sha2` picks the x86
//! SHA-NI or ARMv8 SHA2 instructions at run time.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::detect::{Detector, ObjectReport};
use crate::read::read_with;
use crate::source::{ObjectRef, ObjectSource, SourceError};

/// A scanned object and the SHA-256 of its uncompressed content (`None` when it
/// could not be read to the end: the hash of part of a file says nothing).
#[derive(Debug)]
pub struct HashedReport {
    pub report: ObjectReport,
    pub sha256: Option<[u8; 32]>,
}

/// Scans `raw` with the detector and hashes what it decodes.
pub fn detect_hashed(detector: &Detector, raw: impl std::io::Read, source: &str) -> HashedReport {
    let mut hasher = Sha256::new();
    let mut observe = |bytes: &[u8]| hasher.update(bytes);
    let report = detector.detect_observed(raw, source, Some(&mut observe));
    let sha256 = report.error.is_none().then(|| hasher.finalize().into());
    HashedReport { report, sha256 }
}

/// Fetches one object and scans and hashes it on a blocking thread, through
/// [`crate::read::read_with`] like every other read of a log file.
pub async fn read_object_hashed(
    source: &dyn ObjectSource,
    detector: &Arc<Detector>,
    object: &ObjectRef,
) -> Result<HashedReport, SourceError> {
    let detector = Arc::clone(detector);
    read_with(source, object, move |body, name| {
        detect_hashed(&detector, body, name)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Limits;
    use crate::rule::RuleSet;

    #[test]
    fn the_hash_is_of_the_uncompressed_bytes_whatever_the_path() {
        let detector = Detector::new(RuleSet::embedded(), Limits::default());
        let mut json = String::from("{\"Records\":[");
        for i in 0..20_000 {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!(
                "{{\"eventID\":\"{i}\",\"eventName\":\"GetObject\"}}"
            ));
        }
        json.push_str("]}");
        let expected: [u8; 32] = Sha256::digest(json.as_bytes()).into();
        // Plain, a small gzip (decoded whole) and a multi-read stream.
        let gz = crate::decode::test_gzip(json.as_bytes());
        for raw in [json.as_bytes().to_vec(), gz] {
            let hashed = detect_hashed(&detector, &raw[..], "x");
            assert!(hashed.report.error.is_none());
            assert_eq!(hashed.sha256, Some(expected));
        }
        assert!(json.len() > crate::decode::DECODED_BUFFER, "several reads");
        let broken = detect_hashed(&detector, &json.as_bytes()[..json.len() - 2], "x");
        assert!(broken.report.error.is_some());
        assert_eq!(broken.sha256, None, "no hash for a file read in part");
    }
}
