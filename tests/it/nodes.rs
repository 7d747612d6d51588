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

/// Two real `angage` processes on one PostgreSQL database and one Redis, each with its own
/// folder (data, rule files), as two machines behind a load balancer would be.
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
                 [keys]\npepper = \"two-nodes-share-this-pepper-0123456789\"\n",
                db.url
            ),
        )
        .expect("config");
        let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
        let args = ["--config", config.to_str().expect("path")];
        let a = crate::helpers::start_binary_with(dirs[0].path(), &args);
        let admin = a.wait_for_stdout(|out| {
            let line = out.lines().find(|l| l.contains("Admin login"))?;
            let words: Vec<&str> = line.split_whitespace().collect();
            Some((words.get(2)?.to_string(), words.get(4)?.to_string()))
        });
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
        args.extend_from_slice(&["--config", self.config.to_str().expect("path")]);
        let out = angage_bin().current_dir(self.dirs[0].path()).args(&args).output().expect("keys create");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let issued: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        issued["key"].as_str().expect("key").to_owned()
    }

    /// The demo owner's session on `node`: (cookie, csrf).
    async fn login(&self, node: &crate::helpers::BinaryServer) -> (String, String) {
        let r = self
            .http
            .post(Self::url(node, "/admin/v1/login"))
            .json(&serde_json::json!({"email": self.admin.0, "password": self.admin.1}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 200);
        let cookie =
            r.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
        let body: serde_json::Value = r.json().await.expect("json");
        (cookie, body["csrf_token"].as_str().expect("csrf").to_owned())
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

    // A plugin installed through A (its CLI, on the shared database) answers on B within 5 s:
    // test keys become read-only.
    let writer = cluster.issue("writer", &["--per-second", "1000", "--burst", "1000"]);
    let create = |node: &crate::helpers::BinaryServer, n: usize| {
        cluster
            .http
            .post(Cluster::url(node, "/v1/customers"))
            .bearer_auth(&writer)
            .json(&serde_json::json!({"name": format!("C{n}"), "email": format!("c{n}@example.com")}))
            .send()
    };
    assert_eq!(create(b, 0).await.expect("post").status(), 201, "before: the built-in authorizer");
    let out = angage_bin()
        .current_dir(cluster.dirs[0].path())
        .args([
            "plugins",
            "install",
            angage_test_plugins::DENY_TEST_WRITES,
            "--name",
            "module-scopes",
            "--json",
        ])
        .args(["--config", cluster.config.to_str().expect("path")])
        .output()
        .expect("plugins install");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut n = 0;
    crate::wait::until(Duration::from_secs(5), "B serves the installed plugin", async || {
        n += 1;
        (create(b, n).await.expect("post").status() == 403).then_some(())
    })
    .await;
    let listed = angage_bin()
        .current_dir(cluster.dirs[0].path())
        .args(["plugins", "list", "--json", "--config", cluster.config.to_str().expect("path")])
        .output()
        .expect("plugins list");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let stored = listed["stored"][0]["sha256"].as_str().expect("stored").to_owned();
    let serving: Vec<&str> = listed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["stage"] == "authorize")
        .filter_map(|n| n["sha256"].as_str())
        .collect();
    assert_eq!(serving, [stored.as_str(), stored.as_str()], "both nodes report the stored hash: {listed}");

    // Failed logins count on every node: what A allowed, B does not give again.
    let wrong = |node: &crate::helpers::BinaryServer| {
        cluster
            .http
            .post(Cluster::url(node, "/admin/v1/login"))
            .json(&serde_json::json!({"email": "guess@demo.local", "password": "not it"}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(wrong(a).await.expect("login").status(), 401);
    }
    let throttled = wrong(b).await.expect("login");
    assert_eq!(throttled.status(), 429, "the sixth guess, on the other node, waits");

    // Usage over both nodes adds up to what the client saw: 40 requests with the shared key.
    let recorded = crate::wait::until(Duration::from_secs(10), "usage written by both nodes", async || {
        let (_, usage) =
            cluster.admin(a, reqwest::Method::GET, "/admin/v1/usage/keys", serde_json::Value::Null).await;
        let shared = usage.as_array()?.iter().find(|k| k["name"] == "shared")?["requests"].as_i64()?;
        (shared >= 40).then_some(shared)
    })
    .await;
    assert_eq!(recorded, 40, "each request counted once, by the node that answered it");
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
