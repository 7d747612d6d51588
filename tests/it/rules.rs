//! Tenant limit rules in rhai: applied on the request path, edited live (file and API),
//! validated with line and column, contained when they run away, versioned and rolled back.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{AdminSession, Backend, TestApp, backends, spawn_app};

fn per_minute_rule(n: u32) -> String {
    format!(
        "fn rule(request, key, limits) {{\n    if request.route == \"/v1/customers\" {{ limits.per_minute = {n}; }}\n    limits\n}}\n"
    )
}

async fn key(app: &TestApp, slug: &str) -> String {
    app.issue_key(
        slug,
        json!({"name": "rules", "rate_limits": {"per_second": 1000, "burst": 1000, "per_minute": 1000}}),
    )
    .await
}

/// How many GET /v1/customers pass before the first 429 (at most `max`).
async fn allowed(app: &TestApp, key: &str, max: usize) -> (usize, Value) {
    let v1 = app.with_key(key);
    for i in 0..max {
        let r = v1.get("/v1/customers").await;
        if r.status == 429 {
            return (i, r.body);
        }
        assert_eq!(r.status, 200);
    }
    (max, Value::Null)
}

async fn wait_version(admin: &AdminSession<'_>, version: i64) -> Value {
    crate::wait::until(Duration::from_secs(10), &format!("version {version} serves"), async || {
        let r = admin.get("/admin/v1/rules").await;
        (r.body["version"] == version).then_some(r.body)
    })
    .await
}

async fn wait_error(admin: &AdminSession<'_>) -> Value {
    crate::wait::until(Duration::from_secs(10), "the bad file is reported", async || {
        let r = admin.get("/admin/v1/rules").await;
        (!r.body["last_error"].is_null()).then_some(r.body)
    })
    .await
}

