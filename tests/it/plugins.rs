//! The policy pipeline through the real plugins: each stage's decisions, rate-limit accuracy,
//! hot reload under load, and containment of plugins that misbehave.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use angage_policy::plugins::builtin;
use angage_test_plugins as fixtures;
use serde_json::{Value, json};

use crate::helpers::{
    AdminSession, Backend, TestApp, TestDb, backends, spawn_app, spawn_with, test_settings,
};

fn code(r: &crate::helpers::Reply) -> (u16, String) {
    (r.status, r.code().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stage_decides() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let anon = app.http.get(app.url("/v1/customers")).send().await.expect("send");
        assert_eq!(anon.status(), 401);
        let body: Value = anon.json().await.expect("json");
        assert_eq!(body["code"], "missing_credentials");

        let full = app.v1().await;
        assert_eq!(full.get("/v1/customers").await.status, 200);
        // X-API-Key works as well as Bearer.
        let r = full.send(app.http.get(app.url("/v1/customers")).header("x-api-key", full.key())).await;
        assert_eq!(r.status, 200);

        let unknown = app.with_key("ak_live_0000000000000000000000000000000000000000");
        assert_eq!(code(&unknown.get("/v1/customers").await), (401, "invalid_api_key".into()));

        let orders_read = app
            .issue_key("demo", json!({"name": "reader", "scope": "custom", "grants": {"orders": "read"}, "rate_limits": {"per_second": 1000, "burst": 1000}}))
            .await;
        let reader = app.with_key(&orders_read);
        assert_eq!(reader.get("/v1/orders").await.status, 200);
        let r = reader.post("/v1/orders", json!({"customer": "x", "lines": []})).await;
        assert_eq!(code(&r), (403, "insufficient_scope".into()));
        assert_eq!(
            r.body["detail"],
            "This key has read access to orders; POST /v1/orders needs read_write access to orders"
        );
        assert_eq!(code(&reader.get("/v1/customers").await), (403, "insufficient_scope".into()));

        let walled = app
            .issue_key("demo", json!({"name": "walled", "ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"]}))
            .await;
        assert_eq!(code(&app.with_key(&walled).get("/v1/customers").await), (403, "ip_not_allowed".into()));
        let home = app.issue_key("demo", json!({"name": "home", "ip_allowlist": ["127.0.0.0/8"]})).await;
        assert_eq!(app.with_key(&home).get("/v1/customers").await.status, 200);

        let short = app.issue_key("demo", json!({"name": "short", "expires_in_days": 1})).await;
        assert_eq!(app.with_key(&short).get("/v1/customers").await.status, 200);
        app.clock.advance_ms(86_400_000);
        assert_eq!(code(&app.with_key(&short).get("/v1/customers").await), (401, "expired_api_key".into()));

        let admin = app.demo_admin().await;
        let listed = admin.get("/admin/v1/keys?environment=live").await;
        let home_id =
            listed.body["data"].as_array().expect("keys").iter().find(|k| k["name"] == "home").expect("home")
                ["id"]
                .as_str()
                .expect("id")
                .to_owned();
        admin.post(&format!("/admin/v1/keys/{home_id}/revoke"), json!({})).await;
        assert_eq!(
            code(&app.with_key(&home).get("/v1/customers").await),
            (401, "revoked_api_key".into()),
            "revocation applies to the next request"
        );

        admin.put("/admin/v1/settings", json!({"security": {"require_https": true}})).await;
        let r = full.get("/v1/customers").await;
        assert_eq!(code(&r), (403, "https_required".into()));
        // X-Forwarded-Proto is ignored from an untrusted peer.
        let r = full
            .send(full.request(reqwest::Method::GET, "/v1/customers").header("x-forwarded-proto", "https"))
            .await;
        assert_eq!(r.status, 403);
        app.stop().await;
    }
}

