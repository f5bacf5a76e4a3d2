//! Listing a bucket: `ListObjectsV2` pages behind the [`Lister`] trait, so the
//! planner and the history scan run against S3, moto and an in-memory fake, and
//! tests can count the calls.
//!
//! Pages are streamed: nobody holds a whole listing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, StreamExt};

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// One `ListObjectsV2` page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<Listed>,
    /// With a delimiter: the "folders" one level below the prefix, with their `/`.
    pub common_prefixes: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("listing s3://{bucket}/{prefix}: {message}")]
pub struct ListError {
    pub bucket: String,
    pub prefix: String,
    pub message: String,
    /// Throttling or a timeout: a later run can succeed.
    pub transient: bool,
}

/// The pages of one listing, as they arrive.
pub type Pages<'a> = BoxStream<'a, Result<Page, ListError>>;

/// `ListObjectsV2` under a prefix, one item per page (one call per item).
pub trait Lister: Send + Sync {
    /// Every page under `prefix`; with `delimited`, the delimiter is `/` and
    /// the page's `common_prefixes` are the next level of the layout.
    fn pages<'a>(&'a self, bucket: &'a str, prefix: &'a str, delimited: bool) -> Pages<'a>;
}

/// The S3 lister: the SDK's own `ListObjectsV2` paginator.
pub struct S3Lister {
    client: aws_sdk_s3::Client,
}

impl S3Lister {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Lister { client }
    }
}

impl Lister for S3Lister {
    fn pages<'a>(&'a self, bucket: &'a str, prefix: &'a str, delimited: bool) -> Pages<'a> {
        let paginator = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimited.then(|| "/".to_owned()))
            .into_paginator()
            .send();
        stream::unfold(paginator, move |mut paginator| async move {
            let page = paginator.next().await?;
            let page = page
                .map(|out| Page {
                    objects: out
                        .contents()
                        .iter()
                        .filter_map(|o| {
                            Some(Listed {
                                key: o.key()?.to_owned(),
                                size: o.size().unwrap_or(0).max(0) as u64,
                            })
                        })
                        .collect(),
                    common_prefixes: out
                        .common_prefixes()
                        .iter()
                        .filter_map(|p| p.prefix().map(str::to_owned))
                        .collect(),
                })
                .map_err(|e| ListError {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                    transient: crate::aws_error::classify(&e).is_transient(),
                    message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                });
            Some((page, paginator))
        })
        .boxed()
    }
}

/// Counts the calls another lister makes and remembers their prefixes, to prove
/// what a plan lists.
pub struct CountingLister<L> {
    pub inner: L,
    calls: AtomicU64,
    listed: Mutex<Vec<(String, bool)>>,
}

impl<L: Lister> CountingLister<L> {
    pub fn new(inner: L) -> Self {
        CountingLister {
            inner,
            calls: AtomicU64::new(0),
            listed: Mutex::new(Vec::new()),
        }
    }

    /// `ListObjectsV2` calls made (pages fetched).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// `(prefix, delimited)` of every call, in the order they were made.
    pub fn listed(&self) -> Vec<(String, bool)> {
        self.prefixes().clone()
    }

    /// The calls' prefixes (a panicked test thread leaves them readable).
    fn prefixes(&self) -> std::sync::MutexGuard<'_, Vec<(String, bool)>> {
        self.listed.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
        self.prefixes().clear();
    }
}

impl<L: Lister> Lister for CountingLister<L> {
    fn pages<'a>(&'a self, bucket: &'a str, prefix: &'a str, delimited: bool) -> Pages<'a> {
        self.inner
            .pages(bucket, prefix, delimited)
            .inspect(move |_| {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.prefixes().push((prefix.to_owned(), delimited));
            })
            .boxed()
    }
}

impl<L: Lister + ?Sized> Lister for Arc<L> {
    fn pages<'a>(&'a self, bucket: &'a str, prefix: &'a str, delimited: bool) -> Pages<'a> {
        (**self).pages(bucket, prefix, delimited)
    }
}

/// An in-memory bucket with S3's listing semantics (lexicographic order, `/`
/// delimiter, pages of `page_size`), for tests.
pub struct MemoryLister {
    pub bucket: String,
    pub objects: BTreeMap<String, u64>,
    pub page_size: usize,
}

impl MemoryLister {
    pub fn new(bucket: &str, keys: impl IntoIterator<Item = String>) -> Self {
        MemoryLister {
            bucket: bucket.to_owned(),
            objects: keys.into_iter().map(|k| (k, 1)).collect(),
            page_size: 1000,
        }
    }

    fn all_pages(&self, prefix: &str, delimited: bool) -> Vec<Page> {
        // Entries in order: an object, or a common prefix standing for many.
        let mut entries: Vec<(String, Option<u64>)> = Vec::new();
        for (key, size) in self.objects.range(prefix.to_owned()..) {
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            match rest.find('/').filter(|_| delimited) {
                Some(at) => {
                    let common = format!("{prefix}{}", &rest[..=at]);
                    if entries.last().map(|(k, _)| k) != Some(&common) {
                        entries.push((common, None));
                    }
                }
                None => entries.push((key.clone(), Some(*size))),
            }
        }
        let pages: Vec<Page> = entries
            .chunks(self.page_size.max(1))
            .map(|chunk| {
                let mut page = Page::default();
                for (name, size) in chunk {
                    match size {
                        Some(size) => page.objects.push(Listed {
                            key: name.clone(),
                            size: *size,
                        }),
                        None => page.common_prefixes.push(name.clone()),
                    }
                }
                page
            })
            .collect();
        if pages.is_empty() {
            vec![Page::default()]
        } else {
            pages
        }
    }
}

impl Lister for MemoryLister {
    fn pages<'a>(&'a self, bucket: &'a str, prefix: &'a str, delimited: bool) -> Pages<'a> {
        if bucket != self.bucket {
            return stream::iter([Err(ListError {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                message: "NoSuchBucket".into(),
                transient: false,
            })])
            .boxed();
        }
        stream::iter(self.all_pages(prefix, delimited).into_iter().map(Ok)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_lister_pages_and_folds_like_s3() {
        let mut lister = MemoryLister::new(
            "b",
            ["a/1", "a/2", "a/x/3", "a/y/4", "a/y/5", "b/6"].map(String::from),
        );
        lister.page_size = 2;
        let pages: Vec<Page> = lister
            .pages("b", "a/", true)
            .map(|p| p.unwrap())
            .collect()
            .await;
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].objects.len(), 2);
        assert_eq!(pages[1].common_prefixes, vec!["a/x/", "a/y/"]);
        let flat: usize = lister
            .pages("b", "a/", false)
            .map(|p| p.unwrap().objects.len())
            .collect::<Vec<_>>()
            .await
            .iter()
            .sum();
        assert_eq!(flat, 5);
        let counting = CountingLister::new(lister);
        let _ = counting.pages("b", "", false).collect::<Vec<_>>().await;
        assert_eq!(counting.calls(), 3, "6 keys in pages of 2");
        assert!(counting
            .pages("other", "", false)
            .next()
            .await
            .unwrap()
            .is_err());
    }
}
