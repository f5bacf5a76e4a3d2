//! Dedup windows in DynamoDB, for Lambda mode (`TRAILWATCH_DEDUP_TABLE`).
//!
//! Lambda instances run concurrently and forget everything on a cold start, so the
//! windows live in a table that every instance reads and writes with conditional
//! writes. The semantics are exactly those of [`super::transition`] (SPEC §4, event
//! time); this module only persists its result atomically and adds what a real
//! deployment needs: at-least-once delivery, roll-ups that survive crashes, and
//! items that expire.
//!
//! # Table
//!
//! Hash key `pk` (S), TTL attribute `ttl` (epoch seconds), as in `template.yaml`.
//!
//! **Window item**, one per dedup key, `pk` = the key's
//! [`storage_id`](super::DedupKey::storage_id) (`RuleID:region:account`):
//!
//! | attribute | meaning |
//! |---|---|
//! | `kind` | `window` |
//! | `rule_id`, `group_values` | the key: the rule and its `GroupBy` values (a list of strings), never parsed back from `pk` |
//! | `open_ms`, `window_ms`, `end_ms` | the window, in event time (epoch ms); `end_ms` is informational |
//! | `state` | `pending`: the window's alert is claimed and being published; `alerted`: its publication was confirmed |
//! | `lease_until_ms` | wall clock: until then a `pending` claim belongs to the invocation publishing it; after it (or `0` once released) the alert may be re-driven |
//! | `first_event_id` | the `eventID` that alerted for the window |
//! | `suppressed`, `first_suppressed_ms`, `last_suppressed_ms` | matches counted against the window since its last roll-up |
//! | `distinct` | their distinct values: a map from the rule's `RollupDistinct` names to string sets (at most [`MAX_DISTINCT`](super::MAX_DISTINCT) each, absent when empty) |
//! | `rule_name`, `severity`, `description`, `runbook`, `rollup_subject`, `group_by`, `distinct_headings` | what the window's roll-up needs of its rule ([`RollupSpec`]), so that it is published as the rule described it even once the rule is no longer loaded |
//! | `seen` | the last [`SEEN_LIMIT`] `eventID`s decided for the key, oldest first (redeliveries), as a JSON array in a string |
//! | `version` | every write is conditional on the version it read (optimistic concurrency) |
//! | `ttl` | `max(window end, wall clock) + 2 windows + 1 day`, in seconds |
//!
//! **Roll-up item**, one per batch of suppressed matches cut from a closed window,
//! `pk` = `<key>#rollup#<open_ms>#<cut time ms>-<version>`: `kind` = `rollup`,
//! `rule_id` and `group_values`, `key` (the display form, for people), the window's
//! fields as above, `taken_until_ms` (lease of the flush publishing it),
//! `version`, and `ttl` = cut time + 14 days. A batch is cut when a match opens a
//! new window (in the same transaction as the new window), or by the scheduled flush
//! once the window has ended; it is deleted when its publication is confirmed.
//!
//! # Deciding a match
//!
//! Read the key's item (strongly consistent) → plan with [`super::transition`] →
//! write the whole item on condition that `version` is still the one read (or that
//! the item is absent) → on `ConditionalCheckFailedException` plan again on the
//! item the failed write returns (`ReturnValuesOnConditionCheckFailure=ALL_OLD`,
//! one request less per conflict), after a short jittered wait. A match whose
//! `eventID` was seen needs no write. Whole-item writes keep the code one pure
//! function away from the in-memory store; the item stays a few KB.
//!
//! # Guarantees
//!
//! - **One alert per window.** A window is opened by exactly one successful
//!   conditional write, so of any number of concurrent invocations, cold or warm,
//!   exactly one gets [`Decision::Alert`] for it. The only other ways a window alerts
//!   again are a re-drive (next point), which carries the same window start and
//!   therefore the same `alertId`, and expiry (below).
//! - **At least once.** A window's alert is claimed `pending` with a lease
//!   ([`DEFAULT_LEASE`]). The pipeline then either confirms it
//!   ([`DedupStore::confirm`]: `alerted`) or, when the publication failed, releases
//!   it (lease set to `0`). A released claim, or one whose lease ran out (the
//!   instance crashed or timed out between claim and publication, or could not even
//!   reach DynamoDB to release), is re-driven by the next match of the window that
//!   is not a redelivery, or by the claiming match itself when Lambda retries it: that
//!   match alerts with the window's start. While the lease runs, a retry of the
//!   claiming match fails with an error so that Lambda tries again later, rather than
//!   being taken for a redelivery. When a confirmation is lost (publication done, the
//!   write failed), the alert can be sent a second time, with the same `alertId`.
//! - **Redeliveries.** A redelivered record is recognised (neither alerts nor counts)
//!   when its `eventID` is the window's `first_event_id` or among the last
//!   [`SEEN_LIMIT`] `eventID`s decided for the key. Older redeliveries still never
//!   open a window: `open_ms` never moves back and every decided record lies before
//!   the window end at the time, so an old record is either within one window before
//!   the current open or later (then suppressed: no alert, but counted once more in
//!   the roll-up), or more than one window older than the current open (then it
//!   alerts as a late record, with its own `eventTime` as window start: the same
//!   `alertId` as its first alert when it alerted the first time). That takes more
//!   than [`SEEN_LIMIT`] other matches of the same key in between.
//! - **Expiry.** DynamoDB's TTL deletes lazily (up to days later), so an item whose
//!   `ttl` has passed by the wall clock is treated as absent whether or not it has
//!   been deleted yet: a stale window never suppresses, and the answer does not
//!   depend on when the deletion happens. Its unreported suppressed matches are kept
//!   (cut to a roll-up item). `ttl` counts from the later of the window end and the
//!   wall clock at the last write, so backfills of old logs are deduplicated like
//!   live traffic; the one visible effect of expiry is that a replay of a key's
//!   records more than a day after the key's last activity alerts again.
//! - **Roll-ups.** A batch is cut once (conditional write), is returned by
//!   [`DedupStore::take_rollups`] to one flush at a time (lease), and is deleted by
//!   [`DedupStore::confirm_rollup`] after its publication; a batch whose publication
//!   failed or was never confirmed is returned again once its lease has run out, with
//!   the same `alertId`. Roll-up candidates are found with a filtered `Scan`
//!   (`suppressed > 0`): the table holds one item per (rule, region, account) plus the
//!   pending batches, small enough to scan every five minutes without an index.
//!
//! A late record (more than a window before the current open) alerts without
//! touching the window and is remembered only when its publication is confirmed: a
//! failed or abandoned late alert alerts again on retry; a redelivery that races with
//! its publication may alert twice, with the same `alertId`.
//!
//! A claim whose lease runs out with no later match of the window and no retry
//! left (the event went to the dead-letter queue) is not re-driven: the event in the
//! dead-letter queue and its alarm are the record of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

