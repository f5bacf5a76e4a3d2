//! Test helper: a private `moto_server` (local AWS endpoints for S3, SNS, SQS,
//! DynamoDB, ...) on a free loopback port, killed when the handle is dropped.
//!
//! The executable is looked up in this order: `$TRAILWATCH_MOTO_SERVER`,
//! `<crate>/.venv/bin/moto_server` (made by `scripts/venv.sh`), `moto_server`
//! on `PATH`.
//!
//! Every server can record the requests it receives (moto's own recorder, into a
//! file of the handle's), so a test can count the calls a separate process made:
//! [`MotoServer::start_recording`], then [`MotoServer::recorded`].

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one start attempt may take before the server must answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Start attempts (each on a fresh port) before giving up.
const ATTEMPTS: usize = 5;

/// Region the helper's clients and environment use.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`; the process is killed when this is dropped.
pub struct MotoServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub endpoint: String,
    child: Child,
    /// Holds moto's recording file (`MOTO_RECORDER_FILEPATH`).
    recording: tempfile::TempDir,
}

/// One request the server received while recording.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Recorded {
    pub method: String,
    /// Path and query as sent (`/bucket?list-type=2&prefix=...`), after the host.
    pub url: String,
    /// The request body as moto recorded it (base64 when `body_encoded`).
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub body_encoded: bool,
}

impl Recorded {
    /// The decoded value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.url.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| {
                percent_encoding::percent_decode_str(&value.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    }

    /// The body as text (`Action=AssumeRole&...` for a query-protocol call).
    pub fn body_text(&self) -> String {
        if !self.body_encoded {
            return self.body.clone();
        }
        let bytes = aws_smithy_types::base64::decode(&self.body).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// An S3 `ListObjectsV2` call.
    pub fn is_list_objects_v2(&self) -> bool {
        self.method == "GET" && self.query("list-type").as_deref() == Some("2")
    }
}

impl MotoServer {
    /// Start a fresh server on a free loopback port and wait until it answers.
    ///
    /// Panics with a clear message when `moto_server` cannot be found or does
    /// not come up.
    pub fn start() -> MotoServer {
        let exe = find_moto_server();
        Self::start_with(&exe, |port| {
            let mut command = Command::new(&exe);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        })
    }

    /// Like [`MotoServer::start`], but the server handles one request at a time.
    ///
    /// moto's backends are not thread-safe: two concurrent conditional writes to
    /// one DynamoDB item can both succeed (each checks the condition before either
    /// stores its item), which DynamoDB never allows. Tests of concurrent
    /// conditional writes use this server, whose answers are linearizable like
    /// AWS's. It is moto's own server application behind one lock, run by the
    /// Python interpreter of the `moto_server` script.
    pub fn start_serialized() -> MotoServer {
        Self::start_script(false)
    }

    /// Like [`MotoServer::start_serialized`], with the export tasks
    /// `StartExportTask` creates left `starting`, as a real task is while it
    /// restores its snapshot (minutes), instead of moto's `complete` at once. The
    /// calls are moto's own (DescribeExportTasks, CancelExportTask), so a test can
    /// run the containment's real call path against a task it may cancel.
    pub fn start_with_running_exports() -> MotoServer {
        Self::start_script(true)
    }

    fn start_script(running_exports: bool) -> MotoServer {
        let exe = find_moto_server();
        let interpreter = script_interpreter(&exe);
        Self::start_with(&exe, |port| {
            let mut command = Command::new(&interpreter[0]);
            command.args(&interpreter[1..]).args([
                "-c",
                SERIALIZED_SERVER,
                "127.0.0.1",
                &port.to_string(),
                if running_exports {
                    "running-exports"
                } else {
                    ""
                },
            ]);
            command
        })
    }

    fn start_with(exe: &Path, command: impl Fn(u16) -> Command) -> MotoServer {
        let recording = tempfile::tempdir().expect("a temporary folder for moto's recording");
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let mut child = command(port)
                .env(
                    "MOTO_RECORDER_FILEPATH",
                    recording.path().join("requests.jsonl"),
                )
                // Never inherit the test runner's pipes: a child holding them
                // would keep CI waiting after the tests are done.
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    return MotoServer {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        child,
                        recording,
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        panic!(
            "{} did not start after {ATTEMPTS} attempts: {last_error}",
            exe.display()
        );
    }

    /// Shared SDK configuration pointing at this server: region `us-east-1`,
    /// static test credentials, endpoint URL of the server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    /// Starts recording requests, forgetting any recorded before.
    pub async fn start_recording(&self) {
        self.recorder("reset-recording").await;
        self.recorder("start-recording").await;
    }

    /// Stops recording and returns the requests received since
    /// [`MotoServer::start_recording`], in order.
    pub async fn recorded(&self) -> Vec<Recorded> {
        self.recorder("stop-recording").await;
        let path = self.recording.path().join("requests.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut request: Recorded = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("moto's recording {}: {e}: {line}", path.display()));
                // Recorded URLs are absolute; keep what follows the host.
                if let Some(rest) = request.url.strip_prefix(&self.endpoint) {
                    request.url = rest.to_owned();
                }
                request
            })
            .collect()
    }

    async fn recorder(&self, action: &str) {
        let url = format!("{}/moto-api/recorder/{action}", self.endpoint);
        let (status, body) = super::http::get(&url, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("moto recorder: {e}"));
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    }

    /// S3 client for this server, with path-style addressing (moto does not
    /// serve virtual-hosted bucket names on a bare address).
    pub fn s3_client(&self, conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
        let s3_conf = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(s3_conf)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A unique lowercase name (valid for buckets, topics, queues and tables):
/// `prefix`, the process id, a per-process counter and the clock's nanoseconds.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{n}-{nanos}",
        prefix.to_ascii_lowercase(),
        std::process::id()
    )
}

/// moto's server application (as `moto_server` builds it) with every request
/// handled under one lock. Arguments: host, port, and `running-exports` to leave
/// new RDS export tasks `starting` (see [`MotoServer::start_with_running_exports`]).
const SERIALIZED_SERVER: &str = r#"
import os, sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
if len(sys.argv) > 3 and sys.argv[3] == "running-exports":
    import moto.rds.models as rds
    created = rds.ExportTask.__init__
    def starting(self, *args, **kwargs):
        created(self, *args, **kwargs)
        self.status = "starting"
    rds.ExportTask.__init__ = starting
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()

def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))

run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
"#;

/// The interpreter (and its arguments) from a script's `#!` line.
fn script_interpreter(script: &Path) -> Vec<String> {
    let text =
        std::fs::read(script).unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let words: Vec<String> = first
        .strip_prefix("#!")
        .unwrap_or_else(|| panic!("{} is not a Python script with a #! line", script.display()))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(!words.is_empty(), "{}: empty #! line", script.display());
    words
}

fn find_moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("TRAILWATCH_MOTO_SERVER") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "moto_server not found (emulator tests need it): `make test` installs it into {}; \
         or set TRAILWATCH_MOTO_SERVER to its path",
        venv.display()
    );
}

/// Ask the kernel for a free port; the listener is dropped before the server
/// binds it (a lost race is handled by retrying on another port).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Err(format!("exited early on port {port} ({status})")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
        if answers_200(port) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no answer on port {port} within {}s",
                READY_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// True when the server answers `GET /moto-api/` with 200.
fn answers_200(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/moto-api/");
    matches!(
        crate::support::http::get_blocking(&url, Duration::from_secs(2)),
        Ok((200, _))
    )
}
