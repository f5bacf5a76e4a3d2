//! Plain HTTP GETs to the emulator's own endpoints (`/moto-api/...`: readiness, the
//! model data), which no AWS SDK call covers; hyper's client does the protocol.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// `GET url`: the status code and the whole body.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let exchange = async {
        let response = client
            .get(uri)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("GET {url}: reading the body: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("GET {url}: no answer within {timeout:?}"))?
}

/// [`get`] from synchronous code, inside or outside a test's runtime: on a thread of
/// its own with a runtime of its own.
pub fn get_blocking(url: &str, timeout: Duration) -> Result<(u16, Bytes), String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime for GET {url}: {e}"))?
            .block_on(get(&url, timeout))
    })
    .join()
    .map_err(|_| "the GET thread panicked".to_owned())?
}
