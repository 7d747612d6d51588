//! Connections a client holds: a half-sent request or an idle keep-alive is closed after the
//! header timeout, connections past the cap make room instead of blocking service, a request
//! past its deadline is answered 408, and requests past `server.max_in_flight` are shed with a
//! 503 the client can act on.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestDb, spawn_with, test_settings};

/// `count` connections that each send half a request's headers and then nothing.
async fn half_open(addr: &str, count: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /v1/customers HTTP/1.1\r\nHost: slow\r\n").await.expect("write");
        conns.push(conn);
    }
    conns
}

/// Whether the server has closed `conn` (end of stream or reset), without waiting.
fn closed(conn: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match conn.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// A raw request on its own connection: the whole response as text (a server that never
/// answers fails the test instead of hanging it).
async fn raw(addr: &str, request: &str) -> String {
    let exchange = async {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await.expect("read");
        String::from_utf8_lossy(&response).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(20), exchange).await.expect("answered at all")
}

fn authorized_get(addr: &str, key: &str) -> String {
    format!(
        "GET /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_neither_block_service_nor_stay_open() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.server.header_timeout_seconds = 3;
    let app = spawn_with(db, settings).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let v1 = app.v1().await;
    let idle = half_open(&addr, 2_000).await;

    let started = Instant::now();
    let served = raw(&addr, &authorized_get(&addr, v1.key())).await;
    let took = started.elapsed();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    let still_open = idle.iter().filter(|c| !closed(c)).count();
    eprintln!("served in {took:?} beside {still_open} half-open connections");
    assert_eq!(still_open, 2_000, "served while every idle connection was still open");

    crate::wait::until(Duration::from_secs(20), "idle connections closed", async || {
        idle.iter().all(closed).then_some(())
    })
    .await;
    assert_eq!(raw(&addr, &authorized_get(&addr, v1.key())).await.lines().next(), Some("HTTP/1.1 200 OK"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_open_file_limit_normal_requests_are_still_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Timeouts far away: only the connection cap can make room here.
    std::fs::write(dir.path().join("slow.toml"), "[server]\nheader_timeout_seconds = 300\n").expect("config");
    let server = crate::helpers::start_binary_limited(dir.path(), &["--config", "slow.toml"], 1024);
    let key = server
        .wait_for_stdout(|out| out.split_whitespace().find(|w| w.starts_with("ak_test_")).map(str::to_owned));
    let idle = half_open(&server.addr, 1_100).await;
    for _ in 0..5 {
        let served = raw(&server.addr, &authorized_get(&server.addr, &key)).await;
        assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    }
    // The cap is 1,024 less 128 kept for the store and the rest; the longest idle made room.
    crate::wait::until(Duration::from_secs(5), "the longest idle closed", async || {
        (idle.iter().filter(|c| closed(c)).count() >= 1_105 - 896).then_some(())
    })
    .await;
    drop(idle);
    let (code, _) = tokio::task::spawn_blocking(move || server.sigterm_and_wait()).await.expect("stop");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_408() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.server.request_timeout_seconds = 1;
    let app = spawn_with(db, settings).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let v1 = app.v1().await;
    let mut conn = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        v1.key()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.expect("the server answers and closes");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("application/problem+json") && response.contains("request_timeout"),
        "{response}"
    );
    assert_eq!(v1.get("/v1/customers").await.body["data"], serde_json::json!([]), "nothing was written");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_cap_are_shed_at_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.server.max_in_flight = 2;
    let app = spawn_with(db, settings).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let v1 = app.v1().await;
    // Two uploads that never finish hold both places.
    let mut uploads = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "POST /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            v1.key()
        );
        conn.write_all(head.as_bytes()).await.expect("write");
        uploads.push(conn);
    }
    crate::wait::until(Duration::from_secs(10), "both uploads in flight", async || {
        (app.state.in_flight.now() == 2).then_some(())
    })
    .await;
    let shed = v1.get("/v1/customers").await;
    assert_eq!(shed.status, 503, "{:?}", shed.body);
    assert_eq!(shed.code(), "overloaded");
    assert_eq!(shed.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    drop(uploads);
    crate::wait::until(Duration::from_secs(5), "places given back", async || {
        (v1.get("/v1/customers").await.status == 200).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_queued_behind_a_stuck_one_is_answered_503_not_held() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let v1 = app.v1().await;
    // Something holds SQLite's one writer slot and does not let go.
    let stuck = app.state.db.write_tx().await.expect("the writer slot");
    let customer = serde_json::json!({"name": "Queued", "email": "q@example.com"});
    let queued = v1.post("/v1/customers", customer.clone()).await;
    assert_eq!((queued.status, queued.code()), (503, "database_unavailable"), "{:?}", queued.body);
    drop(stuck);
    assert_eq!(v1.post("/v1/customers", customer).await.status, 201, "the next write goes through");
    app.stop().await;
}
