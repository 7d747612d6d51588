//! The request log: "Log all API requests" on keeps every `/v1` request; off keeps errors and a
//! sample of successes; the dashboard's numbers are the same either way. Searched, filtered,
//! paged and exported through the admin API.

use serde_json::{Value, json};

use crate::helpers::{AdminSession, TestApp, TestDb, backends, spawn_with, test_settings};

/// The same mix for each tenant: 8 successes, 2 not-founds, 2 with a key in the query (an
/// unknown parameter: 400).
async fn mixed_run(app: &TestApp, key: &str, tag: &str) {
    for i in 0..8 {
        let resp = app
            .http
            .get(app.url("/v1/customers?limit=5"))
            .bearer_auth(key)
            .header("x-test-latency-us", 1000 + i * 100)
            .header("user-agent", "erp-sync/2.1")
            .header("x-request-id", format!("{tag}-ok-{i}"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    }
    for i in 0..2 {
        let resp = app
            .http
            .get(app.url("/v1/customers/CUST-99999"))
            .bearer_auth(key)
            .header("x-test-latency-us", 5000)
            .header("x-request-id", format!("{tag}-missing-{i}"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 404);
    }
    for i in 0..2 {
        let resp = app
            .http
            .get(app.url(&format!("/v1/customers?limit=5&api_key={key}")))
            .bearer_auth(key)
            .header("x-test-latency-us", 2000)
            .header("x-request-id", format!("{tag}-leaky-{i}"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 400);
    }
    app.state.usage.flush().await;
}

async fn log(admin: &AdminSession<'_>, query: &str) -> Value {
    let reply = admin.get(&format!("/admin/v1/requests{query}")).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    reply.body
}

fn statuses(page: &Value) -> Vec<i64> {
    let mut s: Vec<i64> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["status"].as_i64().expect("status"))
        .collect();
    s.sort_unstable();
    s
}

/// The dashboard's numbers, without what names the tenant's own keys.
async fn dashboard(admin: &AdminSession<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/admin/v1/usage?period=7d",
        "/admin/v1/usage/endpoints?period=7d",
        "/admin/v1/usage/latency?period=7d",
        "/admin/v1/errors?period=7d",
    ] {
        let reply = admin.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        out.push(reply.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_keeps_every_request_when_on_and_errors_plus_the_sample_when_off() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let mut settings = test_settings(&db);
        settings.usage.success_sample_rate = 0.25;
        let app = spawn_with(db, settings).await;
        let limits = json!({"per_second": 1000, "burst": 1000, "per_minute": 1000});
        let quiet = app.tenant_admin("quiet").await;
        let loud = app.tenant_admin("loud").await;
        let quiet_key = app.issue_key("quiet", json!({"name": "ERP sync", "rate_limits": limits})).await;
        let loud_key = app.issue_key("loud", json!({"name": "ERP sync", "rate_limits": limits})).await;
        let on = loud.put("/admin/v1/settings", json!({"security": {"log_all_requests": true}})).await;
        assert_eq!(on.status, 200, "{}", on.text);

        mixed_run(&app, &quiet_key, "quiet").await;
        mixed_run(&app, &loud_key, "loud").await;

        // Off: the four errors and a quarter of the eight successes.
        let off_page = log(&quiet, "?limit=100").await;
        assert_eq!(statuses(&off_page), vec![200, 200, 400, 400, 404, 404], "{off_page}");
        // On: all twelve.
        let on_page = log(&loud, "?limit=100").await;
        assert_eq!(on_page["data"].as_array().expect("data").len(), 12, "{on_page}");
        assert_eq!(statuses(&on_page).iter().filter(|s| **s == 200).count(), 8);
        // The dashboard counts every request either way.
        assert_eq!(dashboard(&quiet).await, dashboard(&loud).await);

        // One request as the log shows it.
        let one = log(&loud, "?request_id=loud-ok-3").await;
        let row = &one["data"][0];
        assert_eq!(one["data"].as_array().expect("data").len(), 1, "{one}");
        assert_eq!(row["method"], "GET");
        assert_eq!(row["path"], "/v1/customers?limit=5");
        assert_eq!(row["endpoint"], "GET /customers");
        assert_eq!(row["status"], 200);
        assert_eq!(row["latency_ms"], 1.3);
        assert_eq!(row["key_name"], "ERP sync");
        assert_eq!(row["client_ip"], "127.0.0.1");
        assert_eq!(row["user_agent"], "erp-sync/2.1");
        // The test's policies folder is empty: no rule applied.
        assert!(row["rule"].is_null(), "{row}");
        assert!(row["key_id"].as_str().is_some_and(|k| k.starts_with("key_")), "{row}");
        // A key sent in the query is redacted.
        let leaky = log(&loud, "?request_id=loud-leaky-0").await;
        assert_eq!(leaky["data"][0]["path"], "/v1/customers?limit=5&api_key=[redacted]", "{leaky}");
        assert_eq!(leaky["data"][0]["error_code"], "invalid_query");
        let everything = log(&loud, "?limit=100").await.to_string();
        assert!(!everything.contains(&loud_key), "a key never reaches the log");

        // Filters: status, class, path prefix, key, time range; each tenant sees only its own.
        assert_eq!(statuses(&log(&loud, "?status=404").await), vec![404, 404]);
        assert_eq!(statuses(&log(&loud, "?status=4xx").await), vec![400, 400, 404, 404]);
        assert_eq!(statuses(&log(&loud, "?path=/v1/customers/CUST").await), vec![404, 404]);
        let key_id = row["key_id"].as_str().expect("key id");
        assert_eq!(
            log(&loud, &format!("?key_id={key_id}&limit=100")).await["data"].as_array().expect("data").len(),
            12
        );
        assert_eq!(
            log(&quiet, &format!("?key_id={key_id}")).await["data"].as_array().expect("data").len(),
            0
        );
        assert_eq!(log(&quiet, "?request_id=loud-ok-3").await["data"].as_array().expect("data").len(), 0);
        let later = log(&loud, "?created_after=2030-01-01T00:00:00Z").await;
        assert_eq!(later["data"].as_array().expect("data").len(), 0);

        // Cursor pagination walks all twelve, newest first, each once.
        let mut seen = Vec::new();
        let mut query = "?limit=5".to_owned();
        loop {
            let page = log(&loud, &query).await;
            seen.extend(
                page["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .map(|r| r["id"].as_str().expect("id").to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("?limit=5&starting_after={c}"),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (12, 12));

        // CSV: a header and one row per request of the filter.
        let csv = loud.get("/admin/v1/requests/export.csv?status=4xx").await;
        assert_eq!(csv.status, 200);
        assert!(csv.header("content-type").is_some_and(|c| c.starts_with("text/csv")));
        let lines: Vec<&str> = csv.text.lines().collect();
        assert!(lines[0].starts_with("time,method,path,status,latency_ms,key_id"), "{}", lines[0]);
        assert_eq!(lines.len(), 5, "{}", csv.text);
        assert!(lines.iter().any(|l| l.contains("loud-missing-1")), "{}", csv.text);

        // A filter that cannot be read is a 400 naming it.
        let bad = loud.get("/admin/v1/requests?status=teapot").await;
        assert_eq!((bad.status, bad.code()), (400, "invalid_query"));
        assert!(bad.body["detail"].as_str().is_some_and(|d| d.contains("status")), "{}", bad.text);
        let unknown = loud.get("/admin/v1/requests?colour=red").await;
        assert_eq!((unknown.status, unknown.code()), (400, "invalid_query"));
        app.stop().await;
    }
}
