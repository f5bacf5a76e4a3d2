//! Enrichment in words: the e-mail's rows and Security Hub's `ProductFields`.

use super::types::{BucketInfo, BucketOwner, ExportTaskInfo, Known, SourceInfo};
use super::{Enrichment, EnrichmentError};

impl Enrichment {
    /// The e-mail rows, (label, text), in this order: `Status` (the export task),
    /// `Source` (the snapshot's database), `Bucket`. A lookup the rule does not
    /// declare has no row; a failed one says why its values are unknown.
    ///
    /// ```text
    /// Status:   in_progress, 12% (3 of 250 GB)
    /// Source:   postgres 15.4, instance orders-prod, 250 GB, encrypted, manual snapshot of 2024-03-15T10:00:00Z
    /// Bucket:   NOT confirmed as owned by 123456789012 (HeadBucket 403: another account owns it, or it is not visible to this role)
    /// ```
    pub fn email_rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if let Some(task) = &self.export_task {
            let allocated = self
                .source
                .as_ref()
                .and_then(|s| s.allocated_storage_gb.present().copied());
            rows.push(("Status", task_text(task, allocated, &self.errors)));
        }
        if let Some(source) = &self.source {
            rows.push(("Source", source_text(source, &self.errors)));
        }
        if let Some(bucket) = &self.bucket {
            rows.push(("Bucket", bucket_text(bucket)));
        }
        rows
    }

    /// Security Hub `ProductFields` (`trailwatch/enrichment/...`), as text.
    pub fn product_fields(&self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let mut put = |name: &str, value: String| {
            fields.push((format!("trailwatch/enrichment/{name}"), value));
        };
        if let Some(task) = &self.export_task {
            put("exportTask/status", task.status.text().to_owned());
            put(
                "exportTask/percentProgress",
                number_text(&task.percent_progress),
            );
            put(
                "exportTask/totalExtractedDataInGB",
                number_text(&task.total_extracted_data_in_gb),
            );
        }
        if let Some(source) = &self.source {
            put("source/engine", optional_text(&source.engine));
            put("source/database", optional_text(&source.database));
            put(
                "source/allocatedStorageGB",
                number_text(&source.allocated_storage_gb),
            );
            put("source/encrypted", bool_text(&source.encrypted));
        }
        if let Some(bucket) = &self.bucket {
            put("bucket/owner", bucket.owner.label().to_owned());
            put(
                "bucket/status",
                bucket
                    .status
                    .map_or_else(|| crate::UNKNOWN.to_owned(), |s| s.to_string()),
            );
            put("bucket/trusted", bucket.trusted.to_string());
        }
        if !self.errors.is_empty() {
            put(
                "errors",
                self.errors
                    .iter()
                    .map(|e| format!("{} {}", e.call, e.cause))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        fields
    }
}

fn optional_text(value: &Known<Option<String>>) -> String {
    match value {
        Known::Value(Some(text)) => text.clone(),
        Known::Value(None) => "none".into(),
        Known::Unknown => crate::UNKNOWN.into(),
    }
}

fn number_text(value: &Known<Option<i32>>) -> String {
    match value {
        Known::Value(Some(n)) => n.to_string(),
        Known::Value(None) => "none".into(),
        Known::Unknown => crate::UNKNOWN.into(),
    }
}

fn bool_text(value: &Known<Option<bool>>) -> String {
    match value {
        Known::Value(Some(b)) => b.to_string(),
        Known::Value(None) => "none".into(),
        Known::Unknown => crate::UNKNOWN.into(),
    }
}

/// `unknown (rds:DescribeExportTasks: throttled)`: the first error of the call.
fn unknown_because(errors: &[EnrichmentError], calls: &[&str]) -> String {
    match errors
        .iter()
        .find(|e| calls.iter().any(|c| e.call == *c) || e.call == super::ASSUME_ROLE)
    {
        Some(e) => format!("unknown ({}: {})", e.call, e.cause),
        None => crate::UNKNOWN.into(),
    }
}

fn task_text(
    task: &ExportTaskInfo,
    allocated_gb: Option<i32>,
    errors: &[EnrichmentError],
) -> String {
    let Known::Value(status) = &task.status else {
        return unknown_because(errors, &[super::DESCRIBE_EXPORT_TASKS]);
    };
    if status == super::NOT_FOUND {
        return format!("no export task {} found", task.id);
    }
    let mut text = status.clone();
    if let Some(percent) = task.percent_progress.present() {
        text.push_str(&format!(", {percent}%"));
    }
    match (task.total_extracted_data_in_gb.present(), allocated_gb) {
        (Some(done), Some(total)) => text.push_str(&format!(" ({done} of {total} GB)")),
        (Some(done), None) => text.push_str(&format!(" ({done} GB extracted)")),
        _ => {}
    }
    if let Some(cause) = task.failure_cause.present() {
        text.push_str(&format!(": {cause}"));
    }
    text
}

fn source_text(source: &SourceInfo, errors: &[EnrichmentError]) -> String {
    let Known::Value(status) = &source.status else {
        return unknown_because(
            errors,
            &[
                super::DESCRIBE_DB_SNAPSHOTS,
                super::DESCRIBE_DB_CLUSTER_SNAPSHOTS,
            ],
        );
    };
    if status == super::NOT_FOUND {
        return format!("no {} {} found", source.kind, source.identifier);
    }
    let mut parts = Vec::new();
    match (source.engine.present(), source.engine_version.present()) {
        (Some(engine), Some(version)) => parts.push(format!("{engine} {version}")),
        (Some(engine), None) => parts.push(engine.clone()),
        _ => {}
    }
    if let Some(database) = source.database.present() {
        let what = if source.kind == "cluster-snapshot" {
            "cluster"
        } else {
            "instance"
        };
        parts.push(format!("{what} {database}"));
    }
    if let Some(gb) = source.allocated_storage_gb.present() {
        parts.push(format!("{gb} GB"));
    }
    match source.encrypted.present() {
        Some(true) => parts.push("encrypted".into()),
        Some(false) => parts.push("NOT encrypted".into()),
        None => {}
    }
    let kind = source
        .snapshot_type
        .present()
        .map_or_else(|| "snapshot".to_owned(), |t| format!("{t} snapshot"));
    match source.snapshot_time.present() {
        Some(time) => parts.push(format!("{kind} of {time}")),
        None => parts.push(kind),
    }
    parts.join(", ")
}

fn bucket_text(bucket: &BucketInfo) -> String {
    let mut text = match bucket.owner {
        BucketOwner::Confirmed => format!(
            "confirmed as owned by {}{}",
            bucket.expected_owner,
            bucket
                .region
                .as_deref()
                .map(|r| format!(" (region {r})"))
                .unwrap_or_default()
        ),
        BucketOwner::Unconfirmed => format!(
            "NOT confirmed as owned by {} ({})",
            bucket.expected_owner, bucket.detail
        ),
        BucketOwner::Unknown => format!(
            "ownership by {} unknown ({})",
            bucket.expected_owner, bucket.detail
        ),
    };
    if let Some(by) = &bucket.trusted_by {
        text.push_str(&format!("; trusted ({by})"));
    }
    text
}