fn write_atomically(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_changes_the_limit_and_is_named_on_the_429() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = app.demo_admin().await;
        let k = key(&app, "demo").await;
        let r = admin.put("/admin/v1/rules", json!({"script": per_minute_rule(3)})).await;
        assert_eq!((r.status, r.body["version"].as_i64()), (200, Some(1)), "{:?}", r.body);
        let (n, body) = allowed(&app, &k, 10).await;
        assert_eq!(n, 3, "{backend:?}");
        assert_eq!(body["rule"], "tenants/demo@v1");
        assert_eq!(body["code"], "rate_limited");
        // Other routes keep the key's limits.
        assert_eq!(app.with_key(&k).get("/v1/products").await.status, 200);
        // The usage events name the rule that applied.
        app.state.usage.flush().await;
        let (tags,): (String,) = sqlx::query_as("SELECT tags FROM usage_events WHERE status = 429")
            .fetch_one(&app.state.db.pool)
            .await
            .expect("a 429 event");
        assert!(tags.contains("\"rule\":\"tenants/demo@v1\""), "{tags}");
        // The file was written, so the file and the API agree.
        let file = app.state.settings.policies.dir.join("tenants/demo.rhai");
        assert_eq!(std::fs::read_to_string(file).expect("file"), per_minute_rule(3));
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_file_applies_without_a_restart_and_a_bad_edit_changes_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let k = key(&app, "demo").await;
    let file = app.state.settings.policies.dir.join("tenants/demo.rhai");
    write_atomically(&file, &per_minute_rule(2));
    let state = wait_version(&admin, 1).await;
    assert_eq!(state["updated_by"], "file");
    assert_eq!(allowed(&app, &k, 10).await.0, 2);

    write_atomically(&file, "fn rule(request, key, limits) {\n    limits.per_minute = ;\n    limits\n}\n");
    let state = wait_error(&admin).await;
    assert_eq!(state["version"], 1, "the old rule keeps serving");
    let error = &state["last_error"]["errors"][0];
    assert_eq!((error["line"].as_i64(), error["column"].is_number()), (Some(2), true), "{state}");
    assert_eq!(state["last_error"]["source"], "file");
    // Two minutes on, the sliding window is empty again.
    app.clock.advance_ms(120_000);
    assert_eq!(allowed(&app, &k, 10).await.0, 2, "still the old rule");

    // The same mistake through the API: 422 with line and column, nothing replaced.
    let r = admin
        .put(
            "/admin/v1/rules",
            json!({"script": "fn rule(request, key, limits) {\n  let x = 1 +;\n  limits\n}"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_rule"));
    assert_eq!(r.body["script_errors"][0]["line"], 2);
    let check =
        admin.post("/admin/v1/rules/validate", json!({"script": "fn rule(a, b, c) { c }\nlet ="})).await;
    assert_eq!(
        (check.body["valid"].as_bool(), check.body["errors"][0]["line"].as_i64()),
        (Some(false), Some(2))
    );
    let ok = admin.post("/admin/v1/rules/validate", json!({"script": per_minute_rule(5)})).await;
    assert_eq!(ok.body["valid"], true);
    assert_eq!(admin.get("/admin/v1/rules").await.body["version"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_rules_are_cut_off_and_the_request_keeps_the_keys_limits() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let k = key(&app, "demo").await;
    // Each passes the dry run (a read of customers) and runs away on orders or products.
    let script = r#"fn rule(request, key, limits) {
    if request.route == "/v1/orders" { loop { } }
    if request.route == "/v1/products" { let s = "xxxxxxxx"; loop { s += s; } }
    limits.per_minute = 4;
    limits
}"#;
    let r = admin.put("/admin/v1/rules", json!({"script": script})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v1 = app.with_key(&k);
    for path in ["/v1/orders", "/v1/products"] {
        let started = Instant::now();
        let r = v1.get(path).await;
        assert_eq!(r.status, 200, "{path}: the request still gets its answer");
        assert_eq!(
            r.header("ratelimit-policy").map(|p| p.contains("\"minute\";q=1000;w=60")),
            Some(true),
            "{path}: the key's limits"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("angage_rule_failures_total"));
    // A script that loops in its dry run is refused outright.
    let r = admin
        .put("/admin/v1/rules", json!({"script": "fn rule(request, key, limits) { loop { } limits }"}))
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_rule"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_rule_never_touches_another() {
    let app = spawn_app(Backend::Sqlite).await;
    let demo = app.demo_admin().await;
    let globex = app.tenant_admin("globex").await;
    let demo_key = key(&app, "demo").await;
    let globex_key = key(&app, "globex").await;
    assert_eq!(globex.put("/admin/v1/rules", json!({"script": per_minute_rule(1)})).await.status, 200);
    assert_eq!(allowed(&app, &globex_key, 5).await.0, 1);
    assert_eq!(allowed(&app, &demo_key, 5).await.0, 5);
    assert!(demo.get("/admin/v1/rules").await.body["script"].is_null());
    assert_eq!(demo.get("/admin/v1/rules/versions").await.body.as_array().expect("versions").len(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_kept_and_rollback_restores_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let k = key(&app, "demo").await;
    admin.put("/admin/v1/rules", json!({"script": per_minute_rule(3)})).await;
    app.clock.advance_ms(1000);
    admin.put("/admin/v1/rules", json!({"script": per_minute_rule(6)})).await;
    let versions = admin.get("/admin/v1/rules/versions").await;
    let list = versions.body.as_array().expect("versions");
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0]["version"].as_i64(), list[0]["created_by"].as_str()),
        (Some(2), Some("admin@demo.local"))
    );
    assert_eq!(list[1]["script"], per_minute_rule(3));
    let r = admin.post("/admin/v1/rules/rollback", json!({"version": 1})).await;
    assert_eq!(
        (r.status, r.body["version"].as_i64(), r.body["note"].as_str()),
        (200, Some(3), Some("rollback to v1"))
    );
    assert_eq!(allowed(&app, &k, 10).await.0, 3);
    assert_eq!(admin.post("/admin/v1/rules/rollback", json!({"version": 42})).await.status, 404);
    let audit = admin.get("/admin/v1/audit").await;
    assert!(audit.text.contains("rule.rolled_back") && audit.text.contains("rule.updated"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_examples_do_what_they_say() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/examples");
    let read = |name: &str| std::fs::read_to_string(examples.join(name)).expect("example");
    let dry = |script: String, sample: Value| {
        let mut body = sample;
        body["script"] = Value::from(script);
        body
    };
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(read("orders-cost-two.rhai"), json!({"request": {"method": "POST", "route": "/v1/orders"}})),
        )
        .await;
    assert_eq!(r.body["limits"]["cost"], 2, "{:?}", r.body);
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(read("orders-cost-two.rhai"), json!({"request": {"method": "GET", "route": "/v1/orders"}})),
        )
        .await;
    assert_eq!(r.body["limits"]["cost"], 1);
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(
                read("test-keys-capped.rhai"),
                json!({"key": {"environment": "test"}, "limits": {"per_second": 50}}),
            ),
        )
        .await;
    assert_eq!(r.body["limits"]["per_second"], 5);
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(
                read("test-keys-capped.rhai"),
                json!({"key": {"environment": "live"}, "limits": {"per_second": 50}}),
            ),
        )
        .await;
    assert_eq!(r.body["limits"]["per_second"], 50);
    // Wednesday 2026-11-18 10:30 UTC is business hours in the tenant's zone (UTC); 20:00 is not.
    let analytics = |time: &str| json!({"request": {"method": "GET", "route": "/v1/invoices", "time": time}, "key": {"name": "Analytics"}});
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(read("analytics-business-hours.rhai"), analytics("2026-11-18T10:30:00Z")),
        )
        .await;
    assert_eq!(r.body["limits"]["per_minute"], 10, "{:?}", r.body);
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(read("analytics-business-hours.rhai"), analytics("2026-11-18T20:00:00Z")),
        )
        .await;
    assert_eq!(r.body["limits"]["per_minute"], 100);
    let month_end = |time: &str| json!({"request": {"method": "GET", "route": "/v1/orders", "time": time}});
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(read("month-end-double.rhai"), month_end("2026-11-29T12:00:00Z")),
        )
        .await;
    assert_eq!(r.body["limits"]["per_hour"], 4000);
    let r = admin
        .post(
            "/admin/v1/rules/dry-run",
            dry(read("month-end-double.rhai"), month_end("2026-11-27T12:00:00Z")),
        )
        .await;
    assert_eq!(r.body["limits"]["per_hour"], 2000);
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default.rhai"))
            .expect("default");
    assert_eq!(admin.post("/admin/v1/rules/validate", json!({"script": shipped})).await.body["valid"], true);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_rule_refines_within_the_default_and_never_unsets_it() {
    let db = crate::helpers::TestDb::new(Backend::Sqlite).await;
    let mut settings = crate::helpers::test_settings(&db);
    // The operator's rule: 4 a minute on customers.
    write_atomically(&settings.policies.dir.join("default.rhai"), &per_minute_rule(4));
    // Rules of more than a few hundred operations run past a budget of a microsecond.
    settings.policies.rule_budget_us = 1;
    let app = crate::helpers::spawn_with(db, settings).await;
    let admin = app.demo_admin().await;
    let k = key(&app, "demo").await;
    assert_eq!(allowed(&app, &k, 10).await.0, 4, "the default rule applies");

    // A tenant rule that lifts every limit and makes requests free stays within the default.
    let lift = r#"fn rule(request, key, limits) { limits.per_minute = (); limits.cost = 0; limits }"#;
    assert_eq!(admin.put("/admin/v1/rules", json!({"script": lift})).await.status, 200);
    // Two minutes: the sliding window forgets the last one.
    app.clock.advance_ms(120_000);
    let (n, body) = allowed(&app, &k, 10).await;
    assert_eq!((n, body["rule"].as_str()), (4, Some("tenants/demo@v1")), "clamped by the default's 4");

    // One that throws on this route leaves the default's result standing.
    // (Only for this test's key: the save's dry run uses a sample key.)
    let throws = r#"fn rule(request, key, limits) { if key.name == "rules" { throw "no"; } limits }"#;
    assert_eq!(admin.put("/admin/v1/rules", json!({"script": throws})).await.status, 200);
    // Two minutes: the sliding window forgets the last one.
    app.clock.advance_ms(120_000);
    let (n, body) = allowed(&app, &k, 10).await;
    assert_eq!((n, body["rule"].as_str()), (4, Some("default@v1")), "the default kept");

    // One that runs past its time budget is cut off the same way.
    let heavy = r#"fn rule(request, key, limits) {
        if key.name == "rules" { let n = 0; for i in 0..5000 { n += i; } limits.per_minute = 2; }
        limits
    }"#;
    assert_eq!(admin.put("/admin/v1/rules", json!({"script": heavy})).await.status, 200);
    // Two minutes: the sliding window forgets the last one.
    app.clock.advance_ms(120_000);
    let (n, body) = allowed(&app, &k, 10).await;
    assert_eq!((n, body["rule"].as_str()), (4, Some("default@v1")), "a heavy rule is stopped");
    app.stop().await;
}
