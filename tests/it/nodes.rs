//! More than one process on one store: every change a node caches is seen by every other node
//! (and by a server beside the CLI) within a second.

use std::time::Duration;

use crate::helpers::{angage_bin, start_binary};

/// A GET of `/v1/customers` with `key` on the real binary: its status line's code.
fn status(server: &crate::helpers::BinaryServer, key: &str) -> u16 {
    let response = server.get("/v1/customers", &[("Authorization", &format!("Bearer {key}"))]);
    response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_key_revoked_by_the_cli_is_refused_by_the_running_server_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_binary(dir.path());
    let key = server
        .wait_for_stdout(|out| out.split_whitespace().find(|w| w.starts_with("ak_test_")).map(str::to_owned));
    assert_eq!(status(&server, &key), 200, "served, and now cached");
    let listed = angage_bin()
        .current_dir(dir.path())
        .args(["keys", "list", "--tenant", "demo", "--json"])
        .output()
        .expect("keys list");
    let keys: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let id = keys["data"][0]["id"]
        .as_str()
        .or_else(|| keys[0]["id"].as_str())
        .expect("the demo key's id")
        .to_owned();
    let revoked = angage_bin()
        .current_dir(dir.path())
        .args(["keys", "revoke", "--tenant", "demo", &id])
        .output()
        .expect("keys revoke");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    crate::wait::until_blocking(Duration::from_secs(1), "the revoked key refused", || {
        (status(&server, &key) == 401).then_some(())
    });
    let (code, _) = server.sigterm_and_wait();
    assert_eq!(code, 0);
}

const OPERATOR_TOKEN: &str = "the-operator-token-0123456789";

/// Two real `angage` processes on one PostgreSQL database and one Redis, each with its own
/// folder (data, rule files), as two machines behind a load balancer would be. Redis gets a
/// second per round trip and no fallback: on a loaded machine the default 20 ms would let a
/// node count alone now and then (the outage test covers that), and exactness is what this
/// test checks.
struct Cluster {
    a: crate::helpers::BinaryServer,
    b: crate::helpers::BinaryServer,
    dirs: [tempfile::TempDir; 2],
    config: std::path::PathBuf,
    http: reqwest::Client,
    admin: (String, String),
    redis: (String, String),
    _db: crate::helpers::TestDb,
}