use super::{
    transition, Claim, Decision, DedupError, DedupKey, DedupStore, Rollup, Transition, Window,
};
use crate::rule::{RollupSpec, Severity};
use crate::time::{format_ms, now_ms};

/// How many `eventID`s a window item remembers for redelivery detection. At ~40
/// bytes each this keeps the item far below DynamoDB's 400 KB limit.
pub const SEEN_LIMIT: usize = 200;

/// How long a claimed alert (or a taken roll-up) belongs to the invocation that
/// claimed it: well above one SNS publication with the SDK's retries. It need not be
/// shorter than Lambda's retry delay: a retry of the claiming match that arrives
/// within the lease fails and is tried again later.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

const DAY_MS: i64 = 86_400_000;
/// Pending roll-up batches outlive a broken flush for this long.
const ROLLUP_RETENTION_MS: i64 = 14 * DAY_MS;
/// Conflicting writes tolerated for one decision before giving up with an error.
const MAX_ATTEMPTS: u32 = 60;

const PK: &str = "pk";
const TTL: &str = "ttl";
const VERSION: &str = "version";

type Item = HashMap<String, AttributeValue>;

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

    fn error(&self, action: &str, message: impl std::fmt::Display) -> DedupError {
        DedupError(format!(
            "DynamoDB table {}: {action}: {message}",
            self.table
        ))
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
            .map_err(|e| self.error("GetItem", DisplayErrorContext(e)))?;
        Ok(output.item)
    }

    fn parse_window(
        &self,
        key: &DedupKey,
        item: Option<Item>,
    ) -> Result<Option<StoredWindow>, DedupError> {
        item.map(|item| StoredWindow::from_item(&item))
            .transpose()
            .map_err(|e| self.error(&format!("item {:?}", key.storage_id()), e))
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
            Err(e) => Err(self.error("PutItem", DisplayErrorContext(e))),
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
                .map_err(|e| self.error("TransactWriteItems", e))
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
            Err(e) => Err(self.error("TransactWriteItems", DisplayErrorContext(e))),
        }
    }

    /// Read, plan, conditional write; again on conflict.
    async fn update_window<T>(
        &self,
        key: &DedupKey,
        mut plan: impl FnMut(Option<&StoredWindow>, i64) -> Result<Step<T>, DedupError>,
    ) -> Result<T, DedupError> {
        // The item as a failed write found it, when the service said: no need to read it.
        let mut known: Option<Item> = None;
        let pk = key.storage_id();
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
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.error("Scan", DisplayErrorContext(e)))?;
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
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let cap_ms = (5u64 << attempt.min(5)).min(100); // 5, 10, 20, 40, 80, 100 ms
    Duration::from_micros(hasher.finish() % (cap_ms * 1000))
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
                Some(HashMap::from([(":version".into(), number(v))])),
            ),
        }
    }
}

