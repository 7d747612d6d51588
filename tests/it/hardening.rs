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

#[test]
fn production_starts_empty_until_init_and_refuses_test_keys() {
    use crate::helpers::{angage_bin, start_binary_with};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prod.toml");
    std::fs::write(&config, "[keys]\npepper = \"production-pepper-0123456789abcdef0123\"\n").expect("config");
    let config = config.display().to_string();
    let args = ["--profile", "production", "--config", config.as_str()];
    let server = start_binary_with(dir.path(), &args);
    assert!(server.get("/healthz", &[]).starts_with("HTTP/1.1 200"));
    let cli = |extra: &[&str]| {
        let out = angage_bin().current_dir(dir.path()).args(args).args(extra).output().expect("angage");
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let init = cli(&[
        "init",
        "--tenant",
        "acme",
        "--name",
        "Acme",
        "--admin-email",
        "ops@acme.example.com",
        "--json",
    ]);
    assert!(init["password"].as_str().is_some_and(|p| p.len() >= 20), "{init}");
    let live = cli(&["keys", "create", "--tenant", "acme", "--name", "l", "--env", "live", "--json"]);
    let test = cli(&["keys", "create", "--tenant", "acme", "--name", "t", "--env", "test", "--json"]);
    let bearer = |k: &serde_json::Value| format!("Bearer {}", k["key"].as_str().expect("key"));
    assert!(server.get("/v1/customers", &[("Authorization", &bearer(&live))]).starts_with("HTTP/1.1 200"));
    let refused = server.get("/v1/customers", &[("Authorization", &bearer(&test))]);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.contains("invalid_api_key"), "{refused}");
    let (code, stdout) = server.sigterm_and_wait();
    assert_eq!(code, 0);
    assert!(
        !stdout.contains("Admin login") && !stdout.contains("ak_test_"),
        "nothing secret printed: {stdout}"
    );
}

