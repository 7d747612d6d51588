//! `spawn_app()` and friends: a fresh database per test and a typed client for the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use angage::app::{App, Deps, PolicyLayer};
use angage_core::clock::{Clock, ManualClock};
use angage_core::config::Settings;
use angage_core::policy::{BoxFuture, Exchange, Policy, PolicyRequest, StageStatus, Verdict};
use angage_http::AppState;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL too when `ANGAGE_TEST_POSTGRES_URL` is set (CI sets it).
pub(crate) fn backends() -> Vec<Backend> {
    if postgres_admin_url().is_some() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        skip("ANGAGE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL half of this test");
        vec![Backend::Sqlite]
    }
}

/// Says why a part of a test does not run; where the services must be there (`.ci/run` sets
/// `ANGAGE_TEST_REQUIRE_SERVICES=1`), a skip is a failure instead.
pub(crate) fn skip(why: &str) {
    let required = std::env::var("ANGAGE_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    assert!(!required, "{why}, and ANGAGE_TEST_REQUIRE_SERVICES=1 makes that a failure");
    eprintln!("{why}");
}

/// `ANGAGE_TEST_REDIS_URL`, or `None` after saying why a test's shared part does not run.
pub(crate) fn redis_url() -> Option<String> {
    let url = std::env::var("ANGAGE_TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        skip("ANGAGE_TEST_REDIS_URL is not set: skipping what needs Redis");
    }
    url
}

/// Deletes every Redis key under `prefix` (a test's own).
pub(crate) async fn forget_redis_prefix(url: &str, prefix: &str) {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect to redis");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("keys");
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.expect("del");
    }
}

pub(crate) fn postgres_admin_url() -> Option<String> {
    std::env::var("ANGAGE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// A database that exists for one test and is removed afterwards.
pub(crate) struct TestDb {
    pub url: String,
    pub backend: Backend,
    /// Holds the SQLite file (and any other files of the test) until drop.
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub(crate) async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("angage.db").display());
                Self { url, backend, dir, pg_name: None }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url().expect("postgres url");
                let name = format!("angage_t_{}", angage_core::ids::random_base62(12).to_lowercase());
                run_pg(&admin, &format!("CREATE DATABASE {name}")).await;
                let url = replace_db_name(&admin, &name);
                Self { url, backend, dir, pg_name: Some(name) }
            }
        }
    }

    /// The PostgreSQL database's name, when this is PostgreSQL.
    pub(crate) fn pg_name(&self) -> Option<&str> {
        self.pg_name.as_deref()
    }

    /// The SQLite file, when this is SQLite.
    pub(crate) fn sqlite_file(&self) -> Option<PathBuf> {
        (self.backend == Backend::Sqlite).then(|| self.dir.path().join("angage.db"))
    }

    /// Drops a PostgreSQL database out from under the server.
    pub(crate) async fn drop_now(&self) {
        if let (Some(name), Some(admin)) = (&self.pg_name, postgres_admin_url()) {
            run_pg(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (Some(name), Some(admin)) = (self.pg_name.take(), postgres_admin_url()) else { return };
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(run_pg(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
            }
        })
        .join();
    }
}

