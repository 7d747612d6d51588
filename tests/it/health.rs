//! Liveness, readiness, metrics and request ids over HTTP.

use crate::helpers::{Backend, backends, problem, spawn_app, start_binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_metrics_and_request_id_echo() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    app.clock.advance_ms(1);
    let generated =
        resp.headers().get("x-request-id").expect("generated id").to_str().expect("ascii").to_owned();
    assert_eq!(generated.len(), 32);

    let resp = app.http.get(app.url("/healthz")).header("x-request-id", "req-42").send().await.expect("send");
    assert_eq!(resp.headers().get("x-request-id").expect("echo"), "req-42");

    // An id a client should not be able to inject into logs is replaced.
    let resp = app.http.get(app.url("/healthz")).header("x-request-id", "a b").send().await.expect("send");
    assert_ne!(resp.headers().get("x-request-id").expect("id"), "a b");

    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("ct").starts_with("text/plain"));
    let text = resp.text().await.expect("body");
    assert!(text.contains("# TYPE angage_http_requests_total counter"), "{text}");
    assert!(text.contains("angage_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"));

    let resp = app.get("/no/such/route").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(problem(resp).await["code"], "not_found");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_the_database_is_gone() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        assert_eq!(app.get("/readyz").await.status(), 200, "{backend:?}");
        match app.db.sqlite_file() {
            Some(file) => std::fs::remove_file(file).expect("remove db"),
            None => app.db.drop_now().await,
        }
        let resp = app.get("/readyz").await;
        assert_eq!(resp.status(), 503, "{backend:?}");
        assert_eq!(problem(resp).await["code"], "database_unavailable");
        assert_eq!(app.get("/healthz").await.status(), 200, "the process is still up");
        app.stop().await;
    }
}

/// The real binary (one app in its process, as in production) reports the metrics the request
/// path records through handles it registers at start-up.
#[test]
fn the_binary_reports_policy_and_key_cache_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_binary(dir.path());
    let key = server
        .wait_for_stdout(|out| out.split_whitespace().find(|w| w.starts_with("ak_test_")).map(str::to_owned));
    let bearer = format!("Bearer {key}");
    for _ in 0..2 {
        let r = server.get("/v1/customers", &[("Authorization", &bearer)]);
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
    }
    let wanted = [
        "angage_plugin_calls_total{stage=\"authenticate\",outcome=\"ok\"} 2",
        "angage_plugin_calls_total{stage=\"rate_limit\",outcome=\"ok\"} 2",
        "angage_key_cache_misses_total 1",
        "angage_key_cache_hits_total 1",
        "angage_policy_batch_requests_count 2",
    ];
    // Histograms reach the text once the recorder's upkeep (every second) has run.
    let mut text = String::new();
    crate::wait::until_blocking(std::time::Duration::from_secs(10), "every metric reported", || {
        text = server.get("/metrics", &[]);
        wanted.iter().all(|w| text.contains(w)).then_some(())
    });
    for w in wanted {
        assert!(text.contains(w), "{w} missing from:\n{text}");
    }
    let (code, _) = server.sigterm_and_wait();
    assert_eq!(code, 0);
}
