//! Graceful shutdown: requests in flight finish, then the process exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestDb, angage_bin, spawn_with, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_after_shutdown_begins() {
    let db = TestDb::new(Backend::Sqlite).await;
    let settings = test_settings(&db);
    let mut app = spawn_with(db, settings).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let key = app.v1().await.key().to_owned();

    // Send the headers and half of the body, then stop the server.
    let body = br#"{"name":"Slow Ltd","email":"slow@example.com"}"#;
    let mut conn = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body[..10]).await.expect("first half");
    conn.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await; // let the handler start reading
    let server = app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // New connections are no longer accepted...
    assert!(
        reqwest::get(format!("http://{addr}/healthz")).await.is_err(),
        "still accepting after shutdown began"
    );
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

struct Server {
    child: Child,
    addr: String,
    stdout: Option<std::thread::JoinHandle<String>>,
}

/// Starts the real binary on port 0 in `dir` and waits for its "listening" log line.
fn start_binary(dir: &std::path::Path) -> Server {
    let mut child = angage_bin()
        .current_dir(dir)
        .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn angage");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut addr = None;
    for line in lines.by_ref().map_while(Result::ok) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if event["message"] == "listening" {
            addr = event["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let stdout = child.stdout.take().expect("stdout");
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text);
        text
    });
    Server { child, addr: addr.expect("the server logs its address"), stdout: Some(stdout) }
}

impl Server {
    fn get_status(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(&self.addr).expect("connect");
        write!(conn, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr)
            .expect("write");
        let mut response = String::new();
        conn.read_to_string(&mut response).expect("read");
        response.lines().next().unwrap_or_default().to_owned()
    }

    /// Sends SIGTERM; returns the exit code and everything the process printed on stdout.
    fn sigterm_and_wait(mut self) -> (i32, String) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "no exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        (code, stdout)
    }
}

#[test]
fn sigterm_exits_zero_and_the_banner_is_printed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_binary(dir.path());
    assert_eq!(server.get_status("/healthz"), "HTTP/1.1 200 OK");
    let (code, stdout) = server.sigterm_and_wait();
    assert_eq!(code, 0);
    assert!(stdout.contains("Admin login   admin@demo.local"), "{stdout}");
    assert!(stdout.contains("Test API key  ak_test_"), "{stdout}");

    let server = start_binary(dir.path());
    assert_eq!(server.get_status("/readyz"), "HTTP/1.1 200 OK");
    let (code, stdout) = server.sigterm_and_wait();
    assert_eq!(code, 0);
    assert!(!stdout.contains("Admin login"), "the banner is shown on the first start only: {stdout}");
}
