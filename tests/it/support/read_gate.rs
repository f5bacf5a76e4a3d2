//! Test helper: an HTTP proxy in front of the emulator's S3 that proves whether a
//! process reads objects concurrently, without depending on timing.
//!
//! While the gate is closed to width `n`, each object read (`GET /bucket/key`) is
//! held until `n` reads are waiting or in flight at once, or until a hold time has
//! passed, and the most reads ever in flight together is recorded. A process that
//! reads one object after another never has two in flight, whatever the timing: it
//! records 1 (and each of its reads waits out the hold). A process that reads up
//! to `n` at once records `n`: the held reads cannot finish before the `n`-th
//! arrives. A process reading more than `n` at once records more than `n`.
//!
//! Point a process at it with `AWS_ENDPOINT_URL_S3`; every request is forwarded
//! unchanged (headers, `Host` and signature included) to the emulator.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a read waits for the others before it is let through anyway.
const HOLD: Duration = Duration::from_secs(2);

pub struct ReadGate {
    /// Base URL of the proxy, for `AWS_ENDPOINT_URL_S3`.
    pub endpoint: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

struct State {
    upstream: String,
    /// 0: open (reads pass at once and are not counted).
    width: AtomicUsize,
    in_flight: watch::Sender<usize>,
    max_in_flight: AtomicUsize,
    reads: AtomicUsize,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl ReadGate {
    /// A proxy on a free loopback port forwarding to `upstream` (the emulator's
    /// base URL), open.
    pub async fn start(upstream: &str) -> ReadGate {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the read gate");
        let endpoint = format!("http://{}", listener.local_addr().expect("gate address"));
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            width: AtomicUsize::new(0),
            in_flight: watch::Sender::new(0),
            max_in_flight: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        ReadGate {
            endpoint,
            state,
            server,
        }
    }

    /// From now on, holds each object read until `width` are in flight together,
    /// and counts them afresh.
    pub fn close(&self, width: usize) {
        self.state.max_in_flight.store(0, Ordering::SeqCst);
        self.state.reads.store(0, Ordering::SeqCst);
        self.state.width.store(width.max(1), Ordering::SeqCst);
    }

    /// Lets every request through at once again.
    pub fn open(&self) {
        self.state.width.store(0, Ordering::SeqCst);
    }

    /// The most object reads in flight together since [`ReadGate::close`].
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Object reads since [`ReadGate::close`].
    pub fn reads(&self) -> usize {
        self.state.reads.load(Ordering::SeqCst)
    }
}

impl Drop for ReadGate {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, hyper::Error>(forward(&state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `GET /bucket/key...`: an object read (a listing or a bucket call has no key).
fn is_object_read(request: &Request<Incoming>) -> bool {
    request.method() == Method::GET
        && request
            .uri()
            .path()
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
}

async fn forward(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let width = state.width.load(Ordering::SeqCst);
    let counted = width > 0 && is_object_read(&request);
    if counted {
        state.reads.fetch_add(1, Ordering::SeqCst);
        state.in_flight.send_modify(|n| *n += 1);
        let now = *state.in_flight.borrow();
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let mut watcher = state.in_flight.subscribe();
        let _ = tokio::time::timeout(HOLD, watcher.wait_for(|n| *n >= width)).await;
    }
    let response = relay(state, request).await;
    if counted {
        state.in_flight.send_modify(|n| *n -= 1);
    }
    response
}

async fn relay(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return failure(format!("request body: {e}")),
    };
    let target = format!(
        "{}{}",
        state.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = Request::builder().method(parts.method).uri(&target);
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let upstream = match upstream.body(Full::new(body)) {
        Ok(request) => request,
        Err(e) => return failure(format!("{target}: {e}")),
    };
    let response = match state.client.request(upstream).await {
        Ok(response) => response,
        Err(e) => return failure(format!("{target}: {e}")),
    };
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return failure(format!("{target}: response body: {e}")),
    };
    let mut reply = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        // The body is relayed whole, with its own length.
        if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONTENT_LENGTH {
            reply = reply.header(name, value);
        }
    }
    reply
        .body(Full::new(body))
        .unwrap_or_else(|e| failure(format!("relayed response: {e}")))
}

fn failure(message: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(Full::new(Bytes::from(message)))
        .expect("a valid response")
}
