//! History: hunting and backfilling over the CloudTrail logs already in a bucket.
//!
//! [`layout`] plans the `ListObjectsV2` prefixes from CloudTrail's key layout and
//! the filters, [`list`] lists them, [`scan`] streams the objects through the
//! detector, and [`checkpoint`] makes a long scan resumable. The matches then go
//! through the same dedup and alert pipeline as a local scan ([`crate::scan`]).
//! A single object is read by [`crate::read`], as every other path reads one.

pub mod checkpoint;
pub mod entry;
pub mod layout;
pub mod list;
pub mod scan;
pub mod window;

pub use entry::{collect_history, collect_s3, resolve_filters, HistoryArgs, HistoryError};
pub use layout::{plan, Filters, Plan, S3Url};
pub use list::{CountingLister, Lister, MemoryLister, S3Lister};
pub use scan::{collect, HistoryScan, Progress};
