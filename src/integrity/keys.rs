//! The public keys that verify digest signatures: where they come from
//! (`cloudtrail:ListPublicKeys`, or the JSON `aws cloudtrail list-public-keys`
//! prints, for offline use) and the [`KeyRing`] that caches them.
//!
//! CloudTrail signs with one key pair per region and rotates it; a digest names
//! its key by fingerprint (`digestPublicKeyFingerprint`). ListPublicKeys returns
//! the keys of a time range, each with its fingerprint (AWS computes it as the
//! MD5 of the DER key, as its documented sample shows; this module never
//! computes it, it only matches the fingerprints AWS gives). The key value is DER:
//! PKCS #1 `RSAPublicKey` as documented, and AWS's own sample response also holds
//! a `SubjectPublicKeyInfo`, so both are read.
//!
//! The ring asks its source once per region and hour of digests it has not seen
//! a key for, and keeps every key it was given for the life of the process (a
//! Lambda cold start): a busy function verifies thousands of digests with a handful
//! of calls.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::PublicKey as RsaPublicKey;
use serde_json::Value;

use crate::aws_error::{classify, Cause};
use crate::time::parse_event_time;

/// One key as ListPublicKeys gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyRecord {
    pub fingerprint: String,
    /// DER: PKCS #1 `RSAPublicKey` or `SubjectPublicKeyInfo`.
    pub der: Vec<u8>,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
}

impl PublicKeyRecord {
    /// The RSA key the DER value holds.
    pub fn rsa_key(&self) -> Result<RsaPublicKey, String> {
        RsaPublicKey::from_pkcs1_der(&self.der).or_else(|pkcs1| {
            RsaPublicKey::from_public_key_der(&self.der).map_err(|spki| {
                format!("neither PKCS #1 ({pkcs1}) nor SubjectPublicKeyInfo ({spki})")
            })
        })
    }
}

/// Why keys could not be had.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The call to ListPublicKeys failed (throttled, denied, ...).
    #[error("cloudtrail:ListPublicKeys in {region}: {message} ({})", cause.label())]
    List {
        region: String,
        cause: Cause,
        message: String,
    },
    /// A public-keys file that is not what `aws cloudtrail list-public-keys` prints.
    #[error("{file}: {problem}")]
    File { file: String, problem: String },
}

impl KeyError {
    /// The AWS cause, for a failed call.
    pub fn cause(&self) -> Cause {
        match self {
            KeyError::List { cause, .. } => *cause,
            KeyError::File { .. } => Cause::Other,
        }
    }
}

/// Where keys come from.
#[async_trait]
pub trait PublicKeySource: Send + Sync {
    /// The keys CloudTrail used in `region` to sign digests between `start_ms` and
    /// `end_ms` (epoch ms).
    async fn list(
        &self,
        region: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<PublicKeyRecord>, KeyError>;
}

/// A fixed list (a `--public-keys` file, tests): every key, whatever the region
/// and range; the fingerprint picks the key.
#[derive(Debug, Clone, Default)]
pub struct StaticKeys(pub Vec<PublicKeyRecord>);

#[async_trait]
impl PublicKeySource for StaticKeys {
    async fn list(&self, _: &str, _: i64, _: i64) -> Result<Vec<PublicKeyRecord>, KeyError> {
        Ok(self.0.clone())
    }
}

impl StaticKeys {
    /// Reads the JSON of `aws cloudtrail list-public-keys` (`PublicKeyList`, or the
    /// `publicKeyList` of older CLI versions; times as ISO 8601 or epoch seconds;
    /// `Value` base64).
    pub fn parse(file: &str, text: &str) -> Result<StaticKeys, KeyError> {
        let problem = |problem: String| KeyError::File {
            file: file.to_owned(),
            problem,
        };
        let doc: Value =
            serde_json::from_str(text).map_err(|e| problem(format!("not JSON: {e}")))?;
        let list = doc
            .get("PublicKeyList")
            .or_else(|| doc.get("publicKeyList"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                problem("no PublicKeyList array (expected the output of aws cloudtrail list-public-keys)".into())
            })?;
        let mut keys = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let text = |name: &str| item.get(name).and_then(Value::as_str);
            let fingerprint = text("Fingerprint")
                .ok_or_else(|| problem(format!("key {i} has no Fingerprint string")))?;
            let value =
                text("Value").ok_or_else(|| problem(format!("key {i} has no Value string")))?;
            let der = aws_smithy_types::base64::decode(value).map_err(|e| {
                problem(format!("key {i} ({fingerprint}): Value is not base64: {e}"))
            })?;
            let time = |name: &str| -> Result<Option<i64>, KeyError> {
                match item.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => key_time(v).map(Some).ok_or_else(|| {
                        problem(format!("key {i} ({fingerprint}): {name} {v} is not a time"))
                    }),
                }
            };
            keys.push(PublicKeyRecord {
                fingerprint: fingerprint.to_owned(),
                der,
                valid_from_ms: time("ValidityStartTime")?,
                valid_until_ms: time("ValidityEndTime")?,
            });
        }
        Ok(StaticKeys(keys))
    }
}

