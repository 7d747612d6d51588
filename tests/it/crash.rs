//! The real binary through the failures an operator meets: killed under load (usage events
//! survive but for the last moments), stopped cleanly (none lost), and its database stopped
//! under it (fast 503s, never a 500, and service back without a restart).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{
    Backend, BinaryServer, TestDb, postgres_admin_url, run_pg, skip, start_binary, start_binary_with,
};

/// A key of the demo tenant the load never exhausts, made with the CLI on the server's store.
fn unlimited_key(server: &BinaryServer, dir: &std::path::Path, args: &[&str]) -> String {
    // The first start has made the demo tenant once the banner is out.
    server.wait_for_stdout(|out| out.contains("ak_test_").then_some(()));
    let big = "1000000000";
    let out = crate::helpers::angage_bin()
        .current_dir(dir)
        .args(args)
        .args(["keys", "create", "--tenant", "demo", "--name", "load", "--env", "test", "--json"])
        .args(["--per-second", big, "--per-minute", big, "--per-hour", big, "--per-day", big, "--burst", big])
        .output()
        .expect("angage keys create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let issued: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    issued["key"].as_str().expect("key").to_owned()
}

/// Clients calling `GET /v1/customers` until told to stop; each answer is counted by status.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    statuses: Arc<std::sync::Mutex<Vec<(u16, Duration)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
}

impl Load {
    fn start(addr: &str, key: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let statuses = Arc::new(std::sync::Mutex::new(Vec::new()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let tasks = (0..clients)
            .map(|_| {
                let (stop, ok, statuses, http) = (stop.clone(), ok.clone(), statuses.clone(), http.clone());
                let url = format!("http://{addr}/v1/customers");
                let key = key.to_owned();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let Ok(r) = http.get(&url).bearer_auth(&key).send().await else { continue };
                        let status = r.status().as_u16();
                        if r.bytes().await.is_err() {
                            continue;
                        }
                        if status == 200 {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        statuses.lock().expect("statuses").push((status, sent.elapsed()));
                    }
                })
            })
            .collect();
        Self { stop, ok, statuses, tasks, started: Instant::now() }
    }

    /// Stops the clients; the answers they saw, and answers per second.
    async fn stop(self) -> (u64, f64, Vec<(u16, Duration)>) {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        for t in self.tasks {
            let _ = t.await;
        }
        let ok = self.ok.load(Ordering::Relaxed);
        let statuses = std::mem::take(&mut *self.statuses.lock().expect("statuses"));
        (ok, ok as f64 / elapsed, statuses)
    }
}

/// `GET /customers` requests the store has recorded as served.
async fn recorded(db_file: &std::path::Path) -> u64 {
    use sqlx::Connection;
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", db_file.display())).await.expect("open");
    // The rollups count every event (raw rows are kept for errors and a sample of successes).
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM usage_minute WHERE endpoint = 'GET /customers' AND status = 200",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count");
    n as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_loses_only_the_last_moments_of_usage_and_a_stop_loses_none() {
    for kill in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = start_binary(dir.path());
        let key = unlimited_key(&server, dir.path(), &[]);
        let load = Load::start(&server.addr, &key, 16);
        crate::wait::until(Duration::from_secs(10), "a second of load", async || {
            (load.started.elapsed() >= Duration::from_secs(2)).then_some(())
        })
        .await;
        if kill {
            server.kill();
        } else {
            let (code, _) =
                tokio::task::spawn_blocking(move || server.sigterm_and_wait()).await.expect("stop");
            assert_eq!(code, 0);
        }
        let (seen, rate, _) = load.stop().await;
        // The next start writes what the spool kept.
        let again = start_binary(dir.path());
        crate::wait::until(Duration::from_secs(10), "the restarted server answers", async || {
            again.get("/readyz", &[]).starts_with("HTTP/1.1 200").then_some(())
        })
        .await;
        let (code, out) = tokio::task::spawn_blocking(move || again.sigterm_and_wait()).await.expect("stop");
        assert_eq!(code, 0, "the restarted server stops cleanly: {out}");
        let recorded = recorded(&dir.path().join("data/angage.db")).await;
        let lost = seen.saturating_sub(recorded);
        let bound = (rate * 0.1).ceil() as u64;
        eprintln!(
            "{}: clients saw {seen} answers ({rate:.0}/s), usage recorded {recorded}, lost {lost} (100 ms = {bound})",
            if kill { "SIGKILL" } else { "SIGTERM" }
        );
        if kill {
            assert!(lost <= bound, "lost {lost} events, more than 100 ms ({bound}) at {rate:.0}/s");
        } else {
            assert_eq!(lost, 0, "a clean stop loses no event");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_fast_503_and_service_returns_without_a_restart() {
    let Some(admin) = postgres_admin_url() else {
        skip("ANGAGE_TEST_POSTGRES_URL is not set: skipping the database outage test");
        return;
    };
    let db = TestDb::new(Backend::Postgres).await;
    let name = db.pg_name().expect("a PostgreSQL database").to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_binary_with(dir.path(), &["--database-url", &db.url]);
    let key = unlimited_key(&server, dir.path(), &["--database-url", &db.url]);
    let bearer = format!("Bearer {key}");
    assert!(server.get("/v1/customers", &[("Authorization", &bearer)]).starts_with("HTTP/1.1 200"));

    // The database this test owns stops taking work: its sessions are ended, new ones refused.
    run_pg(&admin, &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    run_pg(
        &admin,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    )
    .await;
    let load = Load::start(&server.addr, &key, 4);
    crate::wait::until(Duration::from_secs(10), "two seconds of outage", async || {
        (load.started.elapsed() >= Duration::from_secs(2)).then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let write = http
        .post(format!("http://{}/v1/customers", server.addr))
        .header("Authorization", &bearer)
        .json(&serde_json::json!({"name": "During", "email": "d@example.com"}))
        .send()
        .await
        .expect("send");
    let (write_status, retry_after) = (
        write.status().as_u16(),
        write.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned()),
    );
    let (_, _, during) = load.stop().await;

    run_pg(&admin, &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    crate::wait::until(Duration::from_secs(10), "service returns", async || {
        server.get("/v1/customers", &[("Authorization", &bearer)]).starts_with("HTTP/1.1 200").then_some(())
    })
    .await;

    assert!(!during.is_empty());
    assert!(during.iter().all(|(s, _)| *s != 500), "no 500 during the outage: {during:?}");
    assert!(during.iter().filter(|(s, _)| *s == 503).count() > 0, "503 during the outage: {during:?}");
    let slowest = during.iter().map(|(_, d)| *d).max().unwrap_or_default();
    assert!(slowest < Duration::from_secs(1), "every answer within 1 s, the slowest took {slowest:?}");
    assert_eq!(
        (write_status, retry_after.as_deref()),
        (503, Some("1")),
        "a write is refused with Retry-After"
    );
    let (code, _) = tokio::task::spawn_blocking(move || server.sigterm_and_wait()).await.expect("stop");
    assert_eq!(code, 0);
}