/// One round of a read-plan-write loop.
enum Step<T> {
    /// Nothing to write.
    Done(T),
    /// Write `next` (and cut `rollup` to a batch in the same transaction).
    Write {
        answer: T,
        next: Box<StoredWindow>,
        rollup: Option<Window>,
    },
}

/// Whether the window's alert is still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Alerted,
}

/// A window item.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredWindow {
    window: Window,
    state: State,
    lease_until_ms: i64,
    seen: Vec<String>,
    version: u64,
    ttl_secs: i64,
}

impl StoredWindow {
    fn is_expired(&self, now: i64) -> bool {
        self.ttl_secs.saturating_mul(1000) <= now
    }

    fn has_seen(&self, event_id: &str) -> bool {
        self.window.first_event_id == event_id || self.seen.iter().any(|id| id == event_id)
    }

    fn to_item(&self, key: &DedupKey) -> Item {
        let mut item = window_attributes(&self.window);
        item.insert(PK.into(), AttributeValue::S(key.storage_id()));
        key_attributes(&mut item, key);
        item.insert("kind".into(), AttributeValue::S("window".into()));
        let state = match self.state {
            State::Pending => "pending",
            State::Alerted => "alerted",
        };
        item.insert("state".into(), AttributeValue::S(state.into()));
        item.insert("lease_until_ms".into(), number(self.lease_until_ms));
        // One string holding a JSON array: ordered (the oldest are dropped first),
        // and one attribute rather than hundreds of typed list elements to encode.
        let seen = serde_json::to_string(&self.seen).unwrap_or_else(|_| "[]".into());
        item.insert("seen".into(), AttributeValue::S(seen));
        item.insert(VERSION.into(), number(self.version));
        item.insert(TTL.into(), number(self.ttl_secs));
        item
    }

    fn from_item(item: &Item) -> Result<StoredWindow, String> {
        let state = match text(item, "state")?.as_str() {
            "pending" => State::Pending,
            "alerted" => State::Alerted,
            other => return Err(format!("unknown state {other:?}")),
        };
        let seen = match item.get("seen") {
            None => Vec::new(),
            Some(AttributeValue::S(json)) => serde_json::from_str(json)
                .map_err(|e| format!("attribute seen is not a JSON array of strings: {e}"))?,
            Some(_) => return Err("attribute seen is not a string".into()),
        };
        Ok(StoredWindow {
            window: window_from(item)?,
            state,
            lease_until_ms: int(item, "lease_until_ms")?,
            seen,
            version: int(item, VERSION)?,
            ttl_secs: int(item, TTL)?,
        })
    }
}

/// A roll-up batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredRollup {
    pk: String,
    key: DedupKey,
    window: Window,
    taken_until_ms: i64,
    version: u64,
    ttl_secs: i64,
}

impl StoredRollup {
    /// A new batch of `window`'s suppressed matches, cut at wall-clock `now` from
    /// version `from_version` of the key's window item (unique per key).
    fn cut(
        key: &DedupKey,
        window: Window,
        now: i64,
        from_version: u64,
        taken_until_ms: Option<i64>,
    ) -> StoredRollup {
        StoredRollup {
            pk: format!(
                "{}#rollup#{}#{now}-{from_version}",
                key.storage_id(),
                window.open_ms
            ),
            key: key.clone(),
            window,
            taken_until_ms: taken_until_ms.unwrap_or(0),
            version: 1,
            ttl_secs: now.saturating_add(ROLLUP_RETENTION_MS) / 1000,
        }
    }

    fn to_item(&self) -> Item {
        let mut item = window_attributes(&self.window);
        item.insert(PK.into(), AttributeValue::S(self.pk.clone()));
        item.insert("kind".into(), AttributeValue::S("rollup".into()));
        item.insert("key".into(), AttributeValue::S(self.key.to_string()));
        key_attributes(&mut item, &self.key);
        item.insert("taken_until_ms".into(), number(self.taken_until_ms));
        item.insert(VERSION.into(), number(self.version));
        item.insert(TTL.into(), number(self.ttl_secs));
        item
    }

    fn from_item(item: &Item) -> Result<StoredRollup, String> {
        Ok(StoredRollup {
            pk: text(item, PK)?,
            key: key_from(item)?,
            window: window_from(item)?,
            taken_until_ms: int(item, "taken_until_ms")?,
            version: int(item, VERSION)?,
            ttl_secs: int(item, TTL)?,
        })
    }
}

fn number(n: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn text(item: &Item, name: &str) -> Result<String, String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        Some(_) => Err(format!("attribute {name} is not a string")),
        None => Err(format!("attribute {name} is missing")),
    }
}

fn int<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, String> {
    optional_int(item, name)?.ok_or_else(|| format!("attribute {name} is missing"))
}

