//! The CloudTrail key layout planner: which `ListObjectsV2` prefixes a history
//! scan must list, pruned by the layout before anything is listed.
//!
//! ```text
//! [PREFIX/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz
//! ```
//!
//! Accounts (organisation trails included) and regions are discovered with
//! `/`-delimited listings, filtered by `--accounts` and `--regions`, and each
//! (account, region, day) becomes one prefix. `CloudTrail-Digest/` and
//! `CloudTrail-Insight/` are never entered. Without `--since`, the days are
//! discovered too (years, then months, then days, pruned by `--until`).

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::list::{ListError, Lister};
use super::window::{day_of, day_path, parse_day_path, Window};

/// Discovery listings made at once.
const DISCOVERY_CONCURRENCY: usize = 16;

/// `s3://BUCKET[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{url:?} is not an S3 location: expected s3://BUCKET[/PREFIX]")]
pub struct UrlError {
    pub url: String,
}

impl S3Url {
    /// Whether a command-line path names S3 rather than a local file.
    pub fn is_s3(text: &str) -> bool {
        text.starts_with("s3://")
    }

    pub fn parse(text: &str) -> Result<S3Url, UrlError> {
        let error = || UrlError {
            url: text.to_owned(),
        };
        let rest = text.strip_prefix("s3://").ok_or_else(error)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid {
            return Err(error());
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// What a history scan looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    pub window: Window,
    /// Empty: every account.
    pub accounts: BTreeSet<String>,
    /// Empty: every region.
    pub regions: BTreeSet<String>,
}

impl Filters {
    fn admits_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.contains(account)
    }

    fn admits_region(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.contains(region)
    }

    /// Whether a listed key can belong to the scan: a CloudTrail log file (not a
    /// digest, insight or other key) of an admitted account, region and day.
    pub fn admits_key(&self, key: &str, today: i64) -> bool {
        let Some(log) = LogKey::parse(key) else {
            return false;
        };
        self.admits_account(log.account)
            && self.admits_region(log.region)
            && log.day.is_none_or(|day| self.window.admits_day(day, today))
    }
}

/// The parts of a log file's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKey<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub day: Option<i64>,
}

impl<'a> LogKey<'a> {
    /// `…AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>`.
    pub fn parse(key: &'a str) -> Option<LogKey<'a>> {
        if crate::trigger::classify_key(key) != crate::trigger::KeyKind::Log {
            return None;
        }
        let mut search = key;
        while let Some(at) = search.find("AWSLogs/") {
            let after = &search[at + "AWSLogs/".len()..];
            let parts: Vec<&str> = after.split('/').collect();
            let i = usize::from(parts.first().is_some_and(|p| is_org_id(p)));
            let account = parts.get(i).copied().unwrap_or_default();
            if is_account(account) && parts.get(i + 1) == Some(&"CloudTrail") {
                let region = parts.get(i + 2).copied().unwrap_or_default();
                let day = parts
                    .get(i + 3..i + 6)
                    .and_then(|ymd| parse_day_path(&ymd.join("/")));
                return Some(LogKey {
                    account,
                    region,
                    day,
                });
            }
            search = after;
        }
        None
    }
}

pub(crate) fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// AWS Organizations ids: `o-` and 10 to 32 lowercase letters or digits.
pub(crate) fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Which days of one region to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Days {
    /// Every day from `first` to `last` (days since the epoch).
    Range { first: i64, last: i64 },
    /// The days found in the bucket.
    Found(Vec<i64>),
    /// The prefix as given (a prefix inside the layout): listed whole.
    Whole,
}

/// One `…/CloudTrail/<region>/` prefix and its days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub prefix: String,
    pub days: Days,
}

/// The prefixes to list, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub bucket: String,
    pub scopes: Vec<Scope>,
}

