//! A webhook receiver on 127.0.0.1 for the tests: it records every delivery (headers and body)
//! and answers the statuses it was told to (0: never answers), then 200.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use serde_json::Value;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// Path and query, as requested.
    pub uri: String,
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub json: Value,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<u16>,
    received: Vec<Received>,
}

pub(crate) struct Receiver {
    addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(inner: Arc<Mutex<Inner>>, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let uri = req.uri().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = {
        let mut inner = inner.lock().expect("receiver");
        inner.received.push(Received { uri, headers, body: body.to_vec(), json });
        inner.script.pop_front().unwrap_or(200)
    };
    if status == 0 {
        std::future::pending::<()>().await;
    }
    let mut response = hyper::Response::new(Full::new(Bytes::from(format!("answered {status}"))));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    response
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let shared = inner.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inner = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(record(inner, req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Self { addr, inner, task }
    }

    /// The next requests get these statuses, in order (0: no answer, ever); later ones get 200.
    pub(crate) fn answer_next(&self, statuses: &[u16]) {
        self.inner.lock().expect("receiver").script.extend(statuses);
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("receiver").received.clone()
    }

    /// Waits until at least `n` requests have arrived; returns them all.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        crate::wait::until(Duration::from_secs(15), &format!("{n} webhook deliveries arrive"), async || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}