fn optional_int<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| format!("attribute {name} is not a whole number: {n}")),
        Some(_) => Err(format!("attribute {name} is not a number")),
    }
}

fn string_set(item: &Item, name: &str) -> Result<BTreeSet<String>, String> {
    match item.get(name) {
        None => Ok(BTreeSet::new()),
        Some(AttributeValue::Ss(values)) => Ok(values.iter().cloned().collect()),
        Some(_) => Err(format!("attribute {name} is not a string set")),
    }
}

fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().cloned().map(AttributeValue::S).collect())
}

fn string_list(item: &Item, name: &str) -> Result<Vec<String>, String> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| {
                v.as_s()
                    .cloned()
                    .map_err(|_| format!("attribute {name} holds a non-string"))
            })
            .collect(),
        Some(_) => Err(format!("attribute {name} is not a list")),
    }
}

/// The dedup key as its parts: `rule_id` and `group_values`.
fn key_attributes(item: &mut Item, key: &DedupKey) {
    item.insert("rule_id".into(), AttributeValue::S(key.rule_id.clone()));
    item.insert("group_values".into(), strings(&key.values));
}

fn key_from(item: &Item) -> Result<DedupKey, String> {
    match item.get("group_values") {
        Some(AttributeValue::L(_)) => Ok(DedupKey::new(
            text(item, "rule_id")?,
            string_list(item, "group_values")?,
        )),
        Some(_) => Err("attribute group_values is not a list".into()),
        None => Err("attribute group_values is missing (an item from before keys were stored as their parts)".into()),
    }
}

fn spec_attributes(item: &mut Item, spec: &RollupSpec) {
    let s = |text: &str| AttributeValue::S(text.to_owned());
    item.insert("rule_name".into(), s(&spec.display_name));
    if let Some(severity) = spec.severity {
        item.insert("severity".into(), s(&format!("{severity:?}")));
    }
    item.insert("description".into(), s(&spec.description));
    item.insert("runbook".into(), s(&spec.runbook));
    item.insert("rollup_subject".into(), s(&spec.subject));
    item.insert("group_by".into(), strings(&spec.group_by));
    let (names, headings): (Vec<String>, Vec<String>) = spec.distinct.iter().cloned().unzip();
    item.insert("distinct_names".into(), strings(&names));
    item.insert("distinct_headings".into(), strings(&headings));
}

/// The stored rule description of a window (`None` in items written without it).
fn spec_from(item: &Item, rule_id: Option<String>) -> Result<Option<Box<RollupSpec>>, String> {
    if !item.contains_key("rule_name") {
        return Ok(None);
    }
    let severity = match item.get("severity") {
        None => None,
        Some(AttributeValue::S(s)) => Some(
            serde_json::from_value::<Severity>(serde_json::Value::String(s.clone()))
                .map_err(|_| format!("attribute severity: unknown severity {s:?}"))?,
        ),
        Some(_) => return Err("attribute severity is not a string".into()),
    };
    let names = string_list(item, "distinct_names")?;
    let headings = string_list(item, "distinct_headings")?;
    if names.len() != headings.len() {
        return Err("attributes distinct_names and distinct_headings differ in length".into());
    }
    Ok(Some(Box::new(RollupSpec {
        rule_id: rule_id.unwrap_or_default(),
        display_name: text(item, "rule_name")?,
        severity,
        description: text(item, "description")?,
        runbook: text(item, "runbook")?,
        subject: text(item, "rollup_subject")?,
        group_by: string_list(item, "group_by")?,
        distinct: names.into_iter().zip(headings).collect(),
    })))
}

fn window_attributes(w: &Window) -> Item {
    let mut item = Item::new();
    item.insert("open_ms".into(), number(w.open_ms));
    item.insert("window_ms".into(), number(w.window_ms));
    item.insert("end_ms".into(), number(w.end_ms()));
    item.insert(
        "first_event_id".into(),
        AttributeValue::S(w.first_event_id.clone()),
    );
    item.insert("suppressed".into(), number(w.suppressed));
    if let Some(t) = w.first_suppressed_ms {
        item.insert("first_suppressed_ms".into(), number(t));
    }
    if let Some(t) = w.last_suppressed_ms {
        item.insert("last_suppressed_ms".into(), number(t));
    }
    // DynamoDB refuses empty sets: an empty set is an absent entry.
    let distinct: Item = w
        .distinct
        .iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(name, set)| {
            (
                name.clone(),
                AttributeValue::Ss(set.iter().cloned().collect()),
            )
        })
        .collect();
    if !distinct.is_empty() {
        item.insert("distinct".into(), AttributeValue::M(distinct));
    }
    if let Some(spec) = &w.spec {
        spec_attributes(&mut item, spec);
    }
    item
}

