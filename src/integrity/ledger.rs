//! The scanned-object ledger: which log files the function has read whole, with
//! the SHA-256 of their uncompressed content, and which digests it has checked.
//!
//! When a digest arrives, every file it lists is looked up here. A file that is
//! absent was never scanned (a lost notification, a function that was down) and
//! is scanned then; a file recorded with another hash was changed before or after
//! it was read. Forgetting is therefore safe: an entry that expired only costs a
//! second read of the file, never an alert, so entries live one day (longer than
//! Lambda's six hours of asynchronous retries and the hour a digest takes).
//!
//! A checked digest is recorded too, with its signature and hash: the next hour's
//! digest checks its link against that instead of fetching it again, and a
//! redelivered digest notification is recognised.
//!
//! In Lambda the ledger shares the dedup table (`TRAILWATCH_DEDUP_TABLE`): items
//! with `pk` `integrity#scanned#s3://…` (kind `scanned`) and `integrity#digest#s3://…`
//! (kind `digest`), each with the table's TTL attribute. They have no `suppressed`
//! attribute, so the dedup store's roll-up scan (filter `suppressed > 0`) never
//! returns them.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::chain::PreviousDigest;
use super::digest::{decode_hex, hex};
use crate::aws_error::{classify, Cause};
use crate::source::ObjectRef;

/// How long a scanned object is remembered.
pub const SCANNED_TTL_SECONDS: i64 = 24 * 3600;
/// How long a checked digest is remembered (the next digest needs it in an hour;
/// a late or redriven one days later).
pub const DIGEST_TTL_SECONDS: i64 = 3 * 24 * 3600;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("integrity ledger: {message} ({})", cause.label())]
pub struct LedgerError {
    pub cause: Cause,
    pub message: String,
}

#[async_trait]
pub trait ScanLedger: Send + Sync {
    /// `object` was read whole; its uncompressed content has `sha256`.
    async fn record_scan(&self, object: &ObjectRef, sha256: &[u8; 32]) -> Result<(), LedgerError>;
    /// The recorded hashes of those of `objects` that were scanned.
    async fn scanned(
        &self,
        objects: &[ObjectRef],
    ) -> Result<HashMap<ObjectRef, [u8; 32]>, LedgerError>;
    /// `digest` was checked; `what` is what the next digest's link needs.
    async fn record_digest(
        &self,
        digest: &ObjectRef,
        what: &PreviousDigest,
    ) -> Result<(), LedgerError>;
    /// A checked digest, if recorded.
    async fn digest(&self, digest: &ObjectRef) -> Result<Option<PreviousDigest>, LedgerError>;
}

/// The ledger of one process (tests, `trailwatch invoke`, Lambda without a table).
#[derive(Default)]
pub struct MemoryLedger {
    scanned: Mutex<HashMap<ObjectRef, [u8; 32]>>,
    digests: Mutex<HashMap<ObjectRef, PreviousDigest>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl ScanLedger for MemoryLedger {
    async fn record_scan(&self, object: &ObjectRef, sha256: &[u8; 32]) -> Result<(), LedgerError> {
        lock(&self.scanned).insert(object.clone(), *sha256);
        Ok(())
    }

    async fn scanned(
        &self,
        objects: &[ObjectRef],
    ) -> Result<HashMap<ObjectRef, [u8; 32]>, LedgerError> {
        let scanned = lock(&self.scanned);
        Ok(objects
            .iter()
            .filter_map(|o| scanned.get(o).map(|h| (o.clone(), *h)))
            .collect())
    }

    async fn record_digest(
        &self,
        digest: &ObjectRef,
        what: &PreviousDigest,
    ) -> Result<(), LedgerError> {
        lock(&self.digests).insert(digest.clone(), what.clone());
        Ok(())
    }

    async fn digest(&self, digest: &ObjectRef) -> Result<Option<PreviousDigest>, LedgerError> {
        Ok(lock(&self.digests).get(digest).cloned())
    }
}

/// The ledger in the dedup table.
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

const PK: &str = "pk";
const KIND: &str = "kind";
const SHA256: &str = "sha256";
const SIGNATURE: &str = "signature";
const TTL: &str = "ttl";
/// BatchGetItem's limit of keys per request.
const BATCH: usize = 100;
/// Rounds of `UnprocessedKeys` (throttled keys) retried before giving up.
const MAX_ROUNDS: u32 = 8;

fn scanned_pk(object: &ObjectRef) -> String {
    format!("integrity#scanned#{object}")
}

fn digest_pk(object: &ObjectRef) -> String {
    format!("integrity#digest#{object}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn sha_of(item: &HashMap<String, AttributeValue>) -> Option<[u8; 32]> {
    let text = item.get(SHA256)?.as_s().ok()?;
    decode_hex(text)?.try_into().ok()
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    fn error(&self, action: &str, cause: Cause, message: impl std::fmt::Display) -> LedgerError {
        LedgerError {
            cause,
            message: format!("DynamoDB table {}: {action}: {message}", self.table),
        }
    }

    async fn put(&self, item: HashMap<String, AttributeValue>) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                self.error(
                    "PutItem",
                    classify(&e),
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })
    }
}

