//! Serving the router: a task per connection under hyper's timer, so a client that does not send
//! its headers within `server.header_timeout_seconds` (half-sent, or idle between requests) is
//! closed; a cap on open connections below the open-file limit, where the longest-idle
//! connection makes room for a new one and a newcomer finding none idle is answered 503 at
//! once; graceful shutdown that lets every started response finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tower::ServiceExt;

use super::tls::{Accepted, OverTls};
use super::{AppState, router};

/// A bound TCP listener.
pub type Listener = tokio::net::TcpListener;

/// Descriptors kept free under the open-file limit for the database, plugins, logs and the
/// connection being turned away.
const RESERVED_FDS: usize = 128;
/// How long an evicted connection may take to flush a response it has just written; one that
/// has not finished sending a request is dropped after it.
const EVICT_GRACE: Duration = Duration::from_millis(50);
/// How long a turned-away newcomer may take to read its 503.
const TURN_AWAY_GRACE: Duration = Duration::from_secs(1);

/// Serves `state`'s router until `shutdown` resolves and every connection has finished.
pub async fn serve(
    listener: Listener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = &state.settings.server;
    let header_timeout = Duration::from_secs(server.header_timeout_seconds);
    let cap = connection_cap(server.max_connections, open_file_limit());
    tracing::debug!(max_connections = cap, "serving");
    let tls = state.tls.clone();
    if let Some(tls) = &tls {
        tls.watch();
    }
    let router = router(state);
    let open = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e, &open).await;
                    continue;
                }
            },
        };
        if open.len() >= cap && !open.evict_idlest() {
            metrics::counter!("angage_connections_refused_total").increment(1);
            tokio::spawn(turn_away(stream));
            continue;
        }
        let conn = open.add();
        let task = Connection { router: router.clone(), peer, header_timeout, conn, open: open.clone() };
        let tls = tls.clone();
        let (stopping, alive) = (stopping.clone(), alive.clone());
        tokio::spawn(async move {
            // The handshake (or the first byte, for plain HTTP) counts against the header timeout.
            match tls {
                None => task.run(Accepted::Plain(stream), stopping, alive).await,
                Some(tls) => match tls.accept(stream, header_timeout).await {
                    Some(accepted) => task.run(accepted, stopping, alive).await,
                    None => task.open.remove(task.conn.id),
                },
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(alive);
    let _ = all_closed.recv().await;
    Ok(())
}

/// `configured`, or the open-file limit less the reserve; never above the limit's room.
fn connection_cap(configured: usize, fd_limit: Option<usize>) -> usize {
    let room = fd_limit.map(|limit| limit.saturating_sub(RESERVED_FDS.min(limit / 2)).max(1));
    match (configured, room) {
        (0, Some(room)) => room,
        (0, None) => 10_000,
        (n, Some(room)) => n.min(room),
        (n, None) => n,
    }
}

/// The soft open-file limit, from `/proc/self/limits` (Linux); `None` elsewhere or when unlimited.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// An accept that failed: per-connection errors are the client's; running out of descriptors
/// (which the cap should prevent) frees an idle connection and pauses instead of spinning.
async fn accept_failed(e: &std::io::Error, open: &Registry) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept a connection");
    open.evict_idlest();
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A newcomer at the cap with nobody idle to make room: a 503 it can act on, then close.
async fn turn_away(mut stream: TcpStream) {
    const BODY: &str = r#"{"type":"/docs/problems#overloaded","title":"Service Unavailable","status":503,"code":"overloaded","detail":"The server has as many connections as it can hold; retry shortly"}"#;
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(TURN_AWAY_GRACE, stream.write_all(reply.as_bytes())).await;
}

struct Connection {
    router: axum::Router,
    peer: SocketAddr,
    header_timeout: Duration,
    conn: Arc<Conn>,
    open: Arc<Registry>,
}

impl Connection {
    async fn run(self, accepted: Accepted, stopping: watch::Receiver<bool>, _alive: mpsc::Sender<()>) {
        let Connection { router, peer, header_timeout, conn, open } = self;
        let state = conn.clone();
        let over_tls = matches!(accepted, Accepted::Tls { .. });
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            if over_tls {
                req.extensions_mut().insert(OverTls);
            }
            let busy = Busy::enter(state.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(req.map(Body::new)).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        });
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(TokioTimer::new()).header_read_timeout(header_timeout);
        match accepted {
            Accepted::Plain(stream) => {
                let served = http1.serve_connection(TokioIo::new(stream), service);
                drive(served, &conn, stopping).await;
            }
            Accepted::Tls { stream, h2: false } => {
                let served = http1.serve_connection(TokioIo::new(stream), service);
                drive(served, &conn, stopping).await;
            }
            Accepted::Tls { stream, h2: true } => {
                let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                // An HTTP/2 connection that stays silent past the header timeout is closed too.
                http2.timer(TokioTimer::new()).keep_alive_interval(Some(header_timeout));
                let served = http2.serve_connection(TokioIo::new(stream), service);
                drive(served, &conn, stopping).await;
            }
        }
        open.remove(conn.id);
    }
}

/// What the connection loop needs of hyper's HTTP/1 and HTTP/2 connections alike.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for hyper::server::conn::http2::Connection<I, S, TokioExecutor>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs a connection to its end: a graceful close when the server stops, and when the
/// connection is evicted, a short grace for the response it is writing.
async fn drive(served: impl Graceful, conn: &Conn, mut stopping: watch::Receiver<bool>) {
    {
        tokio::pin!(served);
        let grace = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(grace);
        let (mut stop_seen, mut evicted, mut grace_armed) = (false, false, false);
        loop {
            tokio::select! {
                result = served.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = stopping.changed(), if !stop_seen => {
                    // Shutdown: the response being written finishes, no further request is read.
                    stop_seen = true;
                    served.as_mut().graceful();
                }
                () = conn.evict.notified(), if !evicted => {
                    // Idle after a response, hyper closes it once flushed; half-sent, it would
                    // wait for the request, so the grace below ends it.
                    (evicted, grace_armed) = (true, true);
                    served.as_mut().graceful();
                    grace.as_mut().reset(tokio::time::Instant::now() + EVICT_GRACE);
                }
                () = grace.as_mut(), if grace_armed => {
                    if conn.busy.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    // A request arrived meanwhile: it finishes, then hyper closes.
                    grace_armed = false;
                }
            }
        }
    }
}

/// The open connections, for the cap and for choosing whom to close when it is reached.
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// Idle times are milliseconds since this instant.
    epoch: Instant,
}