/// A key time: epoch seconds (number or numeric string) or RFC 3339 with or
/// without an offset.
fn key_time(value: &Value) -> Option<i64> {
    use aws_smithy_types::date_time::{DateTime, Format};
    let seconds = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if let Some(s) = seconds.filter(|s| s.is_finite()) {
        return Some((s * 1000.0) as i64);
    }
    let text = value.as_str()?;
    parse_event_time(text).or_else(|| {
        DateTime::from_str(text, Format::DateTimeWithOffset)
            .ok()
            .and_then(|t| t.to_millis().ok())
    })
}

/// ListPublicKeys through the SDK, one client per region (keys are per region).
pub struct CloudTrailKeys {
    config: aws_config::SdkConfig,
    clients: Mutex<HashMap<String, aws_sdk_cloudtrail::Client>>,
}

impl CloudTrailKeys {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        CloudTrailKeys {
            config: config.clone(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_cloudtrail::config::Builder::from(&self.config)
                    .region(aws_sdk_cloudtrail::config::Region::new(region.to_owned()))
                    .build();
                aws_sdk_cloudtrail::Client::from_conf(config)
            })
            .clone()
    }
}

#[async_trait]
impl PublicKeySource for CloudTrailKeys {
    async fn list(
        &self,
        region: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<PublicKeyRecord>, KeyError> {
        use aws_smithy_types::DateTime;
        let client = self.client(region);
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let output = client
                .list_public_keys()
                .start_time(DateTime::from_millis(start_ms))
                .end_time(DateTime::from_millis(end_ms))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| KeyError::List {
                    region: region.to_owned(),
                    cause: classify(&e),
                    message: aws_sdk_cloudtrail::error::DisplayErrorContext(e).to_string(),
                })?;
            for key in output.public_key_list() {
                let (Some(fingerprint), Some(value)) = (key.fingerprint(), key.value()) else {
                    continue;
                };
                keys.push(PublicKeyRecord {
                    fingerprint: fingerprint.to_owned(),
                    der: value.as_ref().to_vec(),
                    valid_from_ms: key.validity_start_time().and_then(|t| t.to_millis().ok()),
                    valid_until_ms: key.validity_end_time().and_then(|t| t.to_millis().ok()),
                });
            }
            match output.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
    }
}

/// Why no key verifies a digest.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyLookupError {
    /// No key of the digest's region and hour has this fingerprint: a digest
    /// signed by someone else (or a key list that is incomplete).
    #[error("public key not found in region {region} for fingerprint {fingerprint}")]
    Unknown { region: String, fingerprint: String },
    /// The key listed under the fingerprint is not an RSA public key.
    #[error("public key {fingerprint} cannot be read: {problem}")]
    Unreadable {
        fingerprint: String,
        problem: String,
    },
    /// The keys could not be fetched: the digest is neither valid nor invalid yet.
    #[error(transparent)]
    Source(#[from] KeyError),
}

type Parsed = Result<Arc<RsaPublicKey>, String>;

/// Keys by fingerprint, fetched on demand and kept.
pub struct KeyRing {
    source: Arc<dyn PublicKeySource>,
    known: Mutex<HashMap<String, Parsed>>,
    /// (region, hour) already asked: a fingerprint missing there is unknown.
    asked: Mutex<HashSet<(String, i64)>>,
}