fn ttl_in(seconds: i64) -> AttributeValue {
    AttributeValue::N((crate::time::now_ms() / 1000 + seconds).to_string())
}

#[async_trait]
impl ScanLedger for DynamoLedger {
    async fn record_scan(&self, object: &ObjectRef, sha256: &[u8; 32]) -> Result<(), LedgerError> {
        self.put(HashMap::from([
            (PK.to_owned(), s(scanned_pk(object))),
            (KIND.to_owned(), s("scanned")),
            (SHA256.to_owned(), s(hex(sha256))),
            (TTL.to_owned(), ttl_in(SCANNED_TTL_SECONDS)),
        ]))
        .await
    }

    async fn scanned(
        &self,
        objects: &[ObjectRef],
    ) -> Result<HashMap<ObjectRef, [u8; 32]>, LedgerError> {
        let by_pk: HashMap<String, &ObjectRef> =
            objects.iter().map(|o| (scanned_pk(o), o)).collect();
        let now_s = crate::time::now_ms() / 1000;
        let mut found = HashMap::new();
        let pks: Vec<&String> = by_pk.keys().collect();
        for chunk in pks.chunks(BATCH) {
            let keys = chunk
                .iter()
                .map(|pk| HashMap::from([(PK.to_owned(), s(pk.as_str()))]))
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|e| self.error("BatchGetItem", Cause::Rejected, e))?;
            for round in 0.. {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| {
                        self.error(
                            "BatchGetItem",
                            classify(&e),
                            aws_sdk_dynamodb::error::DisplayErrorContext(e),
                        )
                    })?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let pk = item.get(PK).and_then(|v| v.as_s().ok());
                    let live = item
                        .get(TTL)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok())
                        .is_none_or(|ttl| ttl > now_s);
                    if let (Some(object), Some(sha), true) =
                        (pk.and_then(|pk| by_pk.get(pk)), sha_of(&item), live)
                    {
                        found.insert((*object).clone(), sha);
                    }
                }
                match output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(rest) if !rest.keys().is_empty() => {
                        if round + 1 >= MAX_ROUNDS {
                            return Err(self.error(
                                "BatchGetItem",
                                Cause::Throttled,
                                "keys still unprocessed after retries",
                            ));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                        request = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    async fn record_digest(
        &self,
        digest: &ObjectRef,
        what: &PreviousDigest,
    ) -> Result<(), LedgerError> {
        let mut item = HashMap::from([
            (PK.to_owned(), s(digest_pk(digest))),
            (KIND.to_owned(), s("digest")),
            (SHA256.to_owned(), s(hex(&what.sha256))),
            (TTL.to_owned(), ttl_in(DIGEST_TTL_SECONDS)),
        ]);
        if let Some(signature) = &what.signature {
            item.insert(SIGNATURE.to_owned(), s(signature.as_str()));
        }
        self.put(item).await
    }

    async fn digest(&self, digest: &ObjectRef) -> Result<Option<PreviousDigest>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(digest_pk(digest)))
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "GetItem",
                    classify(&e),
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        let now_s = crate::time::now_ms() / 1000;
        Ok(output.item.and_then(|item| {
            let live = item
                .get(TTL)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .is_none_or(|ttl| ttl > now_s);
            Some(PreviousDigest {
                signature: item.get(SIGNATURE).and_then(|v| v.as_s().ok()).cloned(),
                sha256: sha_of(&item)?,
            })
            .filter(|_| live)
        }))
    }
}