impl Default for Registry {
    fn default() -> Self {
        Self { conns: Mutex::default(), next: AtomicU64::new(0), epoch: Instant::now() }
    }
}

/// One connection's state: requests being answered on it, and since when it has been idle.
struct Conn {
    id: u64,
    busy: AtomicUsize,
    idle_since_ms: AtomicU64,
    closing: AtomicBool,
    evict: Notify,
    epoch: Instant,
}

impl Conn {
    fn mark_idle(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(now, Ordering::Release);
    }
}

impl Registry {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self) -> Arc<Conn> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            evict: Notify::new(),
            epoch: self.epoch,
        });
        conn.mark_idle();
        self.lock().insert(id, conn.clone());
        metrics::gauge!("angage_connections_open").increment(1.0);
        conn
    }

    fn remove(&self, id: u64) {
        if self.lock().remove(&id).is_some() {
            metrics::gauge!("angage_connections_open").decrement(1.0);
        }
    }

    /// Asks the connection idle the longest (no request being answered) to close; false when
    /// every connection is answering one.
    fn evict_idlest(&self) -> bool {
        let conns = self.lock();
        let idlest = conns
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Acquire))
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Acquire));
        let Some(conn) = idlest else { return false };
        conn.closing.store(true, Ordering::Release);
        conn.evict.notify_one();
        metrics::counter!("angage_connections_evicted_total").increment(1);
        true
    }
}

/// A request being answered on a connection, until its response body is finished or dropped.
struct Busy(Arc<Conn>);

impl Busy {
    fn enter(conn: Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.mark_idle();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection marked busy until it has been sent.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn the_cap_stays_below_the_open_file_limit() {
        assert_eq!(connection_cap(0, Some(1024)), 896);
        assert_eq!(connection_cap(5000, Some(1024)), 896);
        assert_eq!(connection_cap(100, Some(1024)), 100);
        assert_eq!(connection_cap(0, Some(64)), 32);
        assert_eq!(connection_cap(0, None), 10_000);
        assert_eq!(connection_cap(0, Some(0)), 1);
    }
}