fn window_from(item: &Item) -> Result<Window, String> {
    Ok(Window {
        open_ms: int(item, "open_ms")?,
        window_ms: int(item, "window_ms")?,
        first_event_id: text(item, "first_event_id")?,
        suppressed: int(item, "suppressed")?,
        first_suppressed_ms: optional_int(item, "first_suppressed_ms")?,
        last_suppressed_ms: optional_int(item, "last_suppressed_ms")?,
        distinct: match item.get("distinct") {
            None => BTreeMap::new(),
            Some(AttributeValue::M(sets)) => sets
                .keys()
                .map(|name| Ok((name.clone(), string_set(sets, name)?)))
                .collect::<Result<_, String>>()?,
            Some(_) => return Err("attribute distinct is not a map".into()),
        },
        spec: spec_from(
            item,
            item.get("rule_id").and_then(|v| v.as_s().ok()).cloned(),
        )?,
    })
}

/// `ttl` of a window item written at wall-clock `now`: long enough that every
/// record that could still fall in the window by event time has arrived (CloudTrail
/// delivers within minutes, late logs within hours), measured from the later of
/// the window end and now so that backfills of old logs keep their windows too.
fn expiry_secs(w: &Window, now: i64) -> i64 {
    w.end_ms()
        .max(now)
        .saturating_add(w.window_ms.saturating_mul(2))
        .saturating_add(DAY_MS)
        / 1000
}

/// Appends an `eventID`, forgetting the oldest beyond [`SEEN_LIMIT`].
fn remember(seen: &mut Vec<String>, event_id: &str) {
    if !seen.iter().any(|id| id == event_id) {
        seen.push(event_id.to_owned());
    }
    if seen.len() > SEEN_LIMIT {
        seen.drain(..seen.len() - SEEN_LIMIT);
    }
}

/// The decision for `claim` given the key's stored item, at wall-clock `now`.
fn plan_decide(
    stored: Option<&StoredWindow>,
    claim: &Claim,
    now: i64,
    lease_ms: i64,
) -> Result<Step<Decision>, DedupError> {
    let version = stored.map_or(1, |s| s.version + 1);
    // An expired item is absent, deleted or not; its unreported matches are kept.
    let (live, stale_rollup) = match stored {
        Some(s) if s.is_expired(now) => (None, (s.window.suppressed > 0).then(|| s.window.clone())),
        other => (other, None),
    };
    if let Some(s) = live {
        let w = &s.window;
        let t = claim.event_time_ms;
        let in_reach = t >= w.open_ms.saturating_sub(w.window_ms) && t < w.end_ms();
        let opener = claim.event_id == w.first_event_id;
        let seen = s.has_seen(&claim.event_id);
        if s.state == State::Pending && in_reach && (opener || !seen) {
            if s.lease_until_ms <= now {
                // Re-drive the window's alert: its claim was released or abandoned.
                let mut next = s.clone();
                if !opener {
                    // The abandoned match gets a decision of its own when it is retried.
                    let abandoned =
                        std::mem::replace(&mut next.window.first_event_id, claim.event_id.clone());
                    next.seen.retain(|id| *id != abandoned);
                    remember(&mut next.seen, &claim.event_id);
                }
                next.lease_until_ms = now.saturating_add(lease_ms);
                next.version = version;
                next.ttl_secs = expiry_secs(&next.window, now);
                return Ok(Step::Write {
                    answer: Decision::Alert {
                        window_start_ms: w.open_ms,
                    },
                    next: Box::new(next),
                    rollup: None,
                });
            }
            if opener {
                return Err(DedupError(format!(
                    "{}: the alert of the window opened at {} by event {} is being published by another invocation (claim held until {}); try again later",
                    claim.key,
                    format_ms(w.open_ms),
                    claim.event_id,
                    format_ms(s.lease_until_ms)
                )));
            }
        }
        if seen {
            return Ok(Step::Done(Decision::Redelivery));
        }
    }
    let step = transition(live.map(|s| &s.window), claim);
    let answer = step.decision();
    let (mut next, rollup) = match (step, live) {
        (Transition::Open { new, closed }, _) => {
            let mut seen = live.map(|s| s.seen.clone()).unwrap_or_default();
            if let (Some(s), Some(closed)) = (live, &closed) {
                if s.state == State::Pending && s.lease_until_ms <= now {
                    // The closed window's alert was abandoned: its match is decided
                    // afresh on retry (a late alert, or counted in this window).
                    seen.retain(|id| *id != closed.first_event_id);
                }
            }
            remember(&mut seen, &claim.event_id);
            let next = StoredWindow {
                window: new,
                state: State::Pending,
                lease_until_ms: now.saturating_add(lease_ms),
                seen,
                version,
                ttl_secs: 0,
            };
            (next, stale_rollup.or(closed.filter(|c| c.suppressed > 0)))
        }
        (Transition::Suppress { window }, Some(s)) => {
            let mut next = StoredWindow {
                window,
                ..s.clone()
            };
            remember(&mut next.seen, &claim.event_id);
            (next, None)
        }
        (Transition::AlertLate { .. }, Some(_)) => {
            // Nothing to store: the window stays, and the record is remembered only
            // once its alert is confirmed, so that a crash before then alerts again.
            return Ok(Step::Done(answer));
        }
        (_, None) => {
            return Err(DedupError(format!(
                "{}: no window to count the match against",
                claim.key
            )))
        }
    };
    next.version = version;
    next.ttl_secs = expiry_secs(&next.window, now);
    Ok(Step::Write {
        answer,
        next: Box::new(next),
        rollup,
    })
}

