//! The command line of history: `scan s3://…` arguments (checked before anything
//! is read) and the `backfill` command, with the S3 client built from the
//! environment (credentials, region, `AWS_ENDPOINT_URL`).

use std::fs::OpenOptions;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use trailwatch::backfill::{upload_manifest, write_manifest, CreateJob};
use trailwatch::history::layout::{plan, today};
use trailwatch::history::{resolve_filters, HistoryArgs, S3Lister, S3Url};

use super::stderr::{init_cli_logging, usage_error};
use super::{runtime, BackfillArgs, FilterArgs};

/// Objects fetched at once from S3 by default: fetching is bound by request
/// latency, not by the cores that decode.
pub const S3_JOBS: usize = 32;

/// The scan's paths: `s3://` locations and local paths, each in the order given.
pub fn split_paths(paths: &[PathBuf]) -> (Vec<String>, Vec<PathBuf>) {
    let mut s3 = Vec::new();
    let mut local = Vec::new();
    for path in paths {
        match path.to_str().filter(|p| S3Url::is_s3(p)) {
            Some(url) => s3.push(url.to_owned()),
            None => local.push(path.clone()),
        }
    }
    (s3, local)
}

fn history_args(url: &str, filters: &FilterArgs) -> HistoryArgs {
    HistoryArgs {
        url: url.to_owned(),
        since: filters.since.clone(),
        until: filters.until.clone(),
        accounts: filters.accounts.clone(),
        regions: filters.regions.clone(),
        ..HistoryArgs::default()
    }
}

/// Refuses what cannot work before any file is read: filters or a checkpoint
/// without an `s3://` path, one checkpoint for several, a malformed location,
/// time or account.
pub fn check_scan_args(
    s3_urls: &[String],
    filters: &FilterArgs,
    checkpoint: &Option<PathBuf>,
) -> Result<(), String> {
    if s3_urls.is_empty() {
        if !filters.is_empty() {
            return Err("--since, --until, --accounts and --regions select the log files of s3:// paths; none was given (local paths are read whole)".into());
        }
        if checkpoint.is_some() {
            return Err(
                "--checkpoint records the progress of an s3:// path; none was given".into(),
            );
        }
    }
    if s3_urls.len() > 1 && checkpoint.is_some() {
        return Err(format!(
            "--checkpoint records one s3:// path, {} were given: scan them one per run",
            s3_urls.len()
        ));
    }
    for url in s3_urls {
        S3Url::parse(url).map_err(|e| e.to_string())?;
        resolve_filters(&history_args(url, filters)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The S3 client of the environment's configuration.
pub async fn s3_client() -> aws_sdk_s3::Client {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_s3::Client::new(&aws)
}

pub fn backfill(args: BackfillArgs) -> ExitCode {
    init_cli_logging();
    if args.filters.since.is_none() {
        return usage_error(
            "backfill needs --since: the start of the history to replay (a date, or an age like 90d)",
        );
    }
    let url = match S3Url::parse(&args.url) {
        Ok(url) => url,
        Err(e) => return usage_error(e),
    };
    let manifest = match S3Url::parse(&args.manifest) {
        Ok(m) if !m.prefix.is_empty() && !m.prefix.ends_with('/') => m,
        Ok(_) => {
            return usage_error(format!(
                "--manifest {:?}: expected s3://BUCKET/KEY, the object to write",
                args.manifest
            ))
        }
        Err(e) => return usage_error(format!("--manifest: {e}")),
    };
    let Some((account_id, region)) = CreateJob::account_and_region(&args.function_arn) else {
        return usage_error(format!(
            "--function-arn {:?}: expected arn:aws:lambda:REGION:ACCOUNT:function:NAME",
            args.function_arn
        ));
    };
    let filters = match resolve_filters(&history_args(&args.url, &args.filters)) {
        Ok(filters) => filters,
        Err(e) => return usage_error(e),
    };
    let local =
        std::env::temp_dir().join(format!("trailwatch-manifest-{}.csv", std::process::id()));
    let result = runtime().block_on(async {
        let client = s3_client().await;
        let lister = S3Lister::new(client.clone());
        let today = today();
        let plan = plan(&lister, &url, &filters, today)
            .await
            .map_err(|e| e.to_string())?;
        // Streamed to a local file first: a long history is never held in memory.
        let mut out = BufWriter::new(create_new(&local)?);
        let count = write_manifest(
            &lister,
            &plan,
            &filters,
            today,
            args.jobs as usize,
            &mut out,
        )
        .await
        .map_err(|e| e.to_string())?;
        drop(out);
        if count == 0 {
            return Err(format!(
                "no CloudTrail log file under s3://{}/{} matches the filters: nothing to backfill",
                url.bucket, url.prefix
            ));
        }
        let etag = upload_manifest(&client, &local, &manifest.bucket, &manifest.prefix).await?;
        eprintln!(
            "manifest: {count} log files from {} prefixes written to s3://{}/{}",
            plan.len(),
            manifest.bucket,
            manifest.prefix
        );
        Ok(CreateJob {
            account_id,
            region,
            function_arn: args.function_arn.clone(),
            role_arn: args.role_arn.clone(),
            manifest_bucket: manifest.bucket.clone(),
            manifest_key: manifest.prefix.clone(),
            manifest_etag: etag,
            report_prefix: args.report_prefix.clone(),
        })
    });
    let _ = std::fs::remove_file(&local);
    match result {
        Ok(job) => {
            println!("{}", job.command());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trailwatch: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn create_new(path: &Path) -> Result<std::fs::File, String> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}
