//! Usage analytics: a known mix of requests with injected latencies, then every number the
//! dashboard shows, exactly.

use angage_core::clock::Clock;
use angage_store::usage::histogram;
use serde_json::json;

use crate::helpers::{TestApp, backends, spawn_app};

const DAY: i64 = 86_400_000;

async fn get(app: &TestApp, key: &str, path: &str, latency_us: u64) -> u16 {
    app.http
        .get(app.url(path))
        .bearer_auth(key)
        .header("x-test-latency-us", latency_us)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

async fn post_raw(app: &TestApp, key: &str, path: &str, body: &str, latency_us: u64) -> u16 {
    app.http
        .post(app.url(path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("x-test-latency-us", latency_us)
        .body(body.to_owned())
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// The value the API reports for a percentile of `values` (nearest rank, bucketed).
fn expected_percentile(values: &[u64], p: f64) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for v in values {
        *counts.entry(histogram::bucket(*v)).or_insert(0i64) += 1;
    }
    let pairs: Vec<(i64, i64)> = counts.into_iter().collect();
    let us = histogram::percentile(&pairs, p).expect("values");
    (us / 10.0).round() / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_numbers_are_exact() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let unlimited = json!({"per_second": 1000, "burst": 1000, "per_minute": 1000});
        let a = app.issue_key("demo", json!({"name": "ERP sync", "rate_limits": unlimited})).await;
        let b = app.issue_key("demo", json!({"name": "Mobile", "environment": "test", "rate_limits": {"per_second": 1000, "burst": 1000, "per_minute": 5}})).await;
        let c = app
            .issue_key("demo", json!({"name": "Short-lived", "expires_in_days": 1, "rate_limits": unlimited}))
            .await;

        // Previous period (7 days ago): three 404s.
        for _ in 0..3 {
            assert_eq!(get(&app, &a, "/v1/customers/CUST-99999", 500).await, 404);
        }
        app.clock.advance_ms(7 * DAY);

        // This period.
        let customers_latencies: Vec<u64> = (1..=10).map(|i| i * 1000).collect();
        for l in &customers_latencies {
            assert_eq!(get(&app, &a, "/v1/customers", *l).await, 200);
        }
        for _ in 0..4 {
            assert_eq!(post_raw(&app, &a, "/v1/customers", "{\"name\": ", 2000).await, 400);
        }
        assert_eq!(get(&app, &a, "/v1/customers/CUST-99999", 3000).await, 404);
        let mut products_latencies = Vec::new();
        for _ in 0..7 {
            products_latencies.push(20_000);
            get(&app, &b, "/v1/products", 20_000).await;
        }
        app.clock.advance_ms(1000);
        assert_eq!(get(&app, &c, "/v1/customers", 700).await, 401, "c expired with the week");
        app.state.usage.flush().await;
        let admin = app.demo_admin().await;

        let s = admin.get("/admin/v1/usage?period=7d").await;
        assert_eq!(s.status, 200, "{:?}", s.body);
        let b = &s.body;
        // 10 + 4 + 1 + 7 + 1 = 23 this period: 15 successful (10 customers, 5 products), 8 failed.
        assert_eq!(
            (b["total"].as_i64(), b["successful"].as_i64(), b["failed"].as_i64(), b["rate_limited"].as_i64()),
            (Some(23), Some(15), Some(8), Some(2)),
            "{backend:?} {b}"
        );
        assert_eq!((b["successful_pct"].as_f64(), b["failed_pct"].as_f64()), (Some(65.22), Some(34.78)));
        assert_eq!(b["daily"].as_array().expect("daily").len(), 7);
        assert_eq!(b["daily"][6], json!({"date": "2026-11-09", "requests": 23}));
        assert_eq!(b["daily"][0], json!({"date": "2026-11-03", "requests": 0}));
        assert_eq!(b["peak"], json!({"date": "2026-11-09", "requests": 23}));
        assert_eq!(b["average_per_day"].as_f64(), Some(3.29));
        // Live: a (c has expired); test: the first-start key and b.
        assert_eq!(b["active_keys"], json!({"live": 1, "test": 2}));
        assert_eq!(b["dropped_events"], 0);

        let e = admin.get("/admin/v1/usage/endpoints?period=7d").await.body;
        let e = e.as_array().expect("endpoints");
        let find = |ep: &str| {
            e.iter().find(|x| x["endpoint"] == ep).unwrap_or_else(|| panic!("{ep} in {e:?}")).clone()
        };
        let gc = find("GET /customers");
        assert_eq!(
            (gc["requests"].as_i64(), gc["share_pct"].as_f64(), gc["average_ms"].as_f64()),
            (Some(11), Some(47.83), Some(5.06))
        );
        let gp = find("GET /products");
        assert_eq!(
            (gp["requests"].as_i64(), gp["share_pct"].as_f64(), gp["average_ms"].as_f64()),
            (Some(7), Some(30.43), Some(20.0))
        );
        assert_eq!(find("POST /customers")["requests"], 4);
        assert_eq!(find("GET /customers/{id}")["requests"], 1);

        let k = admin.get("/admin/v1/usage/keys?period=7d").await.body;
        let k = k.as_array().expect("keys");
        assert_eq!(
            (k[0]["name"].as_str(), k[0]["requests"].as_i64(), k[0]["share_pct"].as_f64()),
            (Some("ERP sync"), Some(15), Some(65.22))
        );
        assert_eq!(
            (k[1]["name"].as_str(), k[1]["requests"].as_i64(), k[1]["environment"].as_str()),
            (Some("Mobile"), Some(7), Some("test"))
        );
        assert_eq!((k[2]["name"].as_str(), k[2]["requests"].as_i64()), (Some("Short-lived"), Some(1)));

        let mut all: Vec<u64> = customers_latencies.clone();
        all.extend([2000; 4]);
        all.push(3000);
        all.extend(&products_latencies);
        all.push(700);
        let l = admin.get("/admin/v1/usage/latency?period=7d").await.body;
        let sum: u64 = all.iter().sum();
        assert_eq!(l["requests"], 23);
        assert_eq!(l["average_ms"].as_f64(), Some((sum as f64 / 23.0 / 10.0).round() / 100.0));
        assert_eq!(l["p95_ms"].as_f64(), Some(expected_percentile(&all, 95.0)));
        assert_eq!(l["p99_ms"].as_f64(), Some(expected_percentile(&all, 99.0)));
        assert!(
            (l["p95_ms"].as_f64().expect("p95") - 20.0).abs() / 20.0 <= 0.01,
            "within 1% of the exact 20 ms"
        );
        assert_eq!(l["slowest_endpoint"]["endpoint"], "GET /products");

        let errors = admin.get("/admin/v1/errors?period=7d").await.body;
        assert_eq!((errors["total"].as_i64(), errors["error_rate_pct"].as_f64()), (Some(8), Some(34.78)));
        assert_eq!(errors["most_common"], json!({"code": "malformed_json", "count": 4}));
        let by: Vec<(i64, i64, i64, String)> = errors["by_status"]
            .as_array()
            .expect("by status")
            .iter()
            .map(|s| {
                (
                    s["status"].as_i64().expect("s"),
                    s["count"].as_i64().expect("c"),
                    s["previous"].as_i64().expect("p"),
                    s["trend"].as_str().expect("t").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            by,
            vec![
                (400, 4, 0, "up".into()),
                (401, 1, 0, "up".into()),
                (404, 1, 3, "down".into()),
                (429, 2, 0, "up".into())
            ],
            "{backend:?}"
        );
        let shares: Vec<f64> = errors["by_status"]
            .as_array()
            .expect("x")
            .iter()
            .map(|s| s["share_pct"].as_f64().expect("share"))
            .collect();
        assert_eq!(shares, [50.0, 12.5, 12.5, 25.0]);

        let recent = admin.get("/admin/v1/errors/recent?limit=3").await;
        let items = recent.body["data"].as_array().expect("data");
        assert_eq!(items.len(), 3);
        assert_eq!(recent.body["has_more"], true);
        let newest = &items[0];
        assert_eq!(
            (newest["status"].as_i64(), newest["code"].as_str(), newest["key_name"].as_str()),
            (Some(401), Some("expired_api_key"), Some("Short-lived"))
        );
        assert_eq!(newest["message"], "This API key has expired");
        assert_eq!(newest["at"], "2026-11-09T10:00:01.000Z");
        let next = recent.body["next_cursor"].as_str().expect("cursor");
        let rest = admin.get(&format!("/admin/v1/errors/recent?limit=100&starting_after={next}")).await;
        assert_eq!(rest.body["data"].as_array().expect("data").len(), 8, "11 errors in all, 3 already seen");

        let csv = app
            .http
            .get(app.url("/admin/v1/usage/export.csv?period=7d"))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .expect("csv");
        assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
        let text = csv.text().await.expect("text");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("date,endpoint,key_id,status,error_code,requests,average_ms"));
        let total: i64 =
            lines.map(|l| l.split(',').nth(5).expect("requests").parse::<i64>().expect("n")).sum();
        assert_eq!(total, 23);

        let bad = admin.get("/admin/v1/usage?period=yesterday").await;
        assert_eq!((bad.status, bad.code()), (400, "invalid_query"));
        let month = admin.get("/admin/v1/usage?period=month").await;
        assert_eq!(month.body["total"], 26, "November so far: both weeks");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_rollups_longer_than_raw_events_and_metrics_name_the_environment() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let key = app.v1().await.key().to_owned();
    for _ in 0..3 {
        assert_eq!(get(&app, &key, "/v1/customers", 1000).await, 200);
    }
    app.state.usage.flush().await;
    let count = |table: &'static str| {
        let pool = app.state.db.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .expect("count");
            n
        }
    };
    assert_eq!((count("usage_events").await, count("usage_daily").await), (3, 1));
    app.clock.advance_ms(31 * DAY);
    let removed = angage_store::usage::retain(&app.state.db, &app.state.settings.usage, app.clock.now_ms())
        .await
        .expect("retain");
    assert_eq!(removed, 4, "3 raw events and 1 minute rollup");
    assert_eq!(
        (
            count("usage_events").await,
            count("usage_minute").await,
            count("usage_daily").await,
            count("usage_latency_daily").await
        ),
        (0, 0, 1, 1)
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(
            "angage_api_requests_total{route=\"/v1/customers\",status=\"200\",environment=\"live\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("angage_usage_buffer_depth"));
    app.stop().await;
}
