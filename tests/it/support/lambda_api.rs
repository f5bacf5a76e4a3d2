//! Test helper: the real `trailwatch` binary in Lambda mode, driven through a local
//! Lambda Runtime API, with everything it writes to stdout and stderr (what Lambda
//! sends to CloudWatch Logs) kept in a file, so that a test can read the log bytes
//! of each invocation.
//!
//! The Runtime API is the documented HTTP interface a custom runtime polls
//! (`GET /2018-06-01/runtime/invocation/next`, then `POST .../response` or
//! `.../error`); hyper serves it here on loopback. An invocation's log is what the
//! process wrote between being handed the event and asking for the next one: by
//! then every line it wrote has reached the file (stdout and stderr share one open
//! file, written synchronously line by line).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};

/// How long one invocation may take before the test gives up.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(120);

/// What the function answered.
#[derive(Debug)]
pub enum Answer {
    /// `POST /runtime/invocation/{id}/response`: the handler's value.
    Response(Value),
    /// `POST /runtime/invocation/{id}/error`: the diagnostic (`errorType`, `errorMessage`).
    Error(Value),
}

/// One invocation: the answer and the bytes the process logged while handling it.
#[derive(Debug)]
pub struct Invocation {
    pub answer: Answer,
    pub log: Vec<u8>,
}

impl Invocation {
    /// The log's lines (one JSON document each in JSON format).
    pub fn lines(&self) -> Vec<&str> {
        std::str::from_utf8(&self.log)
            .expect("the log is UTF-8")
            .lines()
            .collect()
    }

    /// The handler's response; panics, with the log, on an error answer.
    pub fn response(&self) -> &Value {
        match &self.answer {
            Answer::Response(value) => value,
            Answer::Error(error) => panic!(
                "the invocation failed: {error}\nlog:\n{}",
                String::from_utf8_lossy(&self.log)
            ),
        }
    }
}

/// Messages from the Runtime API server to the test.
enum Report {
    /// The function asked for the next event: it is idle.
    Idle,
    Answer(String, Answer),
    InitError(Value),
}

/// The `trailwatch` binary running as a Lambda function; killed when dropped.
pub struct LambdaFunction {
    child: Child,
    events: mpsc::UnboundedSender<(String, Value)>,
    reports: mpsc::UnboundedReceiver<Report>,
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
    /// The log's length when the function last became idle.
    idle_at: u64,
    invocations: u64,
    server: tokio::task::JoinHandle<()>,
}

impl LambdaFunction {
    /// Starts the binary with the variables Lambda sets for a function (name,
    /// memory, version, JSON log format) plus `env`, and no others from the test's
    /// environment; returns once the function asks for its first event, so its
    /// cold start is not counted in any invocation's log.
    pub async fn start(env: &[(&str, String)]) -> LambdaFunction {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the Runtime API");
        let address = listener.local_addr().expect("Runtime API address");
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: Mutex::new(events_rx),
            reports: reports_tx,
        });
        let server = tokio::spawn(serve(listener, shared));

        let log_dir = tempfile::tempdir().expect("a folder for the function's log");
        let log_path = log_dir.path().join("function.log");
        let log = std::fs::File::create(&log_path).expect("create the log file");
        let log_err = log.try_clone().expect("share the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "trailwatch-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/trailwatch-test")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2024/05/01/[$LATEST]0123456789abcdef",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .expect("start the trailwatch binary");
        let mut function = LambdaFunction {
            child,
            events: events_tx,
            reports: reports_rx,
            log_path,
            _log_dir: log_dir,
            idle_at: 0,
            invocations: 0,
            server,
        };
        function.wait_idle().await;
        function
    }

    /// Hands `event` to the function and waits until it has answered and asked for
    /// the next one.
    pub async fn invoke(&mut self, event: Value) -> Invocation {
        self.invocations += 1;
        let request_id = format!("8f5c2a4e-0000-4000-8000-{:012}", self.invocations);
        let start = self.idle_at;
        self.events
            .send((request_id.clone(), event))
            .expect("the Runtime API server is running");
        let answer = match self.report().await {
            Report::Answer(id, answer) => {
                assert_eq!(id, request_id, "an answer for another invocation");
                answer
            }
            Report::Idle => panic!("asked for an event before answering {request_id}"),
            Report::InitError(e) => panic!("init error: {e}"),
        };
        self.wait_idle().await;
        let log = std::fs::read(&self.log_path).expect("read the function's log");
        Invocation {
            answer,
            log: log[start as usize..self.idle_at as usize].to_vec(),
        }
    }

    /// Everything the process has logged so far.
    pub fn whole_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    async fn wait_idle(&mut self) {
        match self.report().await {
            Report::Idle => {}
            Report::Answer(id, _) => panic!("an unexpected answer for {id}"),
            Report::InitError(e) => panic!("init error: {e}\nlog:\n{}", self.whole_log()),
        }
        self.idle_at = std::fs::metadata(&self.log_path)
            .expect("the function's log")
            .len();
    }

    async fn report(&mut self) -> Report {
        let deadline = Instant::now() + INVOCATION_TIMEOUT;
        loop {
            match tokio::time::timeout(Duration::from_millis(250), self.reports.recv()).await {
                Ok(Some(report)) => return report,
                Ok(None) => panic!("the Runtime API server stopped"),
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("the function exited ({status})\nlog:\n{}", self.whole_log());
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no word from the function within {INVOCATION_TIMEOUT:?}\nlog:\n{}",
                        self.whole_log()
                    );
                }
            }
        }
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

struct Shared {
    /// Events waiting for the function, with their request ids.
    events: Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    reports: mpsc::UnboundedSender<Report>,
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, hyper::Error>(route(&shared, request).await) }
            });
            // A connection the function drops (at exit) is no error of the test's.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let parsed = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let rest = path
        .strip_prefix("/2018-06-01/runtime/")
        .unwrap_or_default();
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            let _ = shared.reports.send(Report::Idle);
            let next = shared.events.lock().await.recv().await;
            let Some((request_id, event)) = next else {
                return reply(StatusCode::GONE, "no more events".into());
            };
            let deadline = trailwatch::time::now_ms() + INVOCATION_TIMEOUT.as_millis() as i64;
            Response::builder()
                .status(StatusCode::OK)
                .header("lambda-runtime-aws-request-id", &request_id)
                .header("lambda-runtime-deadline-ms", deadline.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:trailwatch-test",
                )
                // Lambda sends a trace header with every invocation, sampled or not.
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-6632114c-5a8e2b1d0c9e4f7a6b3d2e1f;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=1:8a3f2b1c:0",
                )
                .body(Full::new(Bytes::from(event.to_string())))
                .expect("a valid response")
        }
        (Method::POST, ["invocation", id, "response"]) => {
            let _ = shared
                .reports
                .send(Report::Answer((*id).to_owned(), Answer::Response(parsed())));
            reply(StatusCode::ACCEPTED, String::new())
        }
        (Method::POST, ["invocation", id, "error"]) => {
            let _ = shared
                .reports
                .send(Report::Answer((*id).to_owned(), Answer::Error(parsed())));
            reply(StatusCode::ACCEPTED, String::new())
        }
        (Method::POST, ["init", "error"]) => {
            let _ = shared.reports.send(Report::InitError(parsed()));
            reply(StatusCode::ACCEPTED, String::new())
        }
        _ => reply(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    }
}

fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
        .expect("a valid response")
}
