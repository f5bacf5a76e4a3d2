//! trailwatch: alerts on RDS snapshots exported to S3 (`rds:StartExportTask`) in
//! CloudTrail logs, as an AWS Lambda function and as a command-line tool.
//!
//! The data flow, one module per step:
//!
//! ```text
//! trigger event ──trigger──▶ object refs ──source──▶ byte stream ──decode──▶ records
//!   ──rule/detect──▶ rule matches ──dedup──▶ decision ──alert──▶ notification ──sink──▶ SNS / stdout
//! ```
//!
//! [`handler`] wires these for one Lambda invocation (also `trailwatch invoke`),
//! [`files`] for local files (`trailwatch scan`). AWS clients sit behind the
//! [`source::ObjectSource`], [`dedup::DedupStore`] and [`sink::AlertSink`] traits, so
//! the same pipeline runs against S3/DynamoDB/SNS, the local filesystem, and
//! in-memory fakes.

pub mod alert;
pub mod aws_error;
pub mod backfill;
pub mod batchops;
pub mod config;
pub mod counters;
pub mod decode;
pub mod dedup;
pub mod detect;
pub mod enrich;
pub mod events;
pub mod files;
pub mod handler;
pub mod history;
pub mod integrity;
pub mod pipeline;
pub mod read;
pub mod redrive;
pub mod respond;
pub mod rule;
pub mod scan;
pub mod sink;
pub mod source;
pub mod text;
pub mod time;
pub mod trigger;

/// Stand-in for a field a record does not have.
pub const UNKNOWN: &str = "unknown";