/// Requests that reach the stages together are decided together (`http/lanes.rs`); each must
/// still get its own answer, whichever stage settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_verdict() {
    let app = spawn_app(Backend::Sqlite).await;
    let full = app.v1().await;
    let reader = app
        .issue_key("demo", json!({"name": "reader", "scope": "custom", "grants": {"orders": "read"}}))
        .await;
    let limited = limited_key(&app, json!({"per_second": 1000, "burst": 1000, "per_minute": 10})).await;
    let unknown = "ak_live_0000000000000000000000000000000000000000";
    let mut typo = full.key().to_owned().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    // (key, path, what the answer must be); a 429 is allowed only for the limited key.
    let kinds: [(Option<&str>, &str, (u16, &str)); 6] = [
        (None, "/v1/customers", (401, "missing_credentials")),
        (Some(unknown), "/v1/customers", (401, "invalid_api_key")),
        (Some(&typo), "/v1/customers", (401, "invalid_api_key")),
        (Some(&reader), "/v1/customers", (403, "insufficient_scope")),
        (Some(full.key()), "/v1/customers", (200, "")),
        (Some(&limited), "/v1/orders", (200, "")),
    ];
    for round in 0..3 {
        let sent = (0..8).flat_map(|_| kinds.iter()).map(|(key, path, want)| {
            let mut req = app.http.get(app.url(path));
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            async move {
                let r = req.send().await.expect("send");
                let status = r.status().as_u16();
                let has_headers = r.headers().contains_key("ratelimit-policy");
                let body: Value = if status == 200 { Value::Null } else { r.json().await.expect("problem") };
                (*key, *want, status, body["code"].as_str().unwrap_or("").to_owned(), has_headers)
            }
        });
        let answers = futures_util::future::join_all(sent).await;
        let mut limited_ok = 0;
        for (key, (status, code), got, got_code, has_headers) in answers {
            if key == Some(limited.as_str()) && got == 429 {
                assert_eq!(got_code, "rate_limited");
                continue;
            }
            assert_eq!((got, got_code.as_str()), (status, code), "round {round}, key {key:?}");
            if got == 200 {
                assert!(has_headers, "an allowed request carries its own rate-limit headers");
                limited_ok += usize::from(key == Some(limited.as_str()));
            }
        }
        // 8 per round against 10 a minute: the first round fits, later ones share what is left.
        let expected = [8, 2, 0][round];
        assert_eq!(limited_ok, expected, "round {round}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_may_vouch_for_https_and_the_client_address() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.plugins.config.insert("apikey-auth".into(), json!({"trusted_proxies": ["127.0.0.1/32"]}));
    let app = spawn_with(db, settings).await;
    let admin = app.demo_admin().await;
    admin.put("/admin/v1/settings", json!({"security": {"require_https": true}})).await;
    let key = app.issue_key("demo", json!({"name": "proxied", "ip_allowlist": ["203.0.113.0/24"]})).await;
    let v1 = app.with_key(&key);
    let via = |proto: &str, fwd: &str| {
        v1.request(reqwest::Method::GET, "/v1/customers")
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-for", fwd)
    };
    assert_eq!(v1.send(via("https", "203.0.113.9")).await.status, 200);
    assert_eq!(code(&v1.send(via("http", "203.0.113.9")).await), (403, "https_required".into()));
    assert_eq!(code(&v1.send(via("https", "198.51.100.1")).await), (403, "ip_not_allowed".into()));
    // A client that writes an allowed address itself is found out by the hop the proxy
    // appended, on its own line or in one list; likewise for the scheme.
    let spoofed = |proto: &[&str], fwd: &[&str]| {
        let mut r = v1.request(reqwest::Method::GET, "/v1/customers");
        for p in proto {
            r = r.header("x-forwarded-proto", *p);
        }
        for f in fwd {
            r = r.header("x-forwarded-for", *f);
        }
        r
    };
    assert_eq!(
        code(&v1.send(spoofed(&["https"], &["203.0.113.9", "198.51.100.1"])).await),
        (403, "ip_not_allowed".into())
    );
    assert_eq!(
        code(&v1.send(spoofed(&["https"], &["203.0.113.9, 198.51.100.1"])).await),
        (403, "ip_not_allowed".into())
    );
    assert_eq!(
        code(&v1.send(spoofed(&["https", "http"], &["203.0.113.9"])).await),
        (403, "https_required".into())
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_checksum_is_refused_without_the_database() {
    let app = spawn_app(Backend::Sqlite).await;
    let v1 = app.v1().await;
    let mut typo = v1.key().to_owned().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    app.state.db.close().await;
    let r = app.with_key(&typo).get("/v1/customers").await;
    assert_eq!(code(&r), (401, "invalid_api_key".into()));
    assert!(r.body["detail"].as_str().expect("detail").contains("checksum"), "{:?}", r.body);
}

async fn limited_key(app: &TestApp, limits: Value) -> String {
    app.issue_key("demo", json!({"name": "limited", "rate_limits": limits})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_passes_under_concurrency_with_consistent_headers() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let key = limited_key(&app, json!({"per_second": 10_000, "burst": 10_000, "per_minute": 100, "per_hour": 10_000, "per_day": 10_000})).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let client = app.http.clone();
            let url = app.url("/v1/customers");
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..20 {
                    let r = client.get(&url).bearer_auth(&key).send().await.expect("send");
                    let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    seen.push((
                        r.status().as_u16(),
                        h("x-ratelimit-limit"),
                        h("x-ratelimit-remaining"),
                        h("retry-after"),
                        h("ratelimit"),
                        h("ratelimit-policy"),
                    ));
                }
                seen
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        let ok = all.iter().filter(|s| s.0 == 200).count();
        let limited: Vec<_> = all.iter().filter(|s| s.0 == 429).collect();
        assert_eq!((ok, limited.len()), (100, 60), "{backend:?}");
        for (_, limit, remaining, retry, ratelimit, policy) in &limited {
            assert_eq!(limit.as_deref(), Some("100"));
            assert_eq!(remaining.as_deref(), Some("0"));
            assert_eq!(retry.as_deref(), Some("61"), "the 100 were all used at the start of the minute");
            assert_eq!(ratelimit.as_deref(), Some("\"minute\";r=0;t=60"));
            assert_eq!(
                policy.as_deref(),
                Some(
                    "\"second\";q=10000;w=1, \"burst\";q=10000;w=5, \"minute\";q=100;w=60, \"hour\";q=10000;w=3600, \"day\";q=10000;w=86400"
                )
            );
        }
        // Successful responses carry the headers too; remaining counts down to 0 exactly once.
        let remaining: Vec<u64> =
            all.iter().filter(|s| s.0 == 200).filter_map(|s| s.2.as_deref()?.parse().ok()).collect();
        assert_eq!(remaining.len(), 100);
        assert_eq!(remaining.iter().filter(|r| **r == 0).count(), 1);
        let r = app.with_key(&key).get("/v1/customers").await;
        assert_eq!(code(&r), (429, "rate_limited".into()));
        // A minute later the window has slid: about one request's worth is free again.
        app.clock.advance_ms(61_000);
        assert_eq!(app.with_key(&key).get("/v1/customers").await.status, 200);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_the_day_window_does_not_use_up_the_minute() {
    let app = spawn_app(Backend::Sqlite).await;
    let key = limited_key(
        &app,
        json!({"per_second": 100, "burst": 100, "per_minute": 50, "per_hour": 100, "per_day": 5}),
    )
    .await;
    let v1 = app.with_key(&key);
    for i in 0..5 {
        let r = v1.get("/v1/customers").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"), "the day window is the closest to its limit");
        assert_eq!(r.header("x-ratelimit-remaining"), Some((4 - i).to_string().as_str()));
    }
    for _ in 0..3 {
        let r = v1.get("/v1/customers").await;
        assert_eq!(code(&r), (429, "rate_limited".into()));
        assert!(r.body["detail"].as_str().expect("detail").contains("day window"));
        assert_eq!(
            r.header("ratelimit"),
            Some("\"day\";r=0;t=50400"),
            "the day ends at midnight UTC, 14 hours after 10:00"
        );
    }
    // Raise the day limit: the minute window shows only the 5 requests that were let through.
    let admin = app.demo_admin().await;
    let keys = admin.get("/admin/v1/keys?environment=live").await;
    let id = keys.body["data"][0]["id"].as_str().expect("id").to_owned();
    admin.put(&format!("/admin/v1/keys/{id}"), json!({"rate_limits": {"per_second": 100, "burst": 100, "per_minute": 50, "per_hour": 100, "per_day": 1000}})).await;
    let r = v1.get("/v1/customers").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-policy").map(|p| p.contains("\"minute\";q=50;w=60")), Some(true));
    assert_eq!(r.header("x-ratelimit-limit"), Some("50"));
    assert_eq!(
        r.header("x-ratelimit-remaining"),
        Some("44"),
        "5 earlier + this one; the 3 refused did not count"
    );
    app.stop().await;
}

/// Writes a plugin file the way operators should: elsewhere, then renamed into place.
pub(crate) fn install(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("plugin dir");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

/// Waits (bounded) until the admin API shows `stage` matching `done`.
pub(crate) async fn wait_for(admin: &AdminSession<'_>, stage: &str, done: impl Fn(&Value) -> bool) -> Value {
    crate::wait::until(Duration::from_secs(20), &format!("{stage} reaches the expected state"), async || {
        let status = admin.get("/admin/v1/plugins").await;
        let entry = status
            .body
            .as_array()
            .expect("stages")
            .iter()
            .find(|s| s["stage"] == stage)
            .expect("stage")
            .clone();
        done(&entry).then_some(entry)
    })
    .await
}

/// Keeps GET /v1/customers going; counts anything but 200.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, key: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..4)
            .map(|_| {
                let (client, url, key) = (app.http.clone(), app.url("/v1/customers"), key.to_owned());
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let until = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        match client.get(&url).bearer_auth(&key).send().await {
                            Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Self { stop, ok, failed, tasks }
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_hot_reloads_under_load_without_a_failed_request() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let dir = app.state.settings.plugins.dir.clone();
    let key = app.v1().await.key().to_owned();
    let load = Load::start(&app, &key);
    for (stage, name) in [
        ("authenticate", "apikey-auth"),
        ("authorize", "module-scopes"),
        ("rate_limit", "rate-limit"),
        ("enrich_usage", "usage-enrich"),
    ] {
        install(&dir, &format!("{name}.wasm"), builtin(name).expect("built-in"));
        let entry = wait_for(&admin, stage, |e| e["source"] == "file").await;
        assert_eq!(entry["plugin"], name);
        assert!(entry["last_error"].is_null());
        std::fs::remove_file(dir.join(format!("{name}.wasm"))).expect("remove");
        wait_for(&admin, stage, |e| e["source"] == "builtin").await;
    }
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0, "{ok} requests succeeded, {failed} failed during the swaps");
    assert!(ok > 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_plugin_replaces_the_built_in_authorizer_at_run_time() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let test_key = app
        .issue_key(
            "demo",
            json!({"name": "dev", "environment": "test", "rate_limits": {"per_second": 1000, "burst": 1000}}),
        )
        .await;
    let v1 = app.with_key(&test_key);
    let body = json!({"name": "Example Co", "email": "ex@example.com"});
    assert_eq!(
        v1.post("/v1/customers", body.clone()).await.status,
        201,
        "the built-in lets a full-scope test key write"
    );
    let example = std::fs::read(fixtures::DENY_TEST_WRITES).expect("example plugin built");
    install(&app.state.settings.plugins.dir, "module-scopes.wasm", &example);
    let entry = wait_for(&admin, "authorize", |e| e["source"] == "file").await;
    assert_eq!(entry["version"], "0.1.0");
    let r = v1.post("/v1/customers", body.clone()).await;
    assert_eq!(code(&r), (403, "insufficient_scope".into()));
    assert_eq!(r.body["detail"], "Test keys are read-only on this server");
    assert_eq!(v1.get("/v1/customers").await.status, 200);
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("angage_plugin_test_writes_refused_total"), "plugin metrics reach /metrics");
    std::fs::remove_file(app.state.settings.plugins.dir.join("module-scopes.wasm")).expect("remove");
    wait_for(&admin, "authorize", |e| e["source"] == "builtin").await;
    assert_eq!(v1.post("/v1/customers", body).await.status, 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_incompatible_files_leave_the_old_version_serving() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let key = app.v1().await.key().to_owned();
    let dir = app.state.settings.plugins.dir.clone();
    let load = Load::start(&app, &key);

    install(&dir, "module-scopes.wasm", b"\0asm\x01\0\0\0 definitely not a module");
    let entry = wait_for(&admin, "authorize", |e| !e["last_error"].is_null()).await;
    assert_eq!(entry["source"], "builtin", "the built-in keeps serving");
    assert!(entry["last_error"]["message"].as_str().expect("message").contains("component"), "{entry}");

    let future = std::fs::read(fixtures::FUTURE_CONTRACT).expect("fixture");
    install(&dir, "module-scopes.wasm", &future);
    let entry = wait_for(&admin, "authorize", |e| {
        e["last_error"]["message"].as_str().is_some_and(|m| m.contains("3.0.0"))
    })
    .await;
    assert_eq!(
        entry["last_error"]["message"],
        "built against contract angage:policy@3.0.0; this host speaks angage:policy@2.0.0"
    );
    assert_eq!(entry["source"], "builtin");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("angage_plugin_load_failed{stage=\"authorize\"} 1"),
        "load failures show in /metrics"
    );

    // A plugin for another stage is not an authorizer.
    install(&dir, "module-scopes.wasm", builtin("usage-enrich").expect("built-in"));
    let entry = wait_for(&admin, "authorize", |e| {
        e["last_error"]["message"].as_str().is_some_and(|m| m.contains("does not export"))
    })
    .await;
    assert_eq!(entry["source"], "builtin");

    let (_, failed) = load.finish().await;
    assert_eq!(failed, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_trapping_and_greedy_plugins_are_contained() {
    for mode in ["loop", "trap", "grow", "hoard-keys"] {
        let db = TestDb::new(Backend::Sqlite).await;
        let mut settings = test_settings(&db);
        // hoard-keys reads the credential header, which an authorizer sees only when allowed.
        settings
            .plugins
            .config
            .insert("module-scopes".into(), json!({"mode": mode, "allow_secret_headers": ["authorization"]}));
        settings.plugins.deadline_ms = 50;
        settings.plugins.memory_limit_mib = 16;
        let app = spawn_with(db, settings).await;
        let admin = app.demo_admin().await;
        let v1 = app.v1().await;
        let misbehaving = std::fs::read(fixtures::MISBEHAVING).expect("fixture");
        install(&app.state.settings.plugins.dir, "module-scopes.wasm", &misbehaving);
        wait_for(&admin, "authorize", |e| e["version"] == "0.1.0").await;
        for _ in 0..3 {
            let started = Instant::now();
            let r = v1.get("/v1/customers").await;
            assert_eq!(code(&r), (503, "policy_unavailable".into()), "{mode}");
            assert!(started.elapsed() < Duration::from_secs(5), "{mode}: the call was not cut off");
        }
        assert_eq!(app.get("/healthz").await.status(), 200, "{mode}: the server keeps serving");
        assert_eq!(app.get("/admin/v1/plugins").await.status(), 401, "{mode}: other routes are unaffected");
        // Putting a good plugin back restores service without a restart.
        std::fs::remove_file(app.state.settings.plugins.dir.join("module-scopes.wasm")).expect("remove");
        wait_for(&admin, "authorize", |e| e["source"] == "builtin").await;
        assert_eq!(v1.get("/v1/customers").await.status, 200, "{mode}");
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        let outcome = if mode == "loop" { "deadline" } else { "trap" };
        assert!(
            metrics
                .contains(&format!("angage_plugin_calls_total{{stage=\"authorize\",outcome=\"{outcome}\"}}")),
            "{mode}"
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enricher_that_traps_loses_only_its_tags() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let v1 = app.v1().await;
    let trapping = std::fs::read(fixtures::TRAPPING_ENRICHER).expect("fixture");
    install(&app.state.settings.plugins.dir, "usage-enrich.wasm", &trapping);
    wait_for(&admin, "enrich_usage", |e| e["version"] == "0.1.0").await;
    let paths =
        ["/v1/customers", "/v1/customers/trap-1", "/v1/customers", "/v1/customers/trap-2", "/v1/customers"];
    for path in paths {
        v1.get(path).await;
    }
    app.state.usage.flush().await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT endpoint, tags FROM usage_events WHERE endpoint LIKE 'GET /customers%'")
            .fetch_all(&app.state.db.pool)
            .await
            .expect("usage events");
    let tagged = |endpoint: &str| {
        let of: Vec<bool> =
            rows.iter().filter(|(e, _)| e == endpoint).map(|(_, tags)| tags.contains("enriched")).collect();
        (of.len(), of.iter().filter(|t| **t).count())
    };
    assert_eq!(tagged("GET /customers/{id}"), (2, 0), "a trapped call keeps the event, without tags");
    assert_eq!(tagged("GET /customers"), (3, 3), "the calls around the traps are enriched: {rows:?}");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("angage_plugin_calls_total{stage=\"enrich_usage\",outcome=\"trap\"} 2"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authenticate_reads_the_callers_secrets() {
    for (allowed, seen) in [(json!([]), "seen: []"), (json!(["Cookie"]), "seen: [cookie]")] {
        let db = TestDb::new(Backend::Sqlite).await;
        let mut settings = test_settings(&db);
        let peek = std::fs::read(fixtures::HEADER_PEEK).expect("fixture");
        install(&settings.plugins.dir, "header-peek.wasm", &peek);
        settings.plugins.stages.authorize = "header-peek".into();
        settings.plugins.config.insert("header-peek".into(), json!({"allow_secret_headers": allowed}));
        let app = spawn_with(db, settings).await;
        let key = app.v1().await.key().to_owned();
        let r = app
            .http
            .get(app.url("/v1/customers"))
            .header("authorization", format!("Bearer {key}"))
            .header("x-api-key", &key)
            .header("cookie", "session=s3cr3t")
            .header("proxy-authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .expect("send");
        // The request got past authenticate, which read the key from `Authorization`.
        assert_eq!(r.status(), 403);
        let body: Value = r.json().await.expect("problem");
        assert_eq!(body["code"], "peeked");
        assert_eq!(body["detail"], seen, "allowed {allowed}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_refuses_revoked_and_expired_keys_whatever_the_authenticator() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    install(
        &settings.plugins.dir,
        "accept-any-key.wasm",
        &std::fs::read(fixtures::ACCEPT_ANY_KEY).expect("fixture"),
    );
    settings.plugins.stages.authenticate = "accept-any-key".into();
    let app = spawn_with(db, settings).await;
    let admin = app.demo_admin().await;
    let issued = admin.post("/admin/v1/keys", json!({"name": "doomed", "expires_in_days": 1})).await;
    let secret = issued.body["key"].as_str().expect("key").to_owned();
    let other = admin.post("/admin/v1/keys", json!({"name": "revoked"})).await;
    let other_secret = other.body["key"].as_str().expect("key").to_owned();
    assert_eq!(app.with_key(&secret).get("/v1/customers").await.status, 200, "the careless plugin admits it");
    admin.post(&format!("/admin/v1/keys/{}/revoke", other.body["id"].as_str().expect("id")), json!({})).await;
    assert_eq!(
        code(&app.with_key(&other_secret).get("/v1/customers").await),
        (401, "revoked_api_key".into())
    );
    app.clock.advance_ms(24 * 3600 * 1000);
    assert_eq!(code(&app.with_key(&secret).get("/v1/customers").await), (401, "expired_api_key".into()));
    app.stop().await;
}