pub(crate) async fn run_pg(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect to ANGAGE_TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.expect(sql);
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Settings for a test server: port 0, the given database, files in the test's folder.
pub(crate) fn test_settings(db: &TestDb) -> Settings {
    let mut s = Settings::default();
    s.server.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    s.server.shutdown_grace_seconds = 5;
    s.database.url = db.url.clone();
    s.data.dir = db.dir.path().join("data");
    s.plugins.dir = db.dir.path().join("plugins.d");
    s.policies.dir = db.dir.path().join("policies");
    s.log.level = "warn".into();
    // Compiled plugins are shared by every test server: each process compiles them once.
    s.plugins.cache_dir = std::env::temp_dir().join("angage-test-plugin-cache");
    // Many test servers share two cores: a generous deadline keeps scheduling delays from
    // reading as runaway plugins (the deadline itself is tested with a plugin that loops).
    s.plugins.deadline_ms = 200;
    // Test receivers listen on plain http on 127.0.0.1; the refusals have tests of their own.
    s.webhooks.allow_insecure_urls = true;
    s.webhooks.allow_private_targets = true;
    // Tests read the raw events of successes; the request log's sample has a test of its own.
    s.usage.success_sample_rate = 1.0;
    s
}

/// A running server and a client for it.
pub(crate) struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// The tenant `/v1` calls act for.
    pub tenant: String,
    /// A full-scope key per tenant slug, made on first use, with limits tests never reach.
    keys: std::sync::Mutex<std::collections::HashMap<String, String>>,
    pub db: TestDb,
    /// Moves time for the server; starts at [`T0_MS`].
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    /// The policy engine as the server uses it.
    pub policy: Arc<Observed>,
    pub banner: Option<angage::bootstrap::Banner>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The policy engine as tests see it: it counts the requests that reached the stages, and
/// records the latency a request names in `x-test-latency-us` instead of the measured one, so
/// percentiles can be asserted exactly.
pub(crate) struct Observed {
    engine: Arc<dyn Policy>,
    decided: AtomicU64,
}

impl Observed {
    /// Requests that have reached the policy stages so far.
    pub(crate) fn decided(&self) -> u64 {
        self.decided.load(Ordering::SeqCst)
    }
}

impl Policy for Observed {
    fn decide(&self, request: Arc<PolicyRequest>) -> BoxFuture<'_, Verdict> {
        self.decided.fetch_add(1, Ordering::SeqCst);
        self.engine.decide(request)
    }

    fn finished(&self, mut exchange: Exchange) {
        let chosen =
            exchange.request.headers.get("x-test-latency-us").and_then(|v| v.to_str().ok()?.parse().ok());
        if let Some(latency_us) = chosen {
            exchange.latency_us = latency_us;
        }
        self.engine.finished(exchange);
    }

    fn status(&self) -> Vec<StageStatus> {
        self.engine.status()
    }

    fn check_plugin(&self, name: String, bytes: Arc<[u8]>) -> BoxFuture<'_, Result<String, String>> {
        self.engine.check_plugin(name, bytes)
    }
}

/// A fixed start time for the manual clock: 2026-11-02T10:00:00Z.
pub(crate) const T0_MS: i64 = 1_793_613_600_000;

pub(crate) async fn spawn_app(backend: Backend) -> TestApp {
    let db = TestDb::new(backend).await;
    let settings = test_settings(&db);
    spawn_with(db, settings).await
}