/// Undoes an alert claim whose publication failed: the window's claim becomes
/// re-drivable at once. (A late alert stored nothing to undo.)
fn plan_release(
    stored: Option<&StoredWindow>,
    claim: &Claim,
    decision: Decision,
    now: i64,
) -> Step<()> {
    let (Some(s), Decision::Alert { window_start_ms }) = (stored, decision) else {
        return Step::Done(());
    };
    let holds_claim = s.state == State::Pending
        && s.lease_until_ms != 0
        && s.window.open_ms == window_start_ms
        && s.window.first_event_id == claim.event_id;
    if !holds_claim || s.is_expired(now) {
        return Step::Done(());
    }
    let mut next = s.clone();
    next.lease_until_ms = 0;
    next.version = s.version + 1;
    Step::Write {
        answer: (),
        next: Box::new(next),
        rollup: None,
    }
}

/// Records a published alert: the window's claim becomes final, a late alert's
/// `eventID` is remembered so that its redeliveries are recognised.
fn plan_confirm(stored: Option<&StoredWindow>, claim: &Claim, decision: Decision) -> Step<()> {
    let (Some(s), Decision::Alert { window_start_ms }) = (stored, decision) else {
        return Step::Done(());
    };
    let mut next = s.clone();
    if s.state == State::Pending
        && s.window.open_ms == window_start_ms
        && s.window.first_event_id == claim.event_id
    {
        next.state = State::Alerted;
        next.lease_until_ms = 0;
    } else if window_start_ms == claim.event_time_ms && !s.has_seen(&claim.event_id) {
        // A late alert, or a window's alert that another match re-drove meanwhile.
        remember(&mut next.seen, &claim.event_id);
    } else {
        return Step::Done(());
    }
    next.version = s.version + 1;
    Step::Write {
        answer: (),
        next: Box::new(next),
        rollup: None,
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
            let kind = item
                .get("kind")
                .and_then(|k| k.as_s().ok())
                .map(String::as_str);
            let taken = match kind {
                Some("window") => match (key_from(&item), StoredWindow::from_item(&item)) {
                    (Ok(key), Ok(stored)) if all || stored.window.end_ms() <= now_ms => {
                        self.cut_window(stored, &key, wall).await?
                    }
                    (Ok(_), Ok(_)) => None,
                    (key, stored) => {
                        tracing::warn!(item = ?text(&item, PK), key = ?key.err(), error = ?stored.err(), "unreadable dedup window item skipped");
                        None
                    }
                },
                Some("rollup") => match StoredRollup::from_item(&item) {
                    Ok(stored) => self.take_batch(stored, wall).await?,
                    Err(e) => {
                        tracing::warn!(item = ?text(&item, PK), error = %e, "unreadable roll-up item skipped");
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
            .map_err(|e| self.error("DeleteItem", DisplayErrorContext(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 3_600_000;
    const LEASE: i64 = 60_000;
    /// Wall clock of the tests: well after the event times, as in production.
    const NOW: i64 = 1_800_000_000_000;
    const T0: i64 = 1_700_000_000_000;

    fn claim(t: i64, id: &str) -> Claim {
        Claim {
            key: key(),
            event_time_ms: t,
            event_id: id.into(),
            window_ms: W,
            distinct: vec![
                ("things".into(), format!("thing-{id}")),
                ("places".into(), "b".into()),
            ],
            spec: RollupSpec {
                rule_id: "R".into(),
                display_name: "A rule".into(),
                severity: Some(Severity::Low),
                description: "d".into(),
                runbook: "r".into(),
                subject: "{suppressed} more".into(),
                group_by: vec!["awsRegion".into(), "recipientAccountId".into()],
                distinct: vec![
                    ("things".into(), "Things".into()),
                    ("places".into(), "Places".into()),
                ],
            },
        }
    }

    fn key() -> DedupKey {
        DedupKey::new("R", vec!["us-east-1".into(), "1".into()])
    }

    /// Applies a decision to `stored` as a successful write would.
    fn decide(
        stored: &mut Option<StoredWindow>,
        c: &Claim,
        now: i64,
    ) -> Result<(Decision, Option<Window>), DedupError> {
        match plan_decide(stored.as_ref(), c, now, LEASE)? {
            Step::Done(d) => Ok((d, None)),
            Step::Write {
                answer,
                next,
                rollup,
            } => {
                *stored = Some(*next);
                Ok((answer, rollup))
            }
        }
    }

    fn apply(stored: &mut Option<StoredWindow>, step: Step<()>) {
        if let Step::Write { next, .. } = step {
            *stored = Some(*next);
        }
    }

    fn alert(t: i64) -> Decision {
        Decision::Alert { window_start_ms: t }
    }

    #[test]
    fn items_round_trip() {
        let mut stored = None;
        decide(&mut stored, &claim(T0, "a"), NOW).unwrap();
        decide(&mut stored, &claim(T0 + 1, "b"), NOW).unwrap();
        let s = stored.unwrap();
        assert_eq!(StoredWindow::from_item(&s.to_item(&key())).unwrap(), s);
        let batch = StoredRollup::cut(&key(), s.window.clone(), NOW, 7, Some(NOW + 5));
        assert_eq!(StoredRollup::from_item(&batch.to_item()).unwrap(), batch);
        let mut empty = s.clone();
        empty.window.distinct.clear();
        assert!(
            !empty.to_item(&key()).contains_key("distinct"),
            "DynamoDB refuses empty sets"
        );
        assert_eq!(
            StoredWindow::from_item(&empty.to_item(&key())).unwrap(),
            empty
        );
    }

    #[test]
    fn unreadable_items_are_errors_not_panics() {
        let mut item = StoredWindow {
            window: Window::default(),
            state: State::Alerted,
            lease_until_ms: 0,
            seen: vec![],
            version: 1,
            ttl_secs: 1,
        }
        .to_item(&key());
        item.insert("open_ms".into(), AttributeValue::S("x".into()));
        assert!(StoredWindow::from_item(&item)
            .unwrap_err()
            .contains("open_ms"));
        item.remove("open_ms");
        assert!(StoredWindow::from_item(&item)
            .unwrap_err()
            .contains("missing"));
    }

    #[test]
    fn follows_the_pure_transition_and_counts() {
        let mut s = None;
        assert_eq!(decide(&mut s, &claim(T0, "a"), NOW).unwrap().0, alert(T0));
        assert_eq!(
            decide(&mut s, &claim(T0 + 10, "b"), NOW).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        assert_eq!(
            decide(&mut s, &claim(T0 + 10, "b"), NOW).unwrap().0,
            Decision::Redelivery
        );
        assert!(decide(&mut s, &claim(T0, "a"), NOW)
            .unwrap_err()
            .0
            .contains("being published"));
        let stored = s.clone().unwrap();
        assert_eq!(stored.window.suppressed, 1);
        assert_eq!(stored.version, 2);
        // A new window closes the old one and cuts its roll-up.
        let (d, rollup) = decide(&mut s, &claim(T0 + W, "c"), NOW).unwrap();
        assert_eq!(d, alert(T0 + W));
        assert_eq!(rollup.unwrap().suppressed, 1);
        // Late by more than a window: alerts, the window stays, the id is remembered
        // once the alert is published.
        let before = s.clone();
        let late = claim(T0 - 1, "z");
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, alert(T0 - 1));
        assert_eq!(s, before, "nothing stored for a late alert");
        let step = plan_confirm(s.as_ref(), &late, alert(T0 - 1));
        apply(&mut s, step);
        assert_eq!(s.as_ref().unwrap().window.open_ms, T0 + W);
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, Decision::Redelivery);
    }

    #[test]
    fn expired_items_never_suppress_and_keep_their_rollup() {
        let mut s = None;
        decide(&mut s, &claim(T0, "a"), NOW).unwrap();
        decide(&mut s, &claim(T0 + 1, "b"), NOW).unwrap();
        let ttl = s.as_ref().unwrap().ttl_secs;
        assert_eq!(
            ttl,
            (NOW + 2 * W + DAY_MS) / 1000,
            "counted from the wall clock for old events"
        );
        let later = ttl * 1000;
        let (d, rollup) = decide(&mut s, &claim(T0 + 2, "c"), later).unwrap();
        assert_eq!(
            d,
            alert(T0 + 2),
            "same event-time window, but the item expired"
        );
        assert_eq!(rollup.unwrap().suppressed, 1);
        // ...even a redelivery of an expired item's event is decided afresh.
        assert_eq!(
            decide(&mut s, &claim(T0 + 1, "b"), later).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0 + 2
            }
        );
    }

    #[test]
    fn released_claims_are_redriven_by_the_retry_with_the_same_window() {
        let mut s = None;
        let c = claim(T0, "a");
        let d = decide(&mut s, &c, NOW).unwrap().0;
        let step = plan_release(s.as_ref(), &c, d, NOW);
        apply(&mut s, step);
        assert_eq!(s.as_ref().unwrap().lease_until_ms, 0);
        assert_eq!(
            decide(&mut s, &c, NOW + 1).unwrap().0,
            d,
            "the retry alerts again"
        );
        let step = plan_confirm(s.as_ref(), &c, d);
        apply(&mut s, step);
        assert_eq!(s.as_ref().unwrap().state, State::Alerted);
        assert_eq!(
            decide(&mut s, &c, NOW + 2).unwrap().0,
            Decision::Redelivery,
            "a retry after publication does not"
        );
    }

    #[test]
    fn abandoned_claims_are_redriven_after_the_lease_by_another_match() {
        let mut s = None;
        decide(&mut s, &claim(T0, "a"), NOW).unwrap();
        // Within the lease, others are suppressed: the claimant is publishing.
        assert_eq!(
            decide(&mut s, &claim(T0 + 5, "b"), NOW + 1).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        // After it, the next new match re-drives the window's alert.
        assert_eq!(
            decide(&mut s, &claim(T0 + 6, "c"), NOW + LEASE).unwrap().0,
            alert(T0)
        );
        assert_eq!(s.as_ref().unwrap().window.first_event_id, "c");
        // ...but a redelivery does not.
        let mut t = s.clone();
        t.as_mut().unwrap().lease_until_ms = 0;
        assert_eq!(
            decide(&mut t, &claim(T0 + 5, "b"), NOW + LEASE).unwrap().0,
            Decision::Redelivery
        );
        // The abandoned match, retried later, is counted rather than lost or re-alerted.
        let step = plan_confirm(s.as_ref(), &claim(T0 + 6, "c"), alert(T0));
        apply(&mut s, step);
        assert_eq!(
            decide(&mut s, &claim(T0, "a"), NOW + LEASE).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
        assert_eq!(s.as_ref().unwrap().window.suppressed, 2);
    }

    #[test]
    fn confirm_and_release_only_touch_their_own_claim() {
        let mut s = None;
        let a = claim(T0, "a");
        let d = decide(&mut s, &a, NOW).unwrap().0;
        // Another match's confirmation or release leaves this claim alone.
        let other = claim(T0 + 1, "x");
        assert!(matches!(
            plan_confirm(s.as_ref(), &other, d),
            Step::Done(())
        ));
        assert!(matches!(
            plan_release(s.as_ref(), &other, d, NOW),
            Step::Done(())
        ));
        assert!(matches!(
            plan_confirm(
                s.as_ref(),
                &a,
                Decision::Suppressed {
                    window_start_ms: T0
                }
            ),
            Step::Done(())
        ));
        // A late alert stores nothing until published: a failed or abandoned one
        // alerts again on retry, a published one is a redelivery.
        let late = claim(T0 - 2 * W, "late");
        let d_late = decide(&mut s, &late, NOW).unwrap().0;
        assert_eq!(d_late, alert(T0 - 2 * W));
        assert!(matches!(
            plan_release(s.as_ref(), &late, d_late, NOW),
            Step::Done(())
        ));
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, d_late);
        let step = plan_confirm(s.as_ref(), &late, d_late);
        apply(&mut s, step);
        assert_eq!(decide(&mut s, &late, NOW).unwrap().0, Decision::Redelivery);
    }

    #[test]
    fn seen_is_bounded_and_old_redeliveries_never_open_a_window() {
        let mut s = None;
        decide(&mut s, &claim(T0, "first"), NOW).unwrap();
        for i in 0..(SEEN_LIMIT as i64 + 50) {
            decide(&mut s, &claim(T0 + 1 + i, &format!("e{i}")), NOW).unwrap();
        }
        let stored = s.clone().unwrap();
        assert_eq!(stored.seen.len(), SEEN_LIMIT);
        // The opener is always recognised; a forgotten one inside the window is only counted.
        assert!(decide(&mut s, &claim(T0, "first"), NOW)
            .unwrap_err()
            .0
            .contains("being published"));
        let step = plan_confirm(s.as_ref(), &claim(T0, "first"), alert(T0));
        apply(&mut s, step);
        assert_eq!(
            decide(&mut s, &claim(T0, "first"), NOW).unwrap().0,
            Decision::Redelivery
        );
        assert_eq!(
            decide(&mut s, &claim(T0 + 1, "e0"), NOW).unwrap().0,
            Decision::Suppressed {
                window_start_ms: T0
            }
        );
    }

    #[test]
    fn expiry_is_counted_from_the_later_of_window_end_and_now() {
        let w = Window {
            open_ms: NOW,
            window_ms: W,
            ..Window::default()
        };
        assert_eq!(expiry_secs(&w, NOW), (NOW + 3 * W + DAY_MS) / 1000);
        assert_eq!(
            expiry_secs(&w, NOW + 10 * W),
            (NOW + 12 * W + DAY_MS) / 1000
        );
    }
}
