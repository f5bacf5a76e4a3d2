//! Dedup windows in DynamoDB, for Lambda mode (`TRAILWATCH_DEDUP_TABLE`): the
//! requests. Lambda instances run concurrently and forget everything on a cold
//! start, so the windows live in a table that every instance reads and writes with
//! conditional writes: read the key's item, plan with the pure state machine in
//! [`super::lease`], write on condition that the version is still the one read, and
//! plan again on conflict. The items are encoded in module `item`; the table, the
//! guarantees (one alert per window, at least once, redeliveries, expiry, roll-ups)
//! and their reasoning are in `docs/design.md` (*In DynamoDB*).

mod item;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use item::{Item, Kind, PK, VERSION};

use super::lease::{plan_confirm, plan_decide, plan_release, Step, StoredRollup, StoredWindow};
use super::{Claim, Decision, DedupError, DedupKey, DedupStore, Rollup};
use crate::aws_error::{classify, Cause};
use crate::time::now_ms;

pub use super::lease::SEEN_LIMIT;

/// How long a claimed alert (or a taken roll-up) belongs to the invocation that
/// claimed it: well above one SNS publication with the SDK's retries. It need not be
/// shorter than Lambda's retry delay: a retry of the claiming match that arrives
/// within the lease fails and is tried again later.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Conflicting writes tolerated for one decision before giving up with an error.
const MAX_ATTEMPTS: u32 = 60;