impl Plan {
    /// One prefix per (account, region, day), generated lazily: a long window
    /// over many accounts is never held as a list.
    pub fn prefixes(&self) -> impl Iterator<Item = String> + '_ {
        self.scopes.iter().flat_map(|scope| {
            let days: Box<dyn Iterator<Item = Option<i64>>> = match &scope.days {
                Days::Range { first, last } => Box::new((*first..=*last).map(Some)),
                Days::Found(days) => Box::new(days.iter().copied().map(Some)),
                Days::Whole => Box::new(std::iter::once(None)),
            };
            days.map(move |day| match day {
                Some(day) => format!("{}{}/", scope.prefix, day_path(day)),
                None => scope.prefix.clone(),
            })
        })
    }

    /// How many prefixes [`Plan::prefixes`] yields.
    pub fn len(&self) -> u64 {
        self.scopes
            .iter()
            .map(|s| match &s.days {
                Days::Range { first, last } => (last - first + 1).max(0) as u64,
                Days::Found(days) => days.len() as u64,
                Days::Whole => 1,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The next level of the layout under `prefix` (names without the `/`).
async fn children(
    lister: &dyn Lister,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, ListError> {
    let pages: Vec<_> = lister.pages(bucket, prefix, true).try_collect().await?;
    Ok(pages
        .into_iter()
        .flat_map(|page| page.common_prefixes)
        .filter_map(|p| {
            p.strip_prefix(prefix)
                .and_then(|name| name.strip_suffix('/'))
                .map(str::to_owned)
        })
        .collect())
}

/// Plans a history scan of `url` (see the module documentation). `today` is the
/// current day (days since the epoch), the end of an open window.
pub async fn plan(
    lister: &dyn Lister,
    url: &S3Url,
    filters: &Filters,
    today: i64,
) -> Result<Plan, ListError> {
    plan_folder(lister, url, filters, today, "CloudTrail").await
}

/// [`plan`] for another folder of the layout beside `CloudTrail/` (the digests'
/// `CloudTrail-Digest/`, for `trailwatch verify`).
pub async fn plan_folder(
    lister: &dyn Lister,
    url: &S3Url,
    filters: &Filters,
    today: i64,
    folder: &str,
) -> Result<Plan, ListError> {
    let bucket = url.bucket.as_str();
    if url.prefix.contains("AWSLogs/") {
        // Already inside the layout: list it as given, keys filtered one by one.
        return Ok(Plan {
            bucket: bucket.to_owned(),
            scopes: vec![Scope {
                prefix: url.prefix.clone(),
                days: Days::Whole,
            }],
        });
    }
    let mut root = url.prefix.clone();
    if !root.is_empty() && !root.ends_with('/') {
        root.push('/');
    }
    root.push_str("AWSLogs/");

    let mut accounts = Vec::new();
    let mut orgs = Vec::new();
    for name in children(lister, bucket, &root).await? {
        if is_account(&name) {
            accounts.push(format!("{root}{name}/"));
        } else if is_org_id(&name) {
            orgs.push(format!("{root}{name}/"));
        }
    }
    let in_orgs: Vec<Vec<String>> = stream::iter(&orgs)
        .map(|org| async move {
            children(lister, bucket, org).await.map(|names| {
                names
                    .into_iter()
                    .filter(|n| is_account(n))
                    .map(|n| format!("{org}{n}/"))
                    .collect()
            })
        })
        .buffered(DISCOVERY_CONCURRENCY)
        .try_collect()
        .await?;
    accounts.extend(in_orgs.into_iter().flatten());
    accounts.retain(|base| {
        let account = base.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        filters.admits_account(account)
    });
    accounts.sort();

    let regions: Vec<Vec<String>> = stream::iter(&accounts)
        .map(|account| async move {
            let trail = format!("{account}{folder}/");
            children(lister, bucket, &trail).await.map(|names| {
                names
                    .into_iter()
                    .filter(|r| filters.admits_region(r))
                    .map(|r| format!("{trail}{r}/"))
                    .collect()
            })
        })
        .buffered(DISCOVERY_CONCURRENCY)
        .try_collect()
        .await?;

    let (first, last) = filters.window.day_range(today);
    let scopes = match first {
        Some(first) => regions
            .into_iter()
            .flatten()
            .map(|prefix| Scope {
                prefix,
                days: Days::Range { first, last },
            })
            .filter(|_| first <= last)
            .collect(),
        None => {
            stream::iter(regions.into_iter().flatten())
                .map(|prefix| async move {
                    let days = discover_days(lister, bucket, &prefix, last).await?;
                    Ok::<_, ListError>(Scope {
                        prefix,
                        days: Days::Found(days),
                    })
                })
                .buffered(DISCOVERY_CONCURRENCY)
                .try_collect()
                .await?
        }
    };
    Ok(Plan {
        bucket: bucket.to_owned(),
        scopes,
    })
}

/// The `YYYY/MM/DD` days present under a region prefix, up to `last`.
async fn discover_days(
    lister: &dyn Lister,
    bucket: &str,
    region: &str,
    last: i64,
) -> Result<Vec<i64>, ListError> {
    let last_path = day_path(last);
    let mut days = Vec::new();
    for year in children(lister, bucket, region).await? {
        if year.len() != 4 || year.as_str() > &last_path[..4] {
            continue;
        }
        for month in children(lister, bucket, &format!("{region}{year}/")).await? {
            let year_month = format!("{year}/{month}");
            if month.len() != 2 || year_month.as_str() > &last_path[..7] {
                continue;
            }
            for day in children(lister, bucket, &format!("{region}{year_month}/")).await? {
                if let Some(d) = parse_day_path(&format!("{year_month}/{day}")) {
                    if d <= last {
                        days.push(d);
                    }
                }
            }
        }
    }
    Ok(days)
}

/// The current day, for [`plan`].
pub fn today() -> i64 {
    day_of(crate::time::now_ms())
}

#[cfg(test)]
mod tests {
    use super::super::list::{CountingLister, MemoryLister};
    use super::super::window::parse_day_path;
    use super::*;

    const ORG: &str = "o-a1b2c3d4e5";

    fn bucket() -> MemoryLister {
        let mut keys = Vec::new();
        for (base, account) in [
            ("trail/AWSLogs/", "111111111111"),
            ("trail/AWSLogs/", "222222222222"),
            ("trail/AWSLogs/o-a1b2c3d4e5/", "333333333333"),
        ] {
            for region in ["us-east-1", "eu-west-1"] {
                for day in ["2024/02/28", "2024/03/01", "2024/03/02"] {
                    let compact = day.replace('/', "");
                    keys.push(format!(
                        "{base}{account}/CloudTrail/{region}/{day}/{account}_CloudTrail_{region}_{compact}T0000Z_x.json.gz"
                    ));
                }
            }
            keys.push(format!(
                "{base}{account}/CloudTrail-Digest/us-east-1/2024/03/01/d.json.gz"
            ));
        }
        keys.push("trail/AWSLogs/not-an-account/CloudTrail/us-east-1/2024/03/01/x.json.gz".into());
        MemoryLister::new("bkt", keys)
    }

    fn url() -> S3Url {
        S3Url::parse("s3://bkt/trail").unwrap()
    }

    fn day(path: &str) -> i64 {
        parse_day_path(path).unwrap()
    }

    #[test]
    fn urls() {
        assert_eq!(
            S3Url::parse("s3://my-bucket/a/b/").unwrap(),
            S3Url {
                bucket: "my-bucket".into(),
                prefix: "a/b/".into()
            }
        );
        assert_eq!(S3Url::parse("s3://my-bucket").unwrap().prefix, "");
        for bad in [
            "my-bucket",
            "s3://",
            "s3://UPPER/x",
            "s3://a/x",
            "file:///tmp",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_keys() {
        let key = format!("p/AWSLogs/{ORG}/123456789012/CloudTrail/eu-west-1/2024/03/01/f.json.gz");
        let k = LogKey::parse(&key).unwrap();
        assert_eq!((k.account, k.region), ("123456789012", "eu-west-1"));
        assert_eq!(k.day, Some(day("2024/03/01")));
        assert!(
            LogKey::parse("AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/03/01/d")
                .is_none()
        );
        assert!(
            LogKey::parse("AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2024/03/01/d")
                .is_none()
        );
    }

    #[tokio::test]
    async fn every_account_region_and_day_is_found_and_nothing_else() {
        let lister = CountingLister::new(bucket());
        let plan = plan(&lister, &url(), &Filters::default(), day("2024/12/31"))
            .await
            .unwrap();
        let prefixes: Vec<String> = plan.prefixes().collect();
        assert_eq!(prefixes.len(), 3 * 2 * 3);
        assert_eq!(plan.len(), 18);
        assert!(prefixes.contains(&format!(
            "trail/AWSLogs/{ORG}/333333333333/CloudTrail/eu-west-1/2024/03/02/"
        )));
        assert!(prefixes
            .iter()
            .all(|p| !p.contains("Digest") && !p.contains("not-an")));
        // AWSLogs/, the org, 3 accounts' regions, 6 regions' years, 6 years' months,
        // 12 months' days.
        assert_eq!(lister.calls(), 1 + 1 + 3 + 6 + 6 + 12);
        assert!(lister.listed().iter().all(|(_, delimited)| *delimited));
    }

    #[tokio::test]
    async fn filters_prune_before_listing() {
        let lister = CountingLister::new(bucket());
        let filters = Filters {
            window: Window {
                since_ms: Some(day("2024/03/01") * 86_400_000),
                until_ms: Some(day("2024/03/01") * 86_400_000 + 3_600_000),
            },
            accounts: ["333333333333".to_owned()].into(),
            regions: ["eu-west-1".to_owned()].into(),
        };
        let plan = plan(&lister, &url(), &filters, day("2024/12/31"))
            .await
            .unwrap();
        assert_eq!(
            plan.prefixes().collect::<Vec<_>>(),
            vec![format!(
                "trail/AWSLogs/{ORG}/333333333333/CloudTrail/eu-west-1/2024/03/01/"
            )]
        );
        // AWSLogs/, the org, the one account's regions; the days are known.
        assert_eq!(lister.calls(), 3);
        let listed: Vec<String> = lister.listed().into_iter().map(|(p, _)| p).collect();
        assert!(!listed.iter().any(|p| p.contains("111111111111")));
        assert!(filters.admits_key(
            &format!("trail/AWSLogs/{ORG}/333333333333/CloudTrail/eu-west-1/2024/03/01/f.json.gz"),
            0
        ));
        assert!(!filters.admits_key(
            &format!("trail/AWSLogs/{ORG}/333333333333/CloudTrail/us-east-1/2024/03/01/f.json.gz"),
            0
        ));
    }

    #[tokio::test]
    async fn an_open_start_discovers_days_up_to_until() {
        let lister = bucket();
        let filters = Filters {
            window: Window {
                since_ms: None,
                until_ms: Some(day("2024/02/28") * 86_400_000),
            },
            ..Filters::default()
        };
        let plan = plan(&lister, &url(), &filters, day("2024/12/31"))
            .await
            .unwrap();
        let prefixes: Vec<String> = plan.prefixes().collect();
        assert_eq!(prefixes.len(), 6);
        assert!(prefixes.iter().all(|p| p.ends_with("2024/02/28/")));
    }

    #[tokio::test]
    async fn a_prefix_inside_the_layout_is_listed_as_given() {
        let lister = CountingLister::new(bucket());
        let url =
            S3Url::parse("s3://bkt/trail/AWSLogs/111111111111/CloudTrail/us-east-1/").unwrap();
        let plan = plan(&lister, &url, &Filters::default(), 0).await.unwrap();
        assert_eq!(
            plan.prefixes().collect::<Vec<_>>(),
            vec![url.prefix.clone()]
        );
        assert_eq!(lister.calls(), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Pruning never loses a key the filters admit, and every listed key
        /// the scan reads is admitted.
        #[test]
        fn the_plan_finds_exactly_the_admitted_keys(
            keys in proptest::collection::vec((0usize..4, 0usize..3, 0usize..6, proptest::bool::ANY), 1..40),
            accounts in proptest::collection::btree_set(0usize..4, 0..3),
            regions in proptest::collection::btree_set(0usize..3, 0..2),
            since in proptest::option::of(0i64..6),
            until in proptest::option::of(0i64..6),
        ) {
            const ACCOUNTS: [&str; 4] = ["111111111111", "222222222222", "333333333333", "444444444444"];
            const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "sa-east-1"];
            let first = day("2024/02/27");
            let keys: Vec<String> = keys
                .iter()
                .map(|&(a, r, d, digest)| {
                    let org = if a >= 2 { "o-a1b2c3d4e5/" } else { "" };
                    let kind = if digest { "CloudTrail-Digest" } else { "CloudTrail" };
                    format!(
                        "t/AWSLogs/{org}{}/{kind}/{}/{}/f{a}{r}{d}.json.gz",
                        ACCOUNTS[a], REGIONS[r], super::day_path(first + d as i64)
                    )
                })
                .collect();
            let filters = Filters {
                window: Window {
                    since_ms: since.map(|d| (first + d) * 86_400_000 + 3_600_000),
                    until_ms: until.map(|d| (first + d) * 86_400_000 + 7_200_000),
                },
                accounts: accounts.iter().map(|&a| ACCOUNTS[a].to_owned()).collect(),
                regions: regions.iter().map(|&r| REGIONS[r].to_owned()).collect(),
            };
            let lister = MemoryLister::new("bkt", keys.clone());
            let today = first + 10;
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let found: BTreeSet<String> = rt.block_on(async {
                let plan = plan(&lister, &S3Url::parse("s3://bkt/t/").unwrap(), &filters, today)
                    .await
                    .unwrap();
                let mut found = BTreeSet::new();
                for prefix in plan.prefixes() {
                    let pages: Vec<_> = lister.pages("bkt", &prefix, false).try_collect().await.unwrap();
                    for page in pages {
                        found.extend(page.objects.into_iter().map(|o| o.key).filter(|k| filters.admits_key(k, today)));
                    }
                }
                found
            });
            let expected: BTreeSet<String> = keys.into_iter().filter(|k| {
                let log = LogKey::parse(k);
                log.is_some_and(|log| {
                    let d = log.day.unwrap();
                    (filters.accounts.is_empty() || filters.accounts.contains(log.account))
                        && (filters.regions.is_empty() || filters.regions.contains(log.region))
                        && since.is_none_or(|s| d >= first + s)
                        && until.is_none_or(|u| d <= first + u)
                })
            }).collect();
            proptest::prop_assert_eq!(found, expected);
        }
    }
}
