//! Hostile clients contained: what a client (or a plugin it drives) can never make the server
//! do. Each test here failed before the fix it names.

use serde_json::json;

use crate::helpers::{Backend, TestDb, spawn_with, test_settings};
use crate::plugins::{install, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_plugins_cannot_mint_metric_series() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.plugins.config.insert("module-scopes".into(), json!({"mode": "metric-names"}));
    let app = spawn_with(db, settings).await;
    let admin = app.demo_admin().await;
    let v1 = app.v1().await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).expect("method");
        app.http.request(method, app.url("/healthz")).send().await.expect("send");
    }
    install(
        &app.state.settings.plugins.dir,
        "module-scopes.wasm",
        &std::fs::read(angage_test_plugins::MISBEHAVING).expect("fixture"),
    );
    wait_for(&admin, "authorize", |e| e["version"] == "0.1.0").await;
    for _ in 0..100 {
        assert_eq!(v1.get("/v1/customers").await.status, 200);
    }
    let text = app.get("/metrics").await.text().await.expect("metrics");
    assert!(!text.contains("MADEUP"), "a made-up method is no label");
    assert!(text.contains("method=\"other\""), "it is counted as other");
    let series = text.lines().filter(|l| l.starts_with("angage_plugin_name_")).count();
    assert!(series <= 32, "a plugin gets 32 metric names, it made {series}");
    assert!(text.contains("angage_plugin_metric_names_refused_total"), "the rest are refused and counted");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_only_loopback_or_the_token() {
    // Served on every address: a scrape from the machine's own non-loopback address is refused.
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.server.addr = "0.0.0.0:0".parse().expect("addr");
    let app = spawn_with(db, settings).await;
    let port = app.base.rsplit(':').next().expect("port").to_owned();
    assert_eq!(
        app.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.expect("send").status(),
        200
    );
    match local_address() {
        Some(ip) => {
            let r = app.http.get(format!("http://{ip}:{port}/metrics")).send().await.expect("send");
            assert_eq!(r.status(), 403, "from {ip}");
        }
        None => eprintln!("this machine has no non-loopback address: only the loopback half ran"),
    }
    app.stop().await;

    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.server.metrics_token = "scrape-token-0123456789".into();
    let app = spawn_with(db, settings).await;
    assert_eq!(app.get("/metrics").await.status(), 403, "with a token, loopback is not enough");
    let r =
        app.http.get(app.url("/metrics")).bearer_auth("scrape-token-0123456789").send().await.expect("send");
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/metrics")).bearer_auth("wrong").send().await.expect("send");
    assert_eq!(r.status(), 403);
    app.stop().await;
}

/// This machine's address on its default route, if it has one.
fn local_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}