/// Windows and roll-up batches in a DynamoDB table.
pub struct DynamoStore {
    client: Client,
    table: String,
    lease_ms: i64,
    /// Roll-ups handed out by `take_rollups` and not confirmed yet, with their item
    /// key and lease end, so that `confirm_rollup` can delete the right item.
    taken: Mutex<Vec<(Rollup, String, i64)>>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            lease_ms: millis(DEFAULT_LEASE),
            taken: Mutex::new(Vec::new()),
        }
    }

    /// Changes the lease of claimed alerts and taken roll-ups (tests shorten it).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease_ms = millis(lease);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn error(&self, action: &str, cause: Cause, message: impl std::fmt::Display) -> DedupError {
        DedupError::new(
            cause,
            format!("DynamoDB table {}: {action}: {message}", self.table),
        )
    }

    fn taken(&self) -> std::sync::MutexGuard<'_, Vec<(Rollup, String, i64)>> {
        // Entries are pushed and removed whole: a poisoned lock holds consistent data.
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, pk: &str) -> Result<Option<Item>, DedupError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", classify(&e), DisplayErrorContext(e)))?;
        Ok(output.item)
    }

    fn parse_window(
        &self,
        key: &DedupKey,
        item: Option<Item>,
    ) -> Result<Option<StoredWindow>, DedupError> {
        item.map(|item| StoredWindow::from_item(&item))
            .transpose()
            .map_err(|e| self.error(&format!("item {:?}", key.storage_id()), Cause::Other, e))
    }

    /// Writes `item` if the stored item is as expected.
    async fn put(&self, item: Item, expect: Expect) -> Result<Written, DedupError> {
        let (condition, names, values) = expect.condition();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Yes),
            Err(e) if is_conflict(&e) => Ok(Written::Conflict(match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => failed.item.clone(),
                _ => None,
            })),
            Err(e) => Err(self.error("PutItem", classify(&e), DisplayErrorContext(e))),
        }
    }

    /// Writes a window item (if as expected) and a new roll-up item in one
    /// transaction.
    async fn put_with_rollup(
        &self,
        window: Item,
        expect: Expect,
        rollup: Item,
    ) -> Result<Written, DedupError> {
        let (condition, names, values) = expect.condition();
        let put = |item: Item, condition: &str, names, values| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| self.error("TransactWriteItems", Cause::Rejected, e))
        };
        let items = vec![
            put(window, &condition, names, values)?,
            put(rollup, Expect::Absent.condition().0.as_str(), None, None)?,
        ];
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Yes),
            Err(e) if is_transaction_conflict(&e) => Ok(Written::Conflict(None)),
            Err(e) => Err(self.error("TransactWriteItems", classify(&e), DisplayErrorContext(e))),
        }
    }

    /// Read, plan, conditional write; again on conflict.
    async fn update_window<T>(
        &self,
        key: &DedupKey,
        mut plan: impl FnMut(Option<&StoredWindow>, i64) -> Result<Step<T>, DedupError>,
    ) -> Result<T, DedupError> {
        let pk = key.storage_id();
        // The item as a failed write found it, when the service said: no need to read it.
        let mut known: Option<Item> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let item = match known.take() {
                Some(item) => Some(item),
                None => self.get(&pk).await?,
            };
            let stored = self.parse_window(key, item)?;
            let now = now_ms();
            let (answer, next, rollup) = match plan(stored.as_ref(), now)? {
                Step::Done(answer) => return Ok(answer),
                Step::Write {
                    answer,
                    next,
                    rollup,
                } => (answer, next, rollup),
            };
            let expect = stored
                .as_ref()
                .map_or(Expect::Absent, |s| Expect::Version(s.version));
            let item = next.to_item(key);
            let written = match rollup {
                None => self.put(item, expect).await?,
                Some(window) => {
                    let from_version = stored.as_ref().map_or(0, |s| s.version);
                    let batch = StoredRollup::cut(key, window, now, from_version, None);
                    self.put_with_rollup(item, expect, batch.to_item()).await?
                }
            };
            match written {
                Written::Yes => return Ok(answer),
                Written::Conflict(current) => known = current,
            }
            tracing::debug!(
                key = %key,
                attempt,
                "dedup item changed concurrently, deciding again"
            );
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(self.error(
            &format!("key {:?}", key.to_string()),
            Cause::Throttled,
            format!("gave up after {MAX_ATTEMPTS} conflicting concurrent writes"),
        ))
    }

    /// Every item with suppressed matches: windows to cut, batches to hand out.
    async fn scan_suppressed(&self) -> Result<Vec<Item>, DedupError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("#s > :zero")
                .expression_attribute_names("#s", "suppressed")
                .expression_attribute_values(":zero", item::number(0))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.error("Scan", classify(&e), DisplayErrorContext(e)))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Cuts a closed window's suppressed matches into a leased roll-up batch.
    async fn cut_window(
        &self,
        stored: StoredWindow,
        key: &DedupKey,
        now: i64,
    ) -> Result<Option<Rollup>, DedupError> {
        let mut next = stored.clone();
        next.window.clear_suppressed();
        next.version = stored.version + 1;
        let batch = StoredRollup::cut(
            key,
            stored.window,
            now,
            stored.version,
            Some(now + self.lease_ms),
        );
        let written = self
            .put_with_rollup(
                next.to_item(key),
                Expect::Version(stored.version),
                batch.to_item(),
            )
            .await?;
        Ok(matches!(written, Written::Yes).then(|| self.hand_out(batch)))
    }

    /// Leases a pending roll-up batch to this flush, unless another flush holds it.
    async fn take_batch(
        &self,
        stored: StoredRollup,
        now: i64,
    ) -> Result<Option<Rollup>, DedupError> {
        if stored.taken_until_ms > now {
            return Ok(None);
        }
        let mut next = stored.clone();
        next.taken_until_ms = now + self.lease_ms;
        next.version = stored.version + 1;
        let written = self
            .put(next.to_item(), Expect::Version(stored.version))
            .await?;
        Ok(matches!(written, Written::Yes).then(|| self.hand_out(next)))
    }

    fn hand_out(&self, batch: StoredRollup) -> Rollup {
        let rollup = Rollup {
            key: batch.key,
            window: batch.window,
        };
        self.taken()
            .push((rollup.clone(), batch.pk, batch.taken_until_ms));
        rollup
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// "Full jitter" exponential backoff, starting at about one request's latency, so
/// that writers that just collided on a key do not collide again at once.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = (5u64 << attempt.min(5)).min(100); // 5, 10, 20, 40, 80, 100 ms
    Duration::from_micros(fastrand::u64(..cap_ms * 1000))
}

