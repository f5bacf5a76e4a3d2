//! The circuit breaker: at most N cancels per account in any hour.
//!
//! An automatic cancel that misfires (a rule too broad, an allow-list forgotten)
//! should cost a few re-run exports, not every export of an account. Each admitted
//! cancel is recorded with its time; a cancel is admitted while fewer than the limit
//! were admitted in the account during the hour before it (a sliding hour). The
//! same task admitted again (a retried invocation) is admitted without counting
//! twice.
//!
//! [`DynamoBreaker`] keeps one item per account in the dedup table
//! (`TRAILWATCH_DEDUP_TABLE`), `pk` = `response#breaker#<account>`, `kind` =
//! `response-breaker` (the dedup store reads only `window` and `rollup` items, and
//! only those with suppressed matches):
//!
//! | attribute | meaning |
//! |---|---|
//! | `cancels` | map of export task id to admission time (epoch ms), the last hour's only |
//! | `version` | every write is conditional on the version read (optimistic concurrency) |
//! | `ttl` | two hours after the last admission, in epoch seconds |
//!
//! Read (strongly consistent), decide, write on condition that the version is the
//! one read, again on conflict: of any number of concurrent instances, at most the
//! limit are admitted. [`MemoryBreaker`] does the same in one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::aws_error::{classify, Cause};
use crate::enrich::CallError;

/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// The `kind` attribute of breaker items.
pub const BREAKER_KIND: &str = "response-breaker";
/// Conflicting writes tolerated for one admission before giving up.
const MAX_ATTEMPTS: u32 = 30;

/// The breaker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead. `repeat`: this task had already been admitted (a retry).
    Admitted { repeat: bool },
    /// `recent` cancels in the account within the hour reached the limit.
    Refused { recent: u32 },
}

/// Counts cancels per account, shared by every instance of the function.
#[async_trait]
pub trait CancelBreaker: Send + Sync {
    /// Admits a cancel of `task` in `account` at `now_ms` when fewer than `limit`
    /// other tasks were admitted there in the hour before, and records it.
    async fn admit(
        &self,
        account: &str,
        task: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Admission, CallError>;
}

/// The pure decision over one account's recent admissions (task -> time).
fn decide(cancels: &mut BTreeMap<String, i64>, task: &str, now_ms: i64, limit: u32) -> Admission {
    cancels.retain(|_, at| *at > now_ms - HOUR_MS);
    if cancels.contains_key(task) {
        return Admission::Admitted { repeat: true };
    }
    let recent = cancels.len() as u32;
    if recent >= limit {
        return Admission::Refused { recent };
    }
    cancels.insert(task.to_owned(), now_ms);
    Admission::Admitted { repeat: false }
}

/// The breaker of one process (`trailwatch invoke`, tests).
#[derive(Default)]
pub struct MemoryBreaker {
    accounts: Mutex<HashMap<String, BTreeMap<String, i64>>>,
}

impl MemoryBreaker {
    pub fn new() -> MemoryBreaker {
        MemoryBreaker::default()
    }
}

#[async_trait]
impl CancelBreaker for MemoryBreaker {
    async fn admit(
        &self,
        account: &str,
        task: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Admission, CallError> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let cancels = accounts.entry(account.to_owned()).or_default();
        Ok(decide(cancels, task, now_ms, limit))
    }
}

/// The breaker in the dedup table, shared by concurrent instances.
pub struct DynamoBreaker {
    client: Client,
    table: String,
}

impl DynamoBreaker {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoBreaker {
        DynamoBreaker {
            client,
            table: table.into(),
        }
    }

    /// The item's hash key for an account.
    pub fn pk(account: &str) -> String {
        format!("response#breaker#{account}")
    }

    fn error(&self, action: &str, cause: Cause, message: impl std::fmt::Display) -> CallError {
        CallError::new(
            cause,
            format!("DynamoDB table {}: {action}: {message}", self.table),
        )
    }

    /// The stored admissions and version (0 when there is no item).
    fn parse(
        &self,
        item: Option<&HashMap<String, AttributeValue>>,
    ) -> Result<(BTreeMap<String, i64>, u64), CallError> {
        let Some(item) = item else {
            return Ok((BTreeMap::new(), 0));
        };
        let bad = |what: &str| self.error("breaker item", Cause::Other, format!("bad {what}"));
        let version = match item.get("version") {
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| bad("version"))?,
            _ => return Err(bad("version")),
        };
        let mut cancels = BTreeMap::new();
        if let Some(AttributeValue::M(map)) = item.get("cancels") {
            for (task, at) in map {
                let AttributeValue::N(at) = at else {
                    return Err(bad("cancels"));
                };
                cancels.insert(task.clone(), at.parse().map_err(|_| bad("cancels"))?);
            }
        }
        Ok((cancels, version))
    }
}