pub(crate) async fn spawn_with(db: TestDb, settings: Settings) -> TestApp {
    let clock = ManualClock::new(T0_MS);
    let observed = Arc::new(std::sync::OnceLock::<Arc<Observed>>::new());
    let slot = observed.clone();
    let layer: PolicyLayer = Box::new(move |engine, _| {
        let observing = Arc::new(Observed { engine, decided: AtomicU64::new(0) });
        let _ = slot.set(observing.clone());
        observing
    });
    let deps = Deps { clock: clock.clone() as Arc<dyn Clock>, policy: Some(layer), deliver_webhooks: true };
    let app = App::build(settings, deps).await.expect("app builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let banner = app.banner.clone();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(app.serve(async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        tenant: "demo".into(),
        keys: Default::default(),
        db,
        clock,
        state,
        policy: observed.get().expect("the app applied the policy layer").clone(),
        banner,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    /// A client acting for another tenant of the same server (with a full-scope key).
    pub(crate) async fn as_tenant(&self, slug: &str) -> V1<'_> {
        let key = self.key_for(slug).await;
        V1 { app: self, key }
    }

    /// A client acting for this app's default tenant.
    pub(crate) async fn v1(&self) -> V1<'_> {
        self.as_tenant(&self.tenant.clone()).await
    }

    /// A client using exactly this key.
    pub(crate) fn with_key(&self, key: &str) -> V1<'_> {
        V1 { app: self, key: key.to_owned() }
    }

    async fn key_for(&self, slug: &str) -> String {
        if let Some(k) = self.keys.lock().expect("keys").get(slug) {
            return k.clone();
        }
        let limits = serde_json::json!({"per_second": 1_000_000, "per_minute": 1_000_000, "per_hour": 1_000_000,
                                        "per_day": 1_000_000, "burst": 1_000_000});
        let key = self.issue_key(slug, serde_json::json!({"name": "tests", "rate_limits": limits})).await;
        self.keys.lock().expect("keys").insert(slug.to_owned(), key.clone());
        key
    }

    /// Issues a key for a tenant straight in the store (as the admin API would); returns the secret.
    pub(crate) async fn issue_key(&self, slug: &str, body: serde_json::Value) -> String {
        let tenant = angage_store::tenants::by_slug(&self.state.db, slug).await.expect("tenant");
        let new = angage_store::keys::NewKey::parse(&body).expect("valid key request");
        let issued = angage_store::keys::store::create(
            &self.state.db,
            self.state.keys.pepper(),
            &angage_core::tenant::TenantId(tenant.id),
            &angage_store::keys::store::Actor("tests".into()),
            new,
            self.clock.now_ms(),
        )
        .await
        .expect("issue key");
        issued.key
    }

    /// Creates a tenant (with its default settings) in the store.
    pub(crate) async fn create_tenant(&self, slug: &str) -> String {
        angage_store::tenants::create(&self.state.db, slug, slug, T0_MS).await.expect("create tenant").id
    }

    /// Creates a tenant with one admin (its owner) and logs that admin in.
    pub(crate) async fn tenant_admin(&self, slug: &str) -> AdminSession<'_> {
        let id = self.create_tenant(slug).await;
        let email = format!("admin@{slug}.example.com");
        self.add_admin(&id, &email, angage_store::admins::Role::Owner).await;
        self.login(&email, ADMIN_PASSWORD).await
    }

    /// Adds an admin with [`ADMIN_PASSWORD`] to tenant `tenant_id`.
    pub(crate) async fn add_admin(&self, tenant_id: &str, email: &str, role: angage_store::admins::Role) {
        let new = angage_store::admins::NewAdmin { email, password: ADMIN_PASSWORD, role };
        let tenant = angage_core::tenant::TenantId(tenant_id.to_owned());
        angage_store::admins::create(
            &self.state.db,
            &self.state.settings.admin,
            &tenant,
            &new,
            "system",
            T0_MS,
        )
        .await
        .expect("create admin");
    }

    /// Logs the first-start admin of tenant `demo` in.
    pub(crate) async fn demo_admin(&self) -> AdminSession<'_> {
        let banner = self.banner.clone().expect("first start");
        self.login(&banner.admin_email, &banner.admin_password).await
    }

    /// Logs in through the admin API; panics unless it succeeds.
    pub(crate) async fn login(&self, email: &str, password: &str) -> AdminSession<'_> {
        let reply = self.try_login(email, password).await;
        assert_eq!(reply.status, 200, "login failed: {:?}", reply.body);
        let cookie =
            reply.header("set-cookie").expect("session cookie").split(';').next().expect("pair").to_owned();
        let csrf = reply.body["csrf_token"].as_str().expect("csrf").to_owned();
        AdminSession { app: self, cookie, csrf }
    }

    pub(crate) async fn try_login(&self, email: &str, password: &str) -> Reply {
        send_checked(
            &self.http,
            self.http
                .post(self.url("/admin/v1/login"))
                .json(&serde_json::json!({"email": email, "password": password})),
        )
        .await
    }

    /// Signals shutdown (as SIGTERM would) and returns the server task to await.
    pub(crate) fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("server running")
    }

    /// Stops the server gracefully and waits for it.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stops cleanly");
        }
    }
}

/// The `angage` binary built for these tests.
pub(crate) fn angage_bin() -> std::process::Command {
    without_angage_env(std::process::Command::new(env!("CARGO_BIN_EXE_angage")))
}

/// `cmd` without the `ANGAGE_*` settings of the environment the tests run in.
fn without_angage_env(mut cmd: std::process::Command) -> std::process::Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("ANGAGE_") && !key.starts_with("ANGAGE_TEST_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Reads a problem+json body, asserting the content type.
pub(crate) async fn problem(resp: reqwest::Response) -> serde_json::Value {
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(ct, "application/problem+json", "expected a problem body");
    resp.json().await.expect("problem json")
}

/// A `/v1` client for one tenant. Every response it receives is checked against the served
/// OpenAPI document.
pub(crate) struct V1<'a> {
    app: &'a TestApp,
    key: String,
}

/// A received response: status, headers and parsed body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
    /// The raw body, for checking what must never appear in it.
    pub text: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `code` of a problem body.
    pub(crate) fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl V1<'_> {
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app.http.request(method, self.app.url(path)).bearer_auth(&self.key)
    }

    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        send_checked(&self.app.http, req).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(self.request(reqwest::Method::PUT, path).json(&body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

/// Sends a request and checks the response against the OpenAPI document of its API.
pub(crate) async fn send_checked(http: &reqwest::Client, req: reqwest::RequestBuilder) -> Reply {
    let req = req.build().expect("request builds");
    let method = req.method().as_str().to_lowercase();
    let path = req.url().path().to_owned();
    let resp = http.execute(req).await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(text.clone()))
    };
    crate::openapi::check_response(&method, &path, status, &headers, &body);
    Reply { status, headers, body, text }
}