const HOUR_MS: i64 = 3_600_000;

impl KeyRing {
    pub fn new(source: Arc<dyn PublicKeySource>) -> Self {
        KeyRing {
            source,
            known: Mutex::new(HashMap::new()),
            asked: Mutex::new(HashSet::new()),
        }
    }

    fn known(&self, fingerprint: &str) -> Option<Parsed> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(fingerprint)
            .cloned()
    }

    /// The key a digest of `region` covering `[start_ms, end_ms]` names.
    pub async fn key(
        &self,
        region: &str,
        fingerprint: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Arc<RsaPublicKey>, KeyLookupError> {
        let unreadable = |problem: String| KeyLookupError::Unreadable {
            fingerprint: fingerprint.to_owned(),
            problem,
        };
        if let Some(parsed) = self.known(fingerprint) {
            return parsed.map_err(unreadable);
        }
        let hour = start_ms.div_euclid(HOUR_MS);
        let first_ask = self
            .asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((region.to_owned(), hour));
        if first_ask {
            match self.source.list(region, start_ms, end_ms).await {
                Ok(records) => {
                    let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
                    for record in records {
                        let parsed = record.rsa_key().map(Arc::new);
                        known.entry(record.fingerprint).or_insert(parsed);
                    }
                }
                Err(e) => {
                    // Not asked after all: the next digest tries again.
                    self.asked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&(region.to_owned(), hour));
                    return Err(e.into());
                }
            }
        }
        match self.known(fingerprint) {
            Some(parsed) => parsed.map_err(unreadable),
            None => Err(KeyLookupError::Unknown {
                region: region.to_owned(),
                fingerprint: fingerprint.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// AWS's documented `list-public-keys` sample: two PKCS #1 keys and one
    /// SubjectPublicKeyInfo, times as epoch-second strings, `publicKeyList`.
    const AWS_SAMPLE: &str = r#"{
    "publicKeyList": [
        {
            "ValidityStartTime": "1436317441.0",
            "ValidityEndTime": "1438909441.0",
            "Value": "MIIBCgKCAQEAn11L2YZ9h7onug2ILi1MWyHiMRsTQjfWE+pHVRLk1QjfWhirG+lpOa8NrwQ/r7Ah5bNL6HepznOU9XTDSfmmnP97mqyc7z/upfZdS/AHhYcGaz7n6Wc/RRBU6VmiPCrAUojuSk6/GjvA8iOPFsYDuBtviXarvuLPlrT9kAd4Lb+rFfR5peEgBEkhlzc5HuWO7S0y+KunqxX6jQBnXGMtxmPBPP0FylgWGNdFtks/4YSKcgqwH0YDcawP9GGGDAeCIqPWIXDLG1jOjRRzWfCmD0iJUkz8vTsn4hq/5ZxRFE7UBAUiVcGbdnDdvVfhF9C3dQiDq3k7adQIziLT0cShgQIDAQAB",
            "Fingerprint": "8eba5db5bea9b640d1c96a77256fe7f2"
        },
        {
            "ValidityStartTime": "1434589370.0",
            "ValidityEndTime": "1437181370.0",
            "Value": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqlzPJbvZJ42UdcmLfPUqXYNfOs6I8lCfao/tOs8CmzPOEdtLWugB9xoIUz78qVHdKIqxbaG4jWHfJBiOSSFBM0lt8cdVo4TnRa7oG9io5pysS6DJhBBAeXsicufsiFJR+wrUNh8RSLxL4k6G1+BhLX20tJkZ/erT97tDGBujAelqseGg3vPZbTx9SMfOLN65PdLFudLP7Gat0Z9p5jw/rjpclKfo9Bfc3heeBxWGKwBBOKnFAaN9V57pOaosCvPKmHd9bg7jsQkI9Xp22IzGLsTFJZYVA3KiTAElDMu80iFXPHEq9hKNbt9e4URFam+1utKVEiLkR2disdCmPTK0VQIDAQAB",
            "Fingerprint": "31e8b5433410dfb61a9dc45cc65b22ff"
        }
    ]
}"#;

    #[test]
    fn aws_documented_keys_are_read_in_both_der_forms() {
        let keys = StaticKeys::parse("sample.json", AWS_SAMPLE).unwrap().0;
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].fingerprint, "8eba5db5bea9b640d1c96a77256fe7f2");
        assert_eq!(keys[0].valid_from_ms, Some(1_436_317_441_000));
        for key in &keys {
            let rsa = key.rsa_key().unwrap();
            assert_eq!(
                rsa::traits::PublicKeyParts::size(&rsa),
                256,
                "2048-bit keys"
            );
        }
        let iso = r#"{"PublicKeyList":[{"Value":"MIIBCgKCAQEAn11L2YZ9h7onug2ILi1MWyHiMRsTQjfWE+pHVRLk1QjfWhirG+lpOa8NrwQ/r7Ah5bNL6HepznOU9XTDSfmmnP97mqyc7z/upfZdS/AHhYcGaz7n6Wc/RRBU6VmiPCrAUojuSk6/GjvA8iOPFsYDuBtviXarvuLPlrT9kAd4Lb+rFfR5peEgBEkhlzc5HuWO7S0y+KunqxX6jQBnXGMtxmPBPP0FylgWGNdFtks/4YSKcgqwH0YDcawP9GGGDAeCIqPWIXDLG1jOjRRzWfCmD0iJUkz8vTsn4hq/5ZxRFE7UBAUiVcGbdnDdvVfhF9C3dQiDq3k7adQIziLT0cShgQIDAQAB","ValidityStartTime":"2015-07-08T01:04:01+00:00","Fingerprint":"f"}]}"#;
        let keys = StaticKeys::parse("iso.json", iso).unwrap().0;
        assert_eq!(keys[0].valid_from_ms, Some(1_436_317_441_000));
    }

    #[test]
    fn bad_key_files_name_the_file_and_the_key() {
        for (text, expected) in [
            ("nope", "not JSON"),
            ("{}", "no PublicKeyList"),
            (
                r#"{"PublicKeyList":[{"Value":"AA=="}]}"#,
                "key 0 has no Fingerprint",
            ),
            (
                r#"{"PublicKeyList":[{"Fingerprint":"f","Value":"%%"}]}"#,
                "not base64",
            ),
            (
                r#"{"PublicKeyList":[{"Fingerprint":"f","Value":"AA==","ValidityEndTime":"soon"}]}"#,
                "ValidityEndTime",
            ),
        ] {
            let error = StaticKeys::parse("keys.json", text)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("keys.json: ") && error.contains(expected),
                "{error}"
            );
        }
        let garbage = PublicKeyRecord {
            fingerprint: "f".into(),
            der: vec![1, 2, 3],
            valid_from_ms: None,
            valid_until_ms: None,
        };
        assert!(garbage.rsa_key().unwrap_err().contains("PKCS #1"));
    }

    struct Counting(StaticKeys, AtomicUsize);

    #[async_trait]
    impl PublicKeySource for Counting {
        async fn list(&self, r: &str, s: i64, e: i64) -> Result<Vec<PublicKeyRecord>, KeyError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.list(r, s, e).await
        }
    }

    #[tokio::test]
    async fn the_ring_asks_once_per_region_and_hour() {
        let source = Arc::new(Counting(
            StaticKeys::parse("s", AWS_SAMPLE).unwrap(),
            AtomicUsize::new(0),
        ));
        let ring = KeyRing::new(source.clone());
        let fp = "31e8b5433410dfb61a9dc45cc65b22ff";
        ring.key("us-east-1", fp, 0, HOUR_MS).await.unwrap();
        ring.key("eu-west-1", fp, 0, HOUR_MS).await.unwrap();
        assert_eq!(
            source.1.load(Ordering::Relaxed),
            1,
            "known keys are not fetched again"
        );
        let unknown = ring.key("us-east-1", "0000", 0, HOUR_MS).await.unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "public key not found in region us-east-1 for fingerprint 0000"
        );
        assert_eq!(
            source.1.load(Ordering::Relaxed),
            1,
            "that hour was asked already"
        );
        ring.key("us-east-1", "0000", 5 * HOUR_MS, 6 * HOUR_MS)
            .await
            .unwrap_err();
        assert_eq!(source.1.load(Ordering::Relaxed), 2, "a new hour is asked");
    }
}
