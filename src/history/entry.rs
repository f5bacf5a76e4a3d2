//! The entry point of `trailwatch scan s3://…`: arguments -> resolved window,
//! checkpoint, plan, progress bar and collected matches, with S3 behind the
//! lister and source traits.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::layout::{plan, today, Filters, S3Url, UrlError};
use super::list::{ListError, Lister};
use super::scan::{collect, HistoryScan, Progress};
use super::window::{parse_since, parse_until, TimeError, Window};
use crate::detect::Detector;
use crate::scan::Collected;
use crate::source::ObjectSource;

/// The command-line options of a history scan.
#[derive(Debug, Clone, Default)]
pub struct HistoryArgs {
    /// `s3://BUCKET[/PREFIX]`.
    pub url: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub jobs: usize,
    pub checkpoint: Option<PathBuf>,
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error("--accounts {0:?}: an account id has 12 digits")]
    Account(String),
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// The filters of the arguments: `--since`/`--until` resolved against the
/// clock, `--accounts` checked. A backfill prunes its manifest with them, like a
/// scan prunes its listing.
pub fn resolve_filters(args: &HistoryArgs) -> Result<Filters, HistoryError> {
    let now = crate::time::now_ms();
    let window = Window {
        since_ms: args
            .since
            .as_deref()
            .map(|t| parse_since(t, now))
            .transpose()?,
        until_ms: args
            .until
            .as_deref()
            .map(|t| parse_until(t, now))
            .transpose()?,
    };
    if let Some(bad) = args.accounts.iter().find(|a| !super::layout::is_account(a)) {
        return Err(HistoryError::Account(bad.clone()));
    }
    Ok(Filters {
        window,
        accounts: args.accounts.iter().cloned().collect(),
        regions: args.regions.iter().cloned().collect(),
    })
}

/// Resolves the arguments, plans the scan and collects its matches (decide them
/// with [`super::scan::decide`], together with any local files' matches).
pub async fn collect_history(
    args: &HistoryArgs,
    lister: Arc<dyn Lister>,
    source: Arc<dyn ObjectSource>,
    detector: Arc<Detector>,
) -> Result<Collected, HistoryError> {
    let url = S3Url::parse(&args.url)?;
    let Filters {
        mut window,
        accounts,
        regions,
    } = resolve_filters(args)?;
    let mut checkpoint = match &args.checkpoint {
        Some(path) => {
            // The arguments as typed: `--since 7d` on a re-run resumes the window
            // the first run resolved, which the checkpoint keeps.
            let identity = json!({
                "url": args.url,
                "since": args.since,
                "until": args.until,
                "accounts": args.accounts,
                "regions": args.regions,
            });
            let checkpoint = Checkpoint::open(path, &identity, window)?;
            window = checkpoint.window;
            Some(checkpoint)
        }
        None => None,
    };
    let filters = Filters {
        window,
        accounts,
        regions,
    };
    let scan = HistoryScan {
        lister,
        source,
        detector,
        filters,
        jobs: args.jobs.max(1),
        progress: Arc::new(Progress::default()),
        today: today(),
    };
    let plan = plan(scan.lister.as_ref(), &url, &scan.filters, scan.today).await?;
    let bar = args.progress.then(|| scan.progress.bar());
    let collected = collect(&scan, &plan, checkpoint.as_mut()).await;
    if let Some(bar) = bar {
        bar.finish().await;
    }
    Ok(collected?)
}

/// [`collect_history`] against S3 with one client.
pub async fn collect_s3(
    args: &HistoryArgs,
    client: aws_sdk_s3::Client,
    detector: Arc<Detector>,
) -> Result<Collected, HistoryError> {
    collect_history(
        args,
        Arc::new(super::list::S3Lister::new(client.clone())),
        Arc::new(crate::source::S3Source::new(client)),
        detector,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Limits;
    use crate::history::list::MemoryLister;
    use crate::rule::RuleSet;
    use crate::source::MemorySource;

    #[tokio::test]
    async fn bad_arguments_are_named() {
        let detector = Arc::new(Detector::new(RuleSet::embedded(), Limits::default()));
        let lister: Arc<dyn Lister> = Arc::new(MemoryLister::new("bkt", Vec::new()));
        let source: Arc<dyn ObjectSource> = Arc::new(MemorySource::default());
        let run = |args: HistoryArgs| {
            let (lister, source, detector) = (lister.clone(), source.clone(), detector.clone());
            async move { collect_history(&args, lister, source, detector).await }
        };
        let base = HistoryArgs {
            url: "s3://bkt/".into(),
            jobs: 2,
            ..HistoryArgs::default()
        };
        let err = run(HistoryArgs {
            since: Some("last tuesday".into()),
            ..base.clone()
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("last tuesday"), "{err}");
        let err = run(HistoryArgs {
            accounts: vec!["12345".into()],
            ..base.clone()
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("12345"), "{err}");
        let err = run(HistoryArgs {
            url: "s3:/bkt".into(),
            ..base.clone()
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("s3:/bkt"), "{err}");
        let empty = run(base).await.unwrap();
        assert_eq!(empty.counters.objects, 0);
    }
}