/// A logged-in admin: the session cookie, and the CSRF token sent on every change.
pub(crate) struct AdminSession<'a> {
    pub app: &'a TestApp,
    pub cookie: String,
    pub csrf: String,
}

impl AdminSession<'_> {
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.app.http.request(method.clone(), self.app.url(path)).header("cookie", &self.cookie);
        if method == reqwest::Method::GET { req } else { req.header("x-csrf-token", &self.csrf) }
    }

    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        send_checked(&self.app.http, req).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(self.request(reqwest::Method::PUT, path).json(&body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }
}

/// The password of every admin a test adds.
pub(crate) const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// The real `angage` binary, serving on a port of its own.
pub(crate) struct BinaryServer {
    child: std::process::Child,
    pub addr: String,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

// A test that fails before its SIGTERM still leaves no server behind.
impl Drop for BinaryServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The demo owner's e-mail and password, from a first start's banner on stdout.
pub(crate) fn admin_credentials(node: &BinaryServer) -> (String, String) {
    node.wait_for_stdout(|out| {
        let line = out.lines().find(|l| l.contains("Admin login"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        Some((words.get(2)?.to_string(), words.get(4)?.to_string()))
    })
}

/// An admin's console session on a binary server: (cookie, CSRF token).
pub(crate) async fn binary_session(
    http: &reqwest::Client,
    node: &BinaryServer,
    who: &(String, String),
) -> (String, String) {
    let r = http
        .post(format!("http://{}/admin/v1/login", node.addr))
        .json(&serde_json::json!({"email": who.0, "password": who.1}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let cookie =
        r.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let body: serde_json::Value = r.json().await.expect("json");
    (cookie, body["csrf_token"].as_str().expect("csrf").to_owned())
}

/// Starts the real binary on port 0 in `dir` and waits for its "listening" log line.
pub(crate) fn start_binary(dir: &std::path::Path) -> BinaryServer {
    start_binary_with(dir, &[])
}

/// [`start_binary`] with more command-line arguments.
pub(crate) fn start_binary_with(dir: &std::path::Path, args: &[&str]) -> BinaryServer {
    start_command(angage_bin(), dir, args)
}

/// [`start_binary_with`] under an open-file limit of `files` (soft and hard), set by `prlimit`.
pub(crate) fn start_binary_limited(dir: &std::path::Path, args: &[&str], files: u64) -> BinaryServer {
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile={files}:{files}")).arg("--").arg(env!("CARGO_BIN_EXE_angage"));
    start_command(without_angage_env(cmd), dir, args)
}

fn start_command(mut cmd: std::process::Command, dir: &std::path::Path, args: &[&str]) -> BinaryServer {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    let mut child = cmd
        .current_dir(dir)
        .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
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
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut pipe = child.stdout.take().expect("stdout");
    let sink = stdout.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock().expect("stdout").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    BinaryServer { child, addr: addr.expect("the server logs its address"), stdout, reader: Some(reader) }
}

impl BinaryServer {
    /// A GET over a fresh connection; the whole response (status line, headers, body).
    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> String {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(&self.addr).expect("connect");
        let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        write!(conn, "GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n", self.addr)
            .expect("write");
        let mut response = String::new();
        conn.read_to_string(&mut response).expect("read");
        response
    }

    /// What the process printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout").clone()
    }

    /// Waits (up to 10 s) until `find` finds what it looks for in stdout.
    pub(crate) fn wait_for_stdout<T>(&self, find: impl Fn(&str) -> Option<T>) -> T {
        crate::wait::until_blocking(Duration::from_secs(10), "printed on stdout", || find(&self.stdout()))
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM; returns the exit code and everything the process printed on stdout.
    pub(crate) fn sigterm_and_wait(mut self) -> (i32, String) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let code = crate::wait::until_blocking(Duration::from_secs(10), "exit after SIGTERM", || {
            self.child.try_wait().expect("wait").map(|status| status.code().unwrap_or(-1))
        });
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (code, self.stdout())
    }
}