fn is_conflict<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    matches!(
        e.as_service_error().and_then(|s| s.code()),
        Some("ConditionalCheckFailedException" | "TransactionConflictException")
    )
}

fn is_transaction_conflict(e: &SdkError<TransactWriteItemsError>) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
            cancel.cancellation_reasons().iter().all(|r| {
                matches!(
                    r.code(),
                    None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
        _ => false,
    }
}

/// How a conditional write ended.
enum Written {
    Yes,
    /// Another writer was first; the item as the failed condition saw it, when the
    /// service returned it.
    Conflict(Option<Item>),
}

/// What the conditional write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Absent,
    Version(u64),
}

type Names = Option<HashMap<String, String>>;
type Values = Option<HashMap<String, AttributeValue>>;

impl Expect {
    fn condition(self) -> (String, Names, Values) {
        match self {
            Expect::Absent => (format!("attribute_not_exists({PK})"), None, None),
            Expect::Version(v) => (
                "#version = :version".into(),
                Some(HashMap::from([("#version".into(), VERSION.into())])),
                Some(HashMap::from([(":version".into(), item::number(v))])),
            ),
        }
    }
}

#[async_trait]
impl DedupStore for DynamoStore {
    async fn decide(&self, claim: &Claim) -> Result<Decision, DedupError> {
        let lease = self.lease_ms;
        self.update_window(&claim.key, |stored, now| {
            plan_decide(stored, claim, now, lease)
        })
        .await
    }

    async fn release(&self, claim: &Claim, decision: Decision) -> Result<(), DedupError> {
        self.update_window(&claim.key, |stored, now| {
            Ok(plan_release(stored, claim, decision, now))
        })
        .await
    }

    async fn confirm(&self, claim: &Claim, decision: Decision) -> Result<(), DedupError> {
        self.update_window(&claim.key, |stored, _| {
            Ok(plan_confirm(stored, claim, decision))
        })
        .await
    }

    async fn take_rollups(&self, now_ms: i64, all: bool) -> Result<Vec<Rollup>, DedupError> {
        let wall = crate::time::now_ms();
        // Leases that ran out are handed out again by a later flush.
        self.taken().retain(|(_, _, until)| *until > wall);
        let mut out = Vec::new();
        for item in self.scan_suppressed().await? {
            let taken = match item::kind(&item) {
                Some(Kind::Window) => match (item::key(&item), StoredWindow::from_item(&item)) {
                    (Ok(key), Ok(stored)) if all || stored.window.end_ms() <= now_ms => {
                        self.cut_window(stored, &key, wall).await?
                    }
                    (Ok(_), Ok(_)) => None,
                    (key, stored) => {
                        tracing::warn!(item = ?item::pk(&item), key = ?key.err(), error = ?stored.err(), "unreadable dedup window item skipped");
                        None
                    }
                },
                Some(Kind::Rollup) => match StoredRollup::from_item(&item) {
                    Ok(stored) => self.take_batch(stored, wall).await?,
                    Err(e) => {
                        tracing::warn!(item = ?item::pk(&item), error = %e, "unreadable roll-up item skipped");
                        None
                    }
                },
                _ => None,
            };
            out.extend(taken);
        }
        out.sort_by(|a, b| (&a.key, a.window.open_ms).cmp(&(&b.key, b.window.open_ms)));
        Ok(out)
    }

    async fn confirm_rollup(&self, rollup: &Rollup) -> Result<(), DedupError> {
        let pk = {
            let mut taken = self.taken();
            match taken.iter().position(|(r, _, _)| r == rollup) {
                Some(at) => taken.remove(at).1,
                None => return Ok(()),
            }
        };
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("DeleteItem", classify(&e), DisplayErrorContext(e)))
    }
}
