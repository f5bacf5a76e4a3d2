//! Test helper: RDS export tasks on the emulator, and endpoints that never answer.
//!
//! moto creates a new export task `complete` at once (a real one starts in
//! `starting` and restores the snapshot for minutes): tests that need a running
//! task decide over facts saying so and use the emulator for the calls only.

use std::net::{Ipv4Addr, TcpListener};

use aws_config::SdkConfig;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};

use crate::support::moto::unique;

/// What [`export`] created.
pub struct Export {
    pub db: String,
    pub snapshot: String,
    pub snapshot_arn: String,
    pub task: String,
    pub bucket: String,
}

/// A DB instance (postgres, 250 GB, encrypted), a manual snapshot of it, a bucket,
/// and an export task of the snapshot to the bucket, in the account of `conf`.
pub async fn export(conf: &SdkConfig, s3: &aws_sdk_s3::Client) -> Export {
    let rds = aws_sdk_rds::Client::new(conf);
    let db = unique("orders");
    rds.create_db_instance()
        .db_instance_identifier(&db)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .engine_version("15.4")
        .allocated_storage(250)
        .storage_encrypted(true)
        .master_username("admin")
        .master_user_password("not-a-secret-123")
        .send()
        .await
        .expect("create DB instance");
    let snapshot = format!("{db}-snap");
    let snapshot_arn = rds
        .create_db_snapshot()
        .db_snapshot_identifier(&snapshot)
        .db_instance_identifier(&db)
        .send()
        .await
        .expect("create DB snapshot")
        .db_snapshot
        .and_then(|s| s.db_snapshot_arn)
        .expect("snapshot ARN");
    let bucket = unique("exports");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let task = start_export(conf, &snapshot_arn, &bucket).await;
    Export {
        db,
        snapshot,
        snapshot_arn,
        task,
        bucket,
    }
}

/// Starts one more export of a snapshot; returns the task's identifier.
pub async fn start_export(conf: &SdkConfig, snapshot_arn: &str, bucket: &str) -> String {
    let task = unique("task");
    aws_sdk_rds::Client::new(conf)
        .start_export_task()
        .export_task_identifier(&task)
        .source_arn(snapshot_arn)
        .s3_bucket_name(bucket)
        .iam_role_arn("arn:aws:iam::123456789012:role/rds-s3-export-role")
        .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/6d7c1a3e-92f4-4b1e-8c55-0d2f4e9a1b77")
        .send()
        .await
        .expect("start export task");
    task
}

/// The task's status as DescribeExportTasks tells it.
pub async fn task_status(conf: &SdkConfig, task: &str) -> String {
    aws_sdk_rds::Client::new(conf)
        .describe_export_tasks()
        .export_task_identifier(task)
        .send()
        .await
        .expect("describe export task")
        .export_tasks()
        .first()
        .and_then(|t| t.status())
        .expect("a status")
        .to_owned()
}

/// `conf` acting in `account`, with the emulator's credentials for a role there
/// (moto keys assumed-role credentials to the role's account).
pub async fn as_account(conf: &SdkConfig, account: &str, role: &str) -> SdkConfig {
    let assumed = aws_sdk_sts::Client::new(conf)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{role}"))
        .role_session_name("test-setup")
        .send()
        .await
        .expect("assume role on the emulator")
        .credentials
        .expect("credentials");
    conf.to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            assumed.access_key_id,
            assumed.secret_access_key,
            Some(assumed.session_token),
            None,
            "test-setup",
        )))
        .build()
}

/// An address that accepts connections and never answers: the kernel completes
/// the handshake into the listener's backlog, nothing ever reads the request.
pub struct BlackHole {
    pub endpoint: String,
    _listener: TcpListener,
}

impl BlackHole {
    pub fn new() -> BlackHole {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        BlackHole {
            endpoint: format!("http://127.0.0.1:{port}"),
            _listener: listener,
        }
    }
}

/// SDK configuration for `endpoint` with static test credentials.
pub async fn config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(crate::support::moto::REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// An RDS endpoint that refuses every call: HTTP 403 with RDS's `AccessDenied`
/// error (the Query protocol's XML), as a role without the permission gets it.
/// Point a process at it with `AWS_ENDPOINT_URL_RDS`.
pub struct Denier {
    pub endpoint: String,
    server: tokio::task::JoinHandle<()>,
}

impl Denier {
    pub async fn start() -> Denier {
        use http_body_util::Full;
        use hyper::body::Bytes;
        use hyper_util::rt::TokioIo;

        const DENIED: &str = "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
            <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
            arn:aws:sts::123456789012:assumed-role/trailwatch/fn is not authorized to perform \
            this rds action</Message></Error><RequestId>denied-1</RequestId></ErrorResponse>";
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the denier");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_request| async {
                        hyper::Response::builder()
                            .status(403)
                            .header("content-type", "text/xml")
                            .body(Full::new(Bytes::from_static(DENIED.as_bytes())))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Denier { endpoint, server }
    }
}

impl Drop for Denier {
    fn drop(&mut self) {
        self.server.abort();
    }
}
