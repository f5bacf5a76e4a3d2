//! `trailwatch backfill`: the S3 Batch Operations manifest of a history (the
//! planned prefixes' log files, pruned like a history scan) and the
//! `aws s3control create-job` command that runs the function over it.
//!
//! The manifest is CSV `bucket,key` with URL-encoded keys
//! (`S3BatchOperations_CSV_20180820`), written as it is listed.

use std::io::Write;

use futures::stream::{self, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::history::layout::{Filters, Plan};
use crate::history::list::{ListError, Lister};

/// Keys are URL-encoded in the manifest; `/`, `-`, `_`, `.` and `~` stay as they
/// are, so CloudTrail keys stay readable.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    List(#[from] ListError),
    #[error("writing the manifest: {0}")]
    Write(#[from] std::io::Error),
}

/// One manifest line.
pub fn manifest_line(bucket: &str, key: &str) -> String {
    format!("{bucket},{}\n", utf8_percent_encode(key, KEY_ENCODE))
}

/// Lists the plan's prefixes (`jobs` at a time, written in plan order) and writes
/// one line per log file the filters admit. Returns the number of lines.
pub async fn write_manifest(
    lister: &dyn Lister,
    plan: &Plan,
    filters: &Filters,
    today: i64,
    jobs: usize,
    out: &mut dyn Write,
) -> Result<u64, BackfillError> {
    let bucket = plan.bucket.as_str();
    let mut lines = stream::iter(plan.prefixes())
        .map(|prefix| async move {
            let pages: Vec<_> = lister.pages(bucket, &prefix, false).try_collect().await?;
            let text: String = pages
                .into_iter()
                .flat_map(|p| p.objects)
                .filter(|o| filters.admits_key(&o.key, today))
                .map(|o| manifest_line(bucket, &o.key))
                .collect();
            Ok::<_, ListError>(text)
        })
        .buffered(jobs.max(1));
    let mut count = 0;
    while let Some(text) = lines.next().await {
        let text = text?;
        count += text.lines().count() as u64;
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    Ok(count)
}

/// What `aws s3control create-job` needs.
#[derive(Debug, Clone)]
pub struct CreateJob {
    pub account_id: String,
    pub region: String,
    pub function_arn: String,
    /// The stack's Batch Operations role (output `BatchOperationsRoleArn`).
    pub role_arn: String,
    pub manifest_bucket: String,
    pub manifest_key: String,
    /// The manifest object's ETag, as `PutObject` returned it.
    pub manifest_etag: String,
    /// Where the completion report (failed tasks only) goes.
    pub report_prefix: String,
}

impl CreateJob {
    /// The account and region of a Lambda function ARN
    /// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`), where the job must run.
    pub fn account_and_region(function_arn: &str) -> Option<(String, String)> {
        let parts: Vec<&str> = function_arn.split(':').collect();
        (parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function")
            .then(|| (parts[4].to_owned(), parts[3].to_owned()))
    }

    /// The shell command, arguments single-quoted.
    pub fn command(&self) -> String {
        let operation = serde_json::json!({"LambdaInvoke": {
            "FunctionArn": self.function_arn,
            "InvocationSchemaVersion": "1.0",
        }});
        let manifest = serde_json::json!({
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {
                "ObjectArn": format!("arn:aws:s3:::{}/{}", self.manifest_bucket, self.manifest_key),
                "ETag": self.manifest_etag.trim_matches('"'),
            },
        });
        let report = serde_json::json!({
            "Bucket": format!("arn:aws:s3:::{}", self.manifest_bucket),
            "Prefix": self.report_prefix,
            "Format": "Report_CSV_20180820",
            "Enabled": true,
            "ReportScope": "FailedTasksOnly",
        });
        let quote = |v: &serde_json::Value| format!("'{}'", v.to_string().replace('\'', r"'\''"));
        format!(
            "aws s3control create-job --region {} --account-id {} --no-confirmation-required --priority 10 \\\n  --role-arn {} \\\n  --operation {} \\\n  --manifest {} \\\n  --report {}",
            self.region,
            self.account_id,
            self.role_arn,
            quote(&operation),
            quote(&manifest),
            quote(&report),
        )
    }
}

/// Uploads a manifest file and returns its ETag (needed by `create-job`).
pub async fn upload_manifest(
    client: &aws_sdk_s3::Client,
    path: &std::path::Path,
    bucket: &str,
    key: &str,
) -> Result<String, String> {
    let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/csv")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            format!(
                "s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
    out.e_tag()
        .map(|t| t.trim_matches('"').to_owned())
        .ok_or_else(|| format!("s3://{bucket}/{key}: PutObject returned no ETag"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::layout::{plan, S3Url};
    use crate::history::list::MemoryLister;

    #[test]
    fn keys_are_url_encoded() {
        assert_eq!(
            manifest_line("b", "audit logs/AWSLogs/1/CloudTrail/x+y,z.json.gz"),
            "b,audit%20logs/AWSLogs/1/CloudTrail/x%2By%2Cz.json.gz\n"
        );
    }

    #[tokio::test]
    async fn the_manifest_holds_the_planned_log_files_only() {
        let keys = [
            "AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/01/a.json.gz",
            "AWSLogs/111111111111/CloudTrail/us-east-1/2024/03/02/b.json.gz",
            "AWSLogs/111111111111/CloudTrail/eu-west-1/2024/03/01/c.json.gz",
            "AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2024/03/01/d.json.gz",
        ];
        let lister = MemoryLister::new("bkt", keys.map(String::from));
        let filters = Filters {
            regions: ["us-east-1".to_owned()].into(),
            ..Filters::default()
        };
        let today = crate::history::window::parse_day_path("2024/03/05").unwrap();
        let plan = plan(&lister, &S3Url::parse("s3://bkt").unwrap(), &filters, today)
            .await
            .unwrap();
        let mut out = Vec::new();
        let n = write_manifest(&lister, &plan, &filters, today, 4, &mut out)
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("bkt,{}\nbkt,{}\n", keys[0], keys[1])
        );
    }

    #[test]
    fn the_command_names_the_manifest_and_role() {
        let job = CreateJob {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:trailwatch".into(),
            role_arn: "arn:aws:iam::123456789012:role/trailwatch-batch".into(),
            manifest_bucket: "out".into(),
            manifest_key: "manifest.csv".into(),
            manifest_etag: "\"abc\"".into(),
            report_prefix: "trailwatch-backfill".into(),
        };
        let command = job.command();
        assert!(command
            .starts_with("aws s3control create-job --region us-east-1 --account-id 123456789012"));
        assert!(command.contains(r#""ObjectArn":"arn:aws:s3:::out/manifest.csv""#));
        assert!(command.contains(r#""ETag":"abc""#));
        assert!(command.contains("--role-arn arn:aws:iam::123456789012:role/trailwatch-batch"));
        assert!(command.contains("S3BatchOperations_CSV_20180820"));
        assert_eq!(
            CreateJob::account_and_region(&job.function_arn),
            Some(("123456789012".into(), "us-east-1".into()))
        );
        assert_eq!(CreateJob::account_and_region("arn:aws:s3:::b"), None);
    }
}
