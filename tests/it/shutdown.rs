//! Graceful shutdown: requests in flight finish, then the process exits 0.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestDb, spawn_with, start_binary, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_after_shutdown_begins() {
    let db = TestDb::new(Backend::Sqlite).await;
    let settings = test_settings(&db);
    let mut app = spawn_with(db, settings).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let key = app.v1().await.key().to_owned();

    // Send the headers and half of the body, then stop the server.
    let body = br#"{"name":"Slow Ltd","email":"slow@example.com"}"#;
    let before = app.policy.decided();
    let mut conn = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body[..10]).await.expect("first half");
    conn.flush().await.expect("flush");
    // The request is in flight once it has reached the policy stages.
    crate::wait::until(Duration::from_secs(5), "the request reaches the server", async || {
        (app.policy.decided() > before).then_some(())
    })
    .await;
    let server = app.begin_shutdown();

    // New connections are no longer accepted...
    crate::wait::until(
        Duration::from_secs(5),
        "new connections are refused after shutdown began",
        async || reqwest::get(format!("http://{addr}/healthz")).await.is_err().then_some(()),
    )
    .await;
    // ...but the request in flight completes.
    conn.write_all(&body[10..]).await.expect("second half");
    let mut response = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut response)).await;
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("CUST-10001"));
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops")
        .expect("task")
        .expect("clean stop");
}

#[test]
fn sigterm_exits_zero_and_the_banner_is_printed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_binary(dir.path());
    assert!(server.get("/healthz", &[]).starts_with("HTTP/1.1 200 OK"));
    let (code, stdout) = server.sigterm_and_wait();
    assert_eq!(code, 0);
    assert!(stdout.contains("Admin login   admin@demo.local"), "{stdout}");
    assert!(stdout.contains("Test API key  ak_test_"), "{stdout}");

    let server = start_binary(dir.path());
    assert!(server.get("/readyz", &[]).starts_with("HTTP/1.1 200 OK"));
    let (code, stdout) = server.sigterm_and_wait();
    assert_eq!(code, 0);
    assert!(!stdout.contains("Admin login"), "the banner is shown on the first start only: {stdout}");
}