impl Cluster {
    async fn start() -> Option<Self> {
        let redis = crate::helpers::redis_url()?;
        crate::helpers::postgres_admin_url().or_else(|| {
            crate::helpers::skip("ANGAGE_TEST_POSTGRES_URL is not set: skipping the two-node test");
            None
        })?;
        let db = crate::helpers::TestDb::new(crate::helpers::Backend::Postgres).await;
        let prefix = format!("angage-t-{}:", angage_core::ids::random_base62(10));
        let shared = tempfile::tempdir().expect("tempdir");
        let config = shared.path().join("cluster.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{}\"\n[redis]\nurl = \"{redis}\"\nprefix = \"{prefix}\"\n\
                 timeout_ms = 1000\nfailure = \"closed\"\n[admin]\nlogin_max_failures_per_ip = 6\n\
                 [keys]\npepper = \"two-nodes-share-this-pepper-0123456789\"\n\
                 [server]\noperator_token = \"{OPERATOR_TOKEN}\"\n",
                db.url
            ),
        )
        .expect("config");
        let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
        let args = ["--config", config.to_str().expect("path")];
        let a = crate::helpers::start_binary_with(dirs[0].path(), &args);
        let admin = crate::helpers::admin_credentials(&a);
        let b = crate::helpers::start_binary_with(dirs[1].path(), &args);
        std::mem::forget(shared);
        Some(Self {
            a,
            b,
            dirs,
            config,
            http: reqwest::Client::new(),
            admin,
            redis: (redis, prefix),
            _db: db,
        })
    }

    fn url(node: &crate::helpers::BinaryServer, path: &str) -> String {
        format!("http://{}{path}", node.addr)
    }

    /// A key issued by the CLI on the shared database.
    fn issue(&self, name: &str, limits: &[&str]) -> String {
        let mut args = vec!["keys", "create", "--tenant", "demo", "--name", name, "--env", "test", "--json"];
        args.extend_from_slice(limits);
        self.cli(&args)["key"].as_str().expect("key").to_owned()
    }

    /// The demo owner's session on `node`: (cookie, csrf).
    async fn login(&self, node: &crate::helpers::BinaryServer) -> (String, String) {
        crate::helpers::binary_session(&self.http, node, &self.admin).await
    }

    async fn admin(
        &self,
        node: &crate::helpers::BinaryServer,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let (cookie, csrf) = self.login(node).await;
        let r = self
            .http
            .request(method, Self::url(node, path))
            .header("cookie", cookie)
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
            .await
            .expect("admin request");
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// `PUT /admin/v1/operator/plugins/{name}` with `component`, with or without the token.
    async fn operator(
        &self,
        node: &crate::helpers::BinaryServer,
        name: &str,
        component: Vec<u8>,
        token: bool,
    ) -> (u16, serde_json::Value) {
        let mut r = self
            .http
            .put(Self::url(node, &format!("/admin/v1/operator/plugins/{name}")))
            .header("content-type", "application/wasm")
            .body(component);
        if token {
            r = r.bearer_auth(OPERATOR_TOKEN);
        }
        let r = r.send().await.expect("operator request");
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// `angage ARGS` on the cluster's configuration; its JSON output.
    fn cli(&self, args: &[&str]) -> serde_json::Value {
        let out = angage_bin()
            .current_dir(self.dirs[0].path())
            .args(args)
            .args(["--config", self.config.to_str().expect("path")])
            .output()
            .expect("angage");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    async fn get(&self, node: &crate::helpers::BinaryServer, key: &str) -> reqwest::Response {
        self.http.get(Self::url(node, "/v1/customers")).bearer_auth(key).send().await.expect("get")
    }

    async fn stop(self) {
        let Cluster { a, b, redis, .. } = self;
        let codes = tokio::task::spawn_blocking(move || (a.sigterm_and_wait().0, b.sigterm_and_wait().0))
            .await
            .expect("stop");
        assert_eq!(codes, (0, 0));
        crate::helpers::forget_redis_prefix(&redis.0, &redis.1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_are_one_system() {
    let Some(cluster) = Cluster::start().await else { return };
    let (a, b) = (&cluster.a, &cluster.b);

    // Shared limits: 20 a minute across both nodes, exactly.
    let key = cluster.issue("shared", &["--per-minute", "20", "--per-second", "1000", "--burst", "1000"]);
    let requests = (0..40)
        .map(|i| {
            cluster.http.get(Cluster::url(if i % 2 == 0 { a } else { b }, "/v1/customers")).bearer_auth(&key)
        })
        .collect();
    let answers = crate::race::race(requests).await;
    assert_eq!(crate::race::count(&answers, 200), 20, "{answers:?}");
    assert_eq!(crate::race::count(&answers, 429), 20);

    // A key revoked through A is refused by B within a second.
    let doomed = cluster.issue("doomed", &[]);
    assert_eq!(cluster.get(b, &doomed).await.status(), 200, "B has it cached");
    let (_, keys) =
        cluster.admin(a, reqwest::Method::GET, "/admin/v1/keys?limit=100", serde_json::Value::Null).await;
    let id = keys["data"].as_array().and_then(|d| d.iter().find(|k| k["name"] == "doomed")).expect("listed")
        ["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = cluster
        .admin(a, reqwest::Method::POST, &format!("/admin/v1/keys/{id}/revoke"), serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    crate::wait::until(Duration::from_secs(1), "B refuses the revoked key", async || {
        (cluster.get(b, &doomed).await.status() == 401).then_some(())
    })
    .await;

    // A tenant setting changed on A shows on B within a second.
    let plain = cluster.issue("plain", &[]);
    assert!(cluster.get(b, &plain).await.headers().contains_key("x-ratelimit-limit"));
    let (status, _) = cluster
        .admin(
            a,
            reqwest::Method::PUT,
            "/admin/v1/settings",
            serde_json::json!({"rate_limits": {"send_rate_limit_headers": false}}),
        )
        .await;
    assert_eq!(status, 200);
    crate::wait::until(Duration::from_secs(1), "B stops sending the headers", async || {
        (!cluster.get(b, &plain).await.headers().contains_key("x-ratelimit-limit")).then_some(())
    })
    .await;

    // A rule saved on A governs B within a second.
    let ruled = cluster.issue("ruled", &["--per-second", "1000", "--burst", "1000"]);
    let script =
        "fn rule(request, key, limits) { if key.name == \"ruled\" { limits.per_minute = 1; } limits }";
    let (status, saved) = cluster
        .admin(a, reqwest::Method::PUT, "/admin/v1/rules", serde_json::json!({"script": script}))
        .await;
    assert_eq!(status, 200, "{saved}");
    crate::wait::until(Duration::from_secs(1), "B applies A's rule", async || {
        let r = cluster.get(b, &ruled).await;
        (r.status() == 429).then_some(())
    })
    .await;

    // An admin session ended on A is refused on B within a second (sessions are not cached).
    let (cookie, csrf) = cluster.login(a).await;
    let me = async |node| {
        let r = cluster.http.get(Cluster::url(node, "/admin/v1/me")).header("cookie", &cookie).send();
        r.await.expect("me").status().as_u16()
    };
    assert_eq!(me(b).await, 200);
    let out = cluster
        .http
        .post(Cluster::url(a, "/admin/v1/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf);
    assert!(out.send().await.expect("logout").status().is_success());
    crate::wait::until(Duration::from_secs(1), "B refuses the ended session", async || {
        (me(b).await == 401).then_some(())
    })
    .await;

    // An idempotent create answered by A is answered the same by B, and made once.
    let once = cluster.issue("once", &["--per-second", "1000", "--burst", "1000"]);
    let post = async |node| {
        let r = cluster
            .http
            .post(Cluster::url(node, "/v1/customers"))
            .bearer_auth(&once)
            .header("idempotency-key", "two-nodes-1")
            .json(&serde_json::json!({"name": "Once", "email": "once@example.com"}))
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.expect("json"))
    };
    let first = post(a).await;
    assert_eq!(first.0, 201, "{first:?}");
    assert_eq!(post(b).await, first, "the replay on B answers what A answered");

    // A plugin installed through A (the operator API) answers on B within 5 s: test keys
    // become read-only. Then a second version, and a rollback to the first, both through the CLI.
    let writer = cluster.issue("writer", &["--per-second", "1000", "--burst", "1000"]);
    let mut n = 0;
    let mut created = async || {
        n += 1;
        let body = serde_json::json!({"name": format!("C{n}"), "email": format!("c{n}@example.com")});
        let r = cluster.http.post(Cluster::url(b, "/v1/customers")).bearer_auth(&writer).json(&body).send();
        r.await.expect("post").status().as_u16()
    };
    assert_eq!(created().await, 201, "before: the built-in authorizer");
    let deny = std::fs::read(angage_test_plugins::DENY_TEST_WRITES).expect("fixture");
    let (status, refused) = cluster.operator(a, "module-scopes", b"not a component".to_vec(), true).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("plugin_rejected")), "{refused}");
    let (status, _) = cluster.operator(a, "module-scopes", deny.clone(), false).await;
    assert_eq!(status, 401, "the operator token is required");
    let (status, installed) = cluster.operator(a, "module-scopes", deny, true).await;
    assert_eq!(status, 201, "{installed}");
    assert_eq!(
        (installed["version"].as_i64(), installed["created_by"].as_str()),
        (Some(1), Some("operator"))
    );
    crate::wait::until(Duration::from_secs(5), "B serves the installed plugin", async || {
        (created().await == 403).then_some(())
    })
    .await;
    let listed = cluster.cli(&["plugins", "list", "--json"]);
    let stored = listed["stored"][0]["sha256"].as_str().expect("stored").to_owned();
    assert_eq!(stored, installed["sha256"].as_str().expect("sha256"));
    let serving: Vec<&str> = listed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["stage"] == "authorize")
        .filter_map(|n| n["sha256"].as_str())
        .collect();
    assert_eq!(serving, [stored.as_str(), stored.as_str()], "both nodes report the stored hash: {listed}");

    let builtin = std::env::temp_dir().join(format!("module-scopes-{}.wasm", std::process::id()));
    std::fs::write(&builtin, angage_policy::plugins::builtin("module-scopes").expect("built in"))
        .expect("write");
    let second = cluster.cli(&[
        "plugins",
        "install",
        builtin.to_str().expect("path"),
        "--name",
        "module-scopes",
        "--json",
    ]);
    std::fs::remove_file(&builtin).expect("remove");
    assert_eq!(second["version"], 2);
    crate::wait::until(Duration::from_secs(5), "B serves version 2", async || {
        (created().await == 201).then_some(())
    })
    .await;
    let back = cluster.cli(&["plugins", "rollback", "--name", "module-scopes", "--json"]);
    assert_eq!((back["version"].as_i64(), back["sha256"].as_str()), (Some(1), Some(stored.as_str())));
    crate::wait::until(Duration::from_secs(5), "B serves version 1 again", async || {
        (created().await == 403).then_some(())
    })
    .await;

    // Usage over both nodes adds up to what the client saw: 40 requests with the shared key.
    let recorded = crate::wait::until(Duration::from_secs(10), "usage written by both nodes", async || {
        let (_, usage) =
            cluster.admin(a, reqwest::Method::GET, "/admin/v1/usage/keys", serde_json::Value::Null).await;
        let shared = usage.as_array()?.iter().find(|k| k["name"] == "shared")?["requests"].as_i64()?;
        (shared >= 40).then_some(shared)
    })
    .await;
    assert_eq!(recorded, 40, "each request counted once, by the node that answered it");
    // Failed logins count on every node: an address gets six failures in all (this cluster's
    // setting), three on each node, and the seventh waits on either. Distinct accounts, so only
    // the address's count (a long lock, whatever the machine's speed) decides.
    let wrong = |node: &crate::helpers::BinaryServer, n: usize| {
        cluster
            .http
            .post(Cluster::url(node, "/admin/v1/login"))
            .json(&serde_json::json!({"email": format!("guess{n}@demo.local"), "password": "not it"}))
            .send()
    };
    for n in 0..6 {
        let node = if n % 2 == 0 { a } else { b };
        assert_eq!(wrong(node, n).await.expect("login").status(), 401, "guess {n}");
    }
    assert_eq!(wrong(a, 6).await.expect("login").status(), 429, "the seventh guess waits, on A");
    assert_eq!(wrong(b, 7).await.expect("login").status(), 429, "and on B");
    cluster.stop().await;
}

/// A Redis of the test's own (so stopping it disturbs no other test), on a free port.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> Option<Self> {
        crate::helpers::redis_url()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let mut redis = Self { port, child: None };
        redis.up();
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed by .ci/run)");
        self.child = Some(child);
        crate::wait::until_blocking(Duration::from_secs(5), "redis-server listening", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).ok().map(drop)
        });
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_never_a_500_and_service_returns_by_itself() {
    use angage_core::config::RedisFailure;
    let Some(mut redis) = PrivateRedis::start() else { return };
    for mode in [RedisFailure::Local, RedisFailure::Open, RedisFailure::Closed] {
        let db = crate::helpers::TestDb::new(crate::helpers::Backend::Sqlite).await;
        let mut settings = crate::helpers::test_settings(&db);
        settings.redis.url = redis.url();
        settings.redis.failure = mode;
        // Generous for a loaded machine: what is tested is an outage, not a slow answer.
        settings.redis.timeout_ms = 250;
        settings.redis.prefix = format!("angage-t-{}:", angage_core::ids::random_base62(8));
        let app = crate::helpers::spawn_with(db, settings).await;
        let admin = app.demo_admin().await;
        let made = admin
            .post(
                "/admin/v1/keys",
                serde_json::json!({"name": "five", "environment": "test", "rate_limits": {"per_minute": 5}}),
            )
            .await;
        let key = made.body["key"].as_str().expect("key").to_owned();
        let get = async || {
            app.http
                .get(app.url("/v1/customers"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        };
        let mut up = Vec::new();
        for _ in 0..6 {
            up.push(get().await);
        }
        assert_eq!(up, [200, 200, 200, 200, 200, 429], "{mode:?}: counted in Redis");

        redis.down();
        let mut down = Vec::new();
        for _ in 0..8 {
            down.push(get().await);
        }
        assert!(!down.contains(&500), "{mode:?}: {down:?}");
        let ready = app.get("/readyz").await;
        match mode {
            RedisFailure::Local => {
                assert_eq!(down, [200, 200, 200, 200, 200, 429, 429, 429], "this node counts alone");
                assert_eq!(ready.json::<serde_json::Value>().await.expect("json")["status"], "degraded");
            }
            RedisFailure::Open => {
                assert!(down.iter().all(|s| *s == 200), "not counted: {down:?}");
                assert_eq!(ready.status(), 200);
            }
            RedisFailure::Closed => {
                assert!(down.iter().all(|s| *s == 503), "refused: {down:?}");
                assert_eq!(ready.status(), 503);
                let r = app.http.get(app.url("/v1/customers")).bearer_auth(&key).send().await.expect("send");
                assert_eq!(r.headers()["retry-after"], "1");
                let problem: serde_json::Value = r.json().await.expect("problem");
                assert_eq!(problem["code"], "rate_limit_unavailable");
            }
        }

        redis.up();
        crate::wait::until(Duration::from_secs(5), "Redis counting again", async || {
            (get().await == 200 && app.get("/readyz").await.status() == 200).then_some(())
        })
        .await;
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        assert!(metrics.contains("angage_redis_failures_total"), "{mode:?}: outages are counted");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_endpoints_are_off_without_a_token_and_closed_to_tenant_admins() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let r = app.http.get(app.url("/admin/v1/operator/plugins")).bearer_auth(OPERATOR_TOKEN).send().await;
    let r = r.expect("send");
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "operator_disabled");
    // With a token set, a tenant owner's session is still no operator's token.
    let db = crate::helpers::TestDb::new(crate::helpers::Backend::Sqlite).await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.server.operator_token = OPERATOR_TOKEN.into();
    let app = crate::helpers::spawn_with(db, settings).await;
    let admin = app.demo_admin().await;
    let listed = admin.get("/admin/v1/operator/plugins").await;
    assert_eq!(listed.status, 401, "{}", listed.body);
    let r = app.http.get(app.url("/admin/v1/operator/plugins")).bearer_auth(OPERATOR_TOKEN).send().await;
    let listing: serde_json::Value = r.expect("send").json().await.expect("listing");
    assert_eq!(listing["stored"], serde_json::json!([]), "{listing}");
    assert!(listing["nodes"].as_array().is_some_and(|n| !n.is_empty()), "this node reports what it serves");
}

/// Installs and rollbacks from several nodes at once: each lands once, or is told it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_installs_and_rollbacks_never_lose_a_step() {
    use angage_store::plugins::{self, PluginStoreError};
    for backend in crate::helpers::backends() {
        let db = crate::helpers::TestDb::new(backend).await;
        let settings = crate::helpers::test_settings(&db);
        let store = angage_store::db::Db::connect(&settings.database).await.expect("connect");
        store.migrate().await.expect("migrate");
        for trial in 0..10 {
            let name = format!("p{trial}");
            let installs = (0..3).map(|i| {
                let (store, name) = (store.clone(), name.clone());
                tokio::spawn(async move {
                    plugins::install(&store, &name, format!("v{i}").as_bytes(), "1.0.0", "cli", 0).await
                })
            });
            let mut versions = Vec::new();
            for done in futures_util::future::join_all(installs).await {
                match done.expect("task") {
                    Ok(stored) => versions.push(stored.version),
                    Err(PluginStoreError::Changed(_)) => {}
                    Err(e) => panic!("{backend:?}: {e}"),
                }
            }
            versions.sort_unstable();
            let expected: Vec<i64> = (1..=versions.len() as i64).collect();
            assert_eq!(versions, expected, "{backend:?}: each install its own version");
            if versions.len() < 3 {
                continue;
            }
            let rollbacks = (0..2).map(|_| {
                let (store, name) = (store.clone(), name.clone());
                tokio::spawn(async move { plugins::rollback(&store, &name, 1).await })
            });
            let results: Vec<_> = futures_util::future::join_all(rollbacks)
                .await
                .into_iter()
                .map(|r| r.expect("task"))
                .collect();
            let stepped = results.iter().filter(|r| r.is_ok()).count() as i64;
            assert!(
                results.iter().all(|r| matches!(r, Ok(_) | Err(PluginStoreError::Changed(_)))),
                "{backend:?}: {results:?}"
            );
            let serving = plugins::active(&store, &name).await.expect("read").expect("serving").version;
            assert_eq!(
                serving,
                3 - stepped,
                "{backend:?}: every rollback that answered Ok went back one step"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_is_accepted_once_whichever_node_sees_it() {
    use angage_core::signing::{self, Param, SignatureInput};
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let Some(cluster) = Cluster::start().await else { return };
    let (a, b) = (&cluster.a, &cluster.b);
    let signer = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let public = signing::encode_public_key(&signer.verifying_key().to_bytes());
    let (status, created) = cluster
        .admin(
            a,
            reqwest::Method::POST,
            "/admin/v1/keys",
            serde_json::json!({"name": "signed", "signing_public_key": public, "require_signature": true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (secret, key_id) =
        (created["key"].as_str().expect("key").to_owned(), created["id"].as_str().expect("id").to_owned());
    // Both nodes behind one name, as a load balancer presents them.
    let authority = a.addr.to_string();
    let created_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let input = SignatureInput {
        label: "sig1".into(),
        components: vec!["@method".into(), "@target-uri".into()],
        params: vec![
            ("created".into(), Param::Integer(created_at)),
            ("keyid".into(), Param::String(key_id.clone())),
            ("alg".into(), Param::String("ed25519".into())),
        ],
    };
    let target = signing::target_uri(false, &authority, "/v1/customers", None);
    let base = signing::signature_base(&input, |c| match c {
        "@method" => Some("GET".into()),
        "@target-uri" => Some(target.clone()),
        _ => None,
    })
    .expect("base");
    let signature = format!(
        "sig1=:{}:",
        base64::engine::general_purpose::STANDARD.encode(signer.sign(base.as_bytes()).to_bytes())
    );
    let send = |node: &crate::helpers::BinaryServer| {
        cluster
            .http
            .get(Cluster::url(node, "/v1/customers"))
            .bearer_auth(&secret)
            .header("host", &authority)
            .header("signature-input", format!("sig1={}", input.serialize()))
            .header("signature", &signature)
            .send()
    };
    assert_eq!(send(a).await.expect("a").status(), 200);
    let replay = send(b).await.expect("b");
    assert_eq!(replay.status(), 401);
    let problem: serde_json::Value = replay.json().await.expect("problem");
    assert_eq!(problem["code"], "signature_replayed", "{problem}");
    cluster.stop().await;
}