#[test]
fn the_development_demo_key_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::helpers::start_binary(dir.path());
    server.wait_for_stdout(|out| out.contains("expires in 30 days").then_some(()));
    let out = crate::helpers::angage_bin()
        .current_dir(dir.path())
        .args(["keys", "list", "--tenant", "demo", "--json"])
        .output()
        .expect("angage keys list");
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let expires = keys["data"][0]["expires_at"].as_str().or_else(|| keys[0]["expires_at"].as_str());
    assert!(expires.is_some(), "the demo key has an expiry: {keys}");
    let (code, _) = server.sigterm_and_wait();
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_plugin_reports_is_bounded_before_it_is_stored() {
    for backend in crate::helpers::backends() {
        let app = crate::helpers::spawn_app(backend).await;
        let admin = app.demo_admin().await;
        let v1 = app.v1().await;
        install(
            &app.state.settings.plugins.dir,
            "usage-enrich.wasm",
            &std::fs::read(angage_test_plugins::TRAPPING_ENRICHER).expect("fixture"),
        );
        wait_for(&admin, "enrich_usage", |e| e["version"] == "0.1.0").await;
        for _ in 0..3 {
            v1.get("/v1/customers/oversize").await;
        }
        app.state.usage.flush().await;
        let (longest, tags): (i64, String) = sqlx::query_as(
            "SELECT LENGTH(endpoint), tags FROM usage_events ORDER BY LENGTH(endpoint) DESC LIMIT 1",
        )
        .fetch_one(&app.state.db.pool)
        .await
        .expect("an event");
        assert!(longest <= 201, "{backend:?}: endpoint of {longest} characters kept");
        let tags: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&tags).expect("tags");
        assert!(
            tags.len() <= 16 && tags.values().all(|v| v.as_str().is_some_and(|s| s.chars().count() <= 257)),
            "{backend:?}"
        );
        // Latency sums stay in range: the dashboard still answers.
        let r = admin.get("/admin/v1/usage/latency?period=7d").await;
        assert_eq!(r.status, 200, "{backend:?}: {:?}", r.body);
        let r = admin.get("/admin/v1/usage?period=7d").await;
        assert_eq!(r.status, 200, "{backend:?}: {:?}", r.body);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smaller_holes_are_closed() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let v1 = app.v1().await;

    // A path that is not UTF-8, and a method the route does not take: problem+json.
    for (method, path) in
        [(reqwest::Method::GET, "/v1/customers/%FF%FE"), (reqwest::Method::PATCH, "/v1/customers")]
    {
        let r = v1.request(method.clone(), path).send().await.expect("send");
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(
            r.status().is_client_error() && ct == "application/problem+json",
            "{method} {path}: {} {ct}",
            r.status()
        );
    }

    // A name filter with LIKE's wildcards matches them as themselves.
    for name in ["100% Pure", "Plain"] {
        assert_eq!(
            v1.post("/v1/customers", json!({"name": name, "email": "x@example.com"})).await.status,
            201
        );
    }
    let found = v1.get("/v1/customers?name=%25").await.body;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");

    // A key whose stored allowlist does not read back is refused, not unrestricted.
    let issued =
        admin.post("/admin/v1/keys", json!({"name": "walled", "ip_allowlist": ["10.0.0.0/8"]})).await;
    let (id, secret) = (
        issued.body["id"].as_str().expect("id").to_owned(),
        issued.body["key"].as_str().expect("key").to_owned(),
    );
    sqlx::query("UPDATE api_keys SET ip_allowlist = 'not json' WHERE id = $1")
        .bind(&id)
        .execute(&app.state.db.pool)
        .await
        .expect("corrupt");
    let r = app.with_key(&secret).get("/v1/customers").await;
    assert_eq!((r.status, r.body["code"].as_str()), (403, Some("ip_not_allowed")));

    // Usage rows name only their own tenant's keys.
    let theirs = app.tenant_admin("other").await;
    let other = angage_store::tenants::by_slug(&app.state.db, "other").await.expect("tenant");
    sqlx::query(
        "INSERT INTO usage_events (id, tenant_id, key_id, endpoint, module, status, status_class, error_code, latency_us, tags, created_at, error_detail) \
         VALUES ('use_forged', $1, $2, 'GET /customers', 'customers', 500, '5xx', 'x', 1, '{}', $3, 'forged')",
    )
    .bind(&other.id)
    .bind(&id)
    .bind(crate::helpers::T0_MS)
    .execute(&app.state.db.pool)
    .await
    .expect("an event naming another tenant's key");
    let recent = theirs.get("/admin/v1/errors/recent").await.body;
    assert_eq!(
        recent["data"][0]["key_name"],
        serde_json::Value::Null,
        "another tenant's key name leaked: {recent}"
    );

    // Retention far in the future keeps everything instead of wrapping around.
    let mut usage = app.state.settings.usage.clone();
    usage.raw_retention_days = 1_000_000_000_000_000;
    let removed =
        angage_store::usage::retain(&app.state.db, &usage, crate::helpers::T0_MS).await.expect("retain");
    assert_eq!(removed, 0);

    // The docs page frames nowhere and runs no inline script.
    let docs = app.get("/docs").await;
    let csp =
        docs.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");

    // Tenant admins see a plugin's file name, not where the server keeps it.
    install(
        &app.state.settings.plugins.dir,
        "module-scopes.wasm",
        &std::fs::read(angage_test_plugins::DENY_TEST_WRITES).expect("fixture"),
    );
    let entry = wait_for(&admin, "authorize", |e| e["source"] == "file").await;
    assert_eq!(entry["file"], "module-scopes.wasm");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_session_cookie_carries_the_host_prefix() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.admin.secure_cookies = true;
    let app = spawn_with(db, settings).await;
    let password = app.banner.as_ref().expect("banner").admin_password.clone();
    let r = app
        .http
        .post(app.url("/admin/v1/login"))
        .json(&json!({"email": "admin@demo.local", "password": password}))
        .send()
        .await
        .expect("login");
    let cookie = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(
        cookie.starts_with("__Host-angage_session=")
            && cookie.contains("; Secure")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    let me = app.http.get(app.url("/admin/v1/me")).header("cookie", session).send().await.expect("me");
    assert_eq!(me.status(), 200);
    app.stop().await;
}

/// `GET /customers` answers the store has recorded, for the demo tenant.
async fn recorded_gets(app: &crate::helpers::TestApp) -> i64 {
    app.state.usage.flush().await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM usage_events WHERE endpoint = 'GET /customers'")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_strings_stall_nothing_and_are_echoed_bounded() {
    for backend in crate::helpers::backends() {
        let app = crate::helpers::spawn_app(backend).await;
        let v1 = app.v1().await;
        let huge = "x".repeat(900 * 1024);
        for body in [json!({"na\u{0}me": 1, "email": "a@b.example.com"}), json!({huge.clone(): 1})] {
            let r = v1.post("/v1/customers", body).await;
            assert_eq!(r.status, 422, "{backend:?}");
            let text = r.body.to_string();
            assert!(text.len() < 4096, "{backend:?}: an answer of {} bytes", text.len());
        }
        let many: String = (0..5000).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
        let r = v1.get(&format!("/v1/customers?{many}")).await;
        assert_eq!(r.status, 400);
        assert!(
            r.body.to_string().len() < 8192,
            "{backend:?}: {} bytes for 5000 parameters",
            r.body.to_string().len()
        );
        // Usage recording goes on: the next 1,000 requests are all counted.
        let before = recorded_gets(&app).await;
        for _ in 0..1000 {
            assert_eq!(v1.get("/v1/customers").await.status, 200);
        }
        assert_eq!(recorded_gets(&app).await - before, 1000, "{backend:?}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_database_refuses_is_dropped_alone() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let v1 = app.v1().await;
    // A row the database will never take, as a poisoned event would be.
    sqlx::raw_sql(
        "CREATE TRIGGER poison BEFORE INSERT ON usage_events WHEN NEW.error_detail LIKE '%poison%' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(&app.state.db.pool)
    .await
    .expect("trigger");
    let before = recorded_gets(&app).await;
    assert_eq!(v1.get("/v1/customers/poison").await.status, 404);
    for _ in 0..1000 {
        assert_eq!(v1.get("/v1/customers").await.status, 200);
    }
    assert_eq!(recorded_gets(&app).await - before, 1000, "everything but the refused event is written");
    assert_eq!(app.state.usage.dropped(), 1);
    app.stop().await;
}

/// The server's peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_checked_a_few_at_a_time_and_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::helpers::start_binary(dir.path());
    server.wait_for_stdout(|out| out.contains("Admin login").then_some(()));
    let before = peak_rss_kib(server.pid());
    let http = reqwest::Client::new();
    let url = format!("http://{}/admin/v1/login", server.addr);
    let sent: Vec<_> = (0..50)
        .map(|i| {
            http.post(&url).json(&json!({"email": format!("u{i}@demo.local"), "password": "wrong password"}))
        })
        .collect();
    let answers = crate::race::race(sent).await;
    assert_eq!(crate::race::count(&answers, 200), 0, "all refused");
    let busy = answers.iter().filter(|(s, b)| *s == 429 && b["code"] == "login_busy").count();
    let checked = crate::race::count(&answers, 401);
    assert!(busy > 0 && checked <= 25, "{checked} checked, {busy} told to retry: {answers:?}");
    let grew = peak_rss_kib(server.pid()).saturating_sub(before);
    eprintln!(
        "50 wrong logins at once: {checked} checked, {busy} told to retry, peak memory +{} MiB",
        grew / 1024
    );
    // Two checks at once at 19 MiB each, and some slack; 50 at once would be about 950 MiB.
    assert!(grew < 120 * 1024, "peak memory grew by {} MiB", grew / 1024);
    let (code, _) = tokio::task::spawn_blocking(move || server.sigterm_and_wait()).await.expect("stop");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_one_clients_failures_lock_out_only_that_client() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    let app = spawn_with(db, settings).await;
    let banner = app.banner.clone().expect("banner");
    let login = |from: &str, email: &str, password: &str| {
        app.http
            .post(app.url("/admin/v1/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    for i in 0..25 {
        login("203.0.113.66", &format!("u{i}@demo.local"), "nope").await.expect("send");
    }
    let attacker = login("203.0.113.66", &banner.admin_email, &banner.admin_password).await.expect("send");
    assert_eq!(attacker.status(), 429, "the guessing address is locked");
    let owner = login("198.51.100.7", &banner.admin_email, &banner.admin_password).await.expect("send");
    assert_eq!(owner.status(), 200, "everyone else behind the proxy still logs in");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_without_a_valid_key_is_limited_per_address_and_not_kept() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let v1 = app.v1().await;
    // A made-up key of the right shape (checksum and all): it reaches the stages, and fails.
    let made_up =
        angage_store::keys::ApiKey::generate(angage_core::key::Environment::Live).expose().to_owned();
    let mut statuses = Vec::new();
    for i in 0..140 {
        let r = if i % 2 == 0 {
            app.with_key(&made_up).get("/v1/customers").await
        } else {
            app.with_key("").get("/v1/customers").await
        };
        statuses.push((r.status, r.body["code"].as_str().unwrap_or("").to_owned()));
    }
    let unauthorized = statuses.iter().filter(|(s, _)| *s == 401).count();
    let limited = statuses.iter().filter(|(s, c)| *s == 429 && c == "rate_limited").count();
    assert_eq!((unauthorized, limited), (120, 20), "{statuses:?}");
    assert_eq!(v1.get("/v1/customers").await.status, 200, "a valid key from the same address still works");
    app.state.usage.flush().await;
    let (orphans,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM usage_events WHERE tenant_id IS NULL")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count");
    assert_eq!(orphans, 0, "requests no tenant's key named are counted, not kept");
    app.clock.advance_ms(60_000);
    assert_eq!(app.with_key(&made_up).get("/v1/customers").await.status, 401, "the next minute starts over");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_denial_reaches_the_client_bounded_and_plain() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.plugins.config.insert("module-scopes".into(), json!({"mode": "wild-denial"}));
    let app = spawn_with(db, settings).await;
    let admin = app.demo_admin().await;
    let v1 = app.v1().await;
    install(
        &app.state.settings.plugins.dir,
        "module-scopes.wasm",
        &std::fs::read(angage_test_plugins::MISBEHAVING).expect("fixture"),
    );
    wait_for(&admin, "authorize", |e| e["version"] == "0.1.0").await;
    let denied = v1.get("/v1/customers").await;
    assert_eq!(
        (denied.status, denied.code()),
        (403, "denied"),
        "a 200 is no denial status, that code no code"
    );
    assert!(denied.headers.get("x-injected").is_none());
    let detail = denied.body["detail"].as_str().expect("detail");
    assert!(detail.chars().count() <= 501 && !detail.contains('\u{1b}'), "{} chars", detail.chars().count());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_a_trusted_proxy_earns_hsts_and_a_client_cannot_claim_it() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    let app = spawn_with(db, settings).await;
    let hsts = |protos: &'static [&'static str]| {
        let mut req = app.http.get(app.url("/healthz"));
        for p in protos {
            req = req.header("x-forwarded-proto", *p);
        }
        async move {
            let r = req.send().await.expect("send");
            r.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()).map(str::to_owned)
        }
    };
    assert_eq!(hsts(&["https"]).await.as_deref(), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(hsts(&[]).await, None, "plain HTTP earns none");
    assert_eq!(
        hsts(&["https, http"]).await,
        None,
        "the nearest proxy said http; the client's https is ignored"
    );
    assert_eq!(hsts(&["https", "http"]).await, None, "the same, on two lines");
    app.stop().await;

    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let r =
        app.http.get(app.url("/healthz")).header("x-forwarded-proto", "https").send().await.expect("send");
    assert!(
        r.headers().get("strict-transport-security").is_none(),
        "no trusted proxy: the header is a client's"
    );
    app.stop().await;
}