fn backoff(attempt: u32) -> std::time::Duration {
    let cap = 10u64 << attempt.min(4);
    std::time::Duration::from_millis(fastrand::u64(1..=cap))
}

#[async_trait]
impl CancelBreaker for DynamoBreaker {
    async fn admit(
        &self,
        account: &str,
        task: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Admission, CallError> {
        let pk = Self::pk(account);
        let mut known: Option<HashMap<String, AttributeValue>> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let item = match known.take() {
                Some(item) => Some(item),
                None => {
                    self.client
                        .get_item()
                        .table_name(&self.table)
                        .key("pk", AttributeValue::S(pk.clone()))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| self.error("GetItem", classify(&e), DisplayErrorContext(e)))?
                        .item
                }
            };
            let (mut cancels, version) = self.parse(item.as_ref())?;
            let admission = decide(&mut cancels, task, now_ms, limit);
            if admission != (Admission::Admitted { repeat: false }) {
                return Ok(admission);
            }
            let last = cancels.values().copied().max().unwrap_or(now_ms);
            let item: HashMap<String, AttributeValue> = [
                ("pk".to_owned(), AttributeValue::S(pk.clone())),
                ("kind".to_owned(), AttributeValue::S(BREAKER_KIND.into())),
                ("account".to_owned(), AttributeValue::S(account.to_owned())),
                (
                    "cancels".to_owned(),
                    AttributeValue::M(
                        cancels
                            .iter()
                            .map(|(t, at)| (t.clone(), AttributeValue::N(at.to_string())))
                            .collect(),
                    ),
                ),
                (
                    "version".to_owned(),
                    AttributeValue::N((version + 1).to_string()),
                ),
                (
                    "ttl".to_owned(),
                    AttributeValue::N(((last + 2 * HOUR_MS) / 1000).to_string()),
                ),
            ]
            .into_iter()
            .collect();
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                );
            put = if version == 0 {
                put.condition_expression("attribute_not_exists(pk)")
            } else {
                put.condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            };
            match put.send().await {
                Ok(_) => return Ok(admission),
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        known = failed.item.clone();
                        tracing::debug!(
                            account,
                            attempt,
                            "breaker item changed concurrently, deciding again"
                        );
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    _ => return Err(self.error("PutItem", classify(&e), DisplayErrorContext(e))),
                },
            }
        }
        Err(self.error(
            &format!("item {pk:?}"),
            Cause::Throttled,
            format!("gave up after {MAX_ATTEMPTS} conflicting concurrent writes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_in_any_hour_and_a_task_counts_once() {
        let mut cancels = BTreeMap::new();
        let t0 = 1_000 * HOUR_MS;
        assert_eq!(
            decide(&mut cancels, "a", t0, 2),
            Admission::Admitted { repeat: false }
        );
        assert_eq!(
            decide(&mut cancels, "a", t0 + 1, 2),
            Admission::Admitted { repeat: true }
        );
        assert_eq!(
            decide(&mut cancels, "b", t0 + 2, 2),
            Admission::Admitted { repeat: false }
        );
        assert_eq!(
            decide(&mut cancels, "c", t0 + 3, 2),
            Admission::Refused { recent: 2 }
        );
        // Sliding: one hour after "a", its slot is free again, not at a clock hour.
        assert_eq!(
            decide(&mut cancels, "c", t0 + HOUR_MS - 1, 2),
            Admission::Refused { recent: 2 }
        );
        assert_eq!(
            decide(&mut cancels, "c", t0 + HOUR_MS, 2),
            Admission::Admitted { repeat: false }
        );
        assert_eq!(
            decide(&mut cancels, "d", t0 + HOUR_MS, 0),
            Admission::Refused { recent: 2 }
        );
        assert!(
            !cancels.contains_key("a"),
            "admissions older than an hour are dropped"
        );
    }

    #[tokio::test]
    async fn memory_breaker_counts_per_account() {
        let breaker = MemoryBreaker::new();
        assert_eq!(
            breaker.admit("1", "a", 0, 1).await.unwrap(),
            Admission::Admitted { repeat: false }
        );
        assert_eq!(
            breaker.admit("1", "b", 1, 1).await.unwrap(),
            Admission::Refused { recent: 1 }
        );
        assert_eq!(
            breaker.admit("2", "b", 1, 1).await.unwrap(),
            Admission::Admitted { repeat: false }
        );
    }
}
