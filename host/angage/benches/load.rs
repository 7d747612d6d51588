//! Load generator: the real server in process on the embedded database, N concurrent HTTP
//! clients for a fixed time, then requests/second and latency percentiles.
//!
//! ```sh
//! cargo bench --bench load -- --scenario get-customer --seconds 10 --concurrency 32
//! cargo bench --bench load -- --scenario post-order --seconds 10 --concurrency 32
//! # the same route with the policy stages (plugins and rules) bypassed and on, in one run:
//! cargo bench --bench load -- --scenario get-customer --compare --seconds 1 --rounds 10
//! # the rate-limit counters on this node and in Redis (ANGAGE_BENCH_REDIS_URL, default
//! # redis://127.0.0.1:6379), in one run:
//! cargo bench --bench load -- --scenario get-customer --compare-redis --seconds 1 --rounds 10
//! cargo bench --bench load -- --scenario get-customer --redis --seconds 10   # Redis counters alone
//! # signed requests (verified on the server) against unsigned ones, in one run:
//! cargo bench --bench load -- --scenario get-customer --compare-signatures --seconds 1 --rounds 10
//! ```
//!
//! `--compare` starts two servers, one with the policy stages bypassed (usage is still recorded,
//! so the ratio is what the stages cost) and one with them on, and loads them in alternating
//! segments, off-on-on-off per round, after two seconds of unmeasured warm-up each. A machine whose speed drifts during the run (shared
//! hosts, CPU credits) then weighs on both sides alike; the ratio is of the summed requests.
//! Each segment ends by flushing its server's usage buffer, so the next one starts clean. Short
//! segments and many rounds give the steadiest ratio (here: within 0.02 run to run).
//! `--compare-signatures` does the same with both servers' stages on, one whose key must sign
//! every request (RFC 9421, Ed25519) and one whose key need not: both clients sign each request
//! (so the client's cost weighs on both sides), only the first sends the signature.
//! `--compare-redis` does the same with both servers' stages on, one counting on its own and one
//! in Redis, and reports the Redis round trips per request from `angage_redis_round_trips_total`.

use std::time::{Duration, Instant};

// The allocator the `angage` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use angage::app::{App, Deps, PolicyLayer};
use angage_core::config::Settings;
use angage_core::policy::Policy;
use angage_core::tenant::TenantId;
use angage_policy::Services;
use angage_policy::testing::Bypass;
use angage_store::keys::store::Actor;
use angage_store::keys::{NewKey, store};
use serde_json::json;

#[derive(Clone)]
struct Args {
    scenario: String,
    seconds: u64,
    concurrency: usize,
    compare: bool,
    compare_redis: bool,
    compare_signatures: bool,
    redis: bool,
    rounds: usize,
    bypass: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        scenario: "get-customer".into(),
        seconds: 10,
        concurrency: 32,
        compare: false,
        compare_redis: false,
        compare_signatures: false,
        redis: false,
        rounds: 3,
        bypass: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--scenario" => args.scenario = it.next().unwrap_or_default(),
            "--seconds" => args.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(10),
            "--concurrency" => args.concurrency = it.next().and_then(|v| v.parse().ok()).unwrap_or(32),
            "--compare" => args.compare = true,
            "--compare-redis" => args.compare_redis = true,
            "--compare-signatures" => args.compare_signatures = true,
            "--redis" => args.redis = true,
            "--rounds" => args.rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--pipeline-off" => args.bypass = true,
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        if args.compare {
            let off = Server::start(true, None, false).await?;
            let on = Server::start(false, None, false).await?;
            let (off_requests, on_requests) = alternate(&off, &on, &args).await?;
            off.stop().await?;
            on.stop().await?;
            println!(
                "pipeline-on / pipeline-off throughput: {:.3} ({} rounds of off-on-on-off, {} s each)",
                on_requests as f64 / off_requests as f64,
                args.rounds,
                args.seconds
            );
        } else if args.compare_signatures {
            let unsigned = Server::start(false, None, false).await?;
            let signed = Server::start(false, None, true).await?;
            let (unsigned_requests, signed_requests) = alternate(&unsigned, &signed, &args).await?;
            unsigned.stop().await?;
            signed.stop().await?;
            println!(
                "signed / unsigned throughput: {:.3} ({} rounds of unsigned-signed-signed-unsigned, {} s each)",
                signed_requests as f64 / unsigned_requests as f64,
                args.rounds,
                args.seconds
            );
        } else if args.compare_redis {
            let (url, prefix) = bench_redis();
            let local = Server::start(false, None, false).await?;
            let shared = Server::start(false, Some((url.clone(), prefix.clone())), false).await?;
            let trips_before = round_trips(&shared.state);
            let answered_before = shared.answered();
            let (local_requests, redis_requests) = alternate(&local, &shared, &args).await?;
            let trips = round_trips(&shared.state) - trips_before;
            // What a round trip took and how many requests a lane decided together (summaries).
            for line in shared.state.metrics.render().lines().filter(|l| {
                ["angage_redis_round_trip", "angage_policy_batch_requests"].iter().any(|m| l.starts_with(m))
                    && !l.contains("_bucket")
            }) {
                println!("  {line}");
            }
            let answered = shared.answered() - answered_before;
            local.stop().await?;
            shared.stop().await?;
            forget(&url, &prefix).await?;
            println!(
                "redis / local counters throughput: {:.3} ({} rounds of local-redis-redis-local, {} s each)",
                redis_requests as f64 / local_requests as f64,
                args.rounds,
                args.seconds
            );
            println!(
                "redis round trips per request: {:.3} ({trips:.0} round trips for {answered} answers)",
                trips / answered.max(1) as f64
            );
        } else {
            let redis = args.redis.then(bench_redis);
            let server = Server::start(args.bypass, redis.clone(), false).await?;
            server.measure(&args).await?;
            server.stop().await?;
            if let Some((url, prefix)) = redis {
                forget(&url, &prefix).await?;
            }
        }
        Ok(())
    })
}

/// Loads `a` and `b` in alternating segments, a-b-b-a per round, after an unmeasured warm-up of
/// each (caches, connection pools and plugin instances fill up); the requests each served.
async fn alternate(a: &Server, b: &Server, args: &Args) -> anyhow::Result<(u64, u64)> {
    let warmup = Args { seconds: 2, ..args.clone() };
    a.measure(&warmup).await?;
    b.measure(&warmup).await?;
    let (mut a_requests, mut b_requests) = (0, 0);
    for _ in 0..args.rounds {
        a_requests += a.measure(args).await?;
        b_requests += b.measure(args).await?;
        b_requests += b.measure(args).await?;
        a_requests += a.measure(args).await?;
    }
    Ok((a_requests, b_requests))
}

/// The Redis the bench counts in (`ANGAGE_BENCH_REDIS_URL`) and a key prefix of this run's own.
fn bench_redis() -> (String, String) {
    let url = std::env::var("ANGAGE_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    (url, format!("angage-bench-{}:", std::process::id()))
}

/// Every Redis round trip this process has made (all operations), from the metric.
fn round_trips(state: &angage_http::AppState) -> f64 {
    state
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("angage_redis_round_trips_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Removes the bench's counters from Redis.
async fn forget(url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await?;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(())
}

/// The RFC 9421 headers for one request (`url` absolute), a fresh signature each time.
fn sign(
    signer: &(String, Arc<ed25519_dalek::SigningKey>),
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Vec<(&'static str, String)> {
    use angage_core::signing::{self, Param, SignatureInput};
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let digest = body.map(|b| signing::content_digest(b.as_bytes()));
    let mut components = vec!["@method".to_owned(), "@target-uri".to_owned()];
    if digest.is_some() {
        components.push("content-digest".to_owned());
    }
    let created =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    // Requests signed within one second differ by their nonce, so none is a replay.
    let nonce = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string();
    let input = SignatureInput {
        label: "sig1".into(),
        components,
        params: vec![
            ("created".into(), Param::Integer(created)),
            ("keyid".into(), Param::String(signer.0.clone())),
            ("nonce".into(), Param::String(nonce)),
        ],
    };
    let base = signing::signature_base(&input, |c| match c {
        "@method" => Some(method.to_owned()),
        "@target-uri" => Some(url.to_owned()),
        "content-digest" => digest.clone(),
        _ => None,
    })
    .unwrap_or_default();
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.1.sign(base.as_bytes()).to_bytes());
    let mut headers = vec![
        ("signature-input", format!("sig1={}", input.serialize())),
        ("signature", format!("sig1=:{sig}:")),
    ];
    if let Some(d) = digest {
        headers.push(("content-digest", d));
    }
    headers
}

/// A server in this process with the demo tenant, an unlimited key, a customer and a product.
struct Server {
    bypass: bool,
    counters: &'static str,
    state: angage_http::AppState,
    base: String,
    key: String,
    /// The key's id and the private key every client request is signed with.
    signer: (String, Arc<ed25519_dalek::SigningKey>),
    /// Whether the signature is sent (the key demands it).
    signed: bool,
    customer_id: String,
    client: reqwest::Client,
    answered: std::sync::atomic::AtomicU64,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `redis`: the URL and key prefix of shared counters; `None` counts on this node.
    /// `signed`: the key must sign every request.
    async fn start(bypass: bool, redis: Option<(String, String)>, signed: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut settings = Settings::default();
        settings.server.addr = "127.0.0.1:0".parse()?;
        settings.database.url = format!("sqlite://{}", dir.path().join("load.db").display());
        settings.data.dir = dir.path().join("data");
        settings.plugins.dir = dir.path().join("plugins.d");
        settings.log.level = "error".into();
        let counters = if redis.is_some() { "redis" } else { "local" };
        if let Some((url, prefix)) = redis {
            settings.redis.url = url;
            settings.redis.prefix = prefix;
            // A bench must not quietly measure the fallback.
            settings.redis.failure = angage_core::config::RedisFailure::Closed;
        }
        let policy: Option<PolicyLayer> = bypass
            .then(|| Box::new(|_, s: &Services| Arc::new(Bypass::new(s)) as Arc<dyn Policy>) as PolicyLayer);
        let app = App::build(settings, Deps { policy, ..Deps::default() }).await?;
        let state = app.state().clone();
        let base = format!("http://{}", app.local_addr());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(async move {
            let _ = stop_rx.await;
        }));

        let tenant = angage_store::tenants::by_slug(&state.db, "demo").await?;
        let unlimited = json!({"per_second": 1_000_000_000, "per_minute": 1_000_000_000, "per_hour": 1_000_000_000,
                               "per_day": 1_000_000_000, "burst": 1_000_000_000});
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public = angage_core::signing::encode_public_key(&signing.verifying_key().to_bytes());
        let new = NewKey::parse(&json!({"name": "load", "rate_limits": unlimited,
                                        "signing_public_key": public, "require_signature": signed}))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let issued = store::create(
            &state.db,
            state.keys.pepper(),
            &TenantId(tenant.id),
            &Actor("load".into()),
            new,
            0,
        )
        .await?;
        let (key, key_id) = (issued.key, issued.view.id);
        let signer = (key_id, Arc::new(signing));

        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        let post = |path: &str, body: serde_json::Value| {
            let text = body.to_string();
            let mut req = client.post(format!("{base}{path}")).bearer_auth(&key);
            if signed {
                for (name, value) in sign(&signer, "POST", &format!("{base}{path}"), Some(&text)) {
                    req = req.header(name, value);
                }
            }
            req.header("content-type", "application/json").body(text).send()
        };
        let customer: serde_json::Value =
            post("/v1/customers", json!({"name": "Acme", "email": "ap@acme.example.com"}))
                .await?
                .json()
                .await?;
        post("/v1/products", json!({"sku": "W-1", "name": "Widget", "unit_price": 100, "currency": "USD", "initial_stock": 1_000_000_000}))
            .await?;
        let customer_id = customer["id"].as_str().unwrap_or_default().to_owned();
        // The two set-up POSTs were answered too.
        let answered = std::sync::atomic::AtomicU64::new(2);
        Ok(Self {
            bypass,
            counters,
            state,
            base,
            key,
            signer,
            signed,
            customer_id,
            client,
            answered,
            stop_tx,
            server,
            _dir: dir,
        })
    }

    fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One measured segment; prints it and returns the requests that succeeded.
    async fn measure(&self, args: &Args) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let (client, base, key) = (self.client.clone(), self.base.clone(), self.key.clone());
            let (scenario, customer_id) = (args.scenario.clone(), self.customer_id.clone());
            let (signer, signed, sign_all) = (self.signer.clone(), self.signed, args.compare_signatures);
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(100_000);
                let mut failures = 0u64;
                let mut answered = 0u64;
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let (method, url, body) = match scenario.as_str() {
                        "post-order" => (
                            "POST",
                            format!("{base}/v1/orders"),
                            Some(json!({"customer": customer_id, "lines": [{"product": "W-1", "quantity": 1}]}).to_string()),
                        ),
                        _ => ("GET", format!("{base}/v1/customers/{customer_id}"), None),
                    };
                    let headers = sign_all.then(|| sign(&signer, method, &url, body.as_deref()));
                    let mut req = match &body {
                        Some(b) => client.post(&url).header("content-type", "application/json").body(b.clone()),
                        None => client.get(&url),
                    };
                    if signed {
                        for (name, value) in headers.into_iter().flatten() {
                            req = req.header(name, value);
                        }
                    }
                    let ok = match req.bearer_auth(&key).send().await {
                        Ok(resp) if resp.status().is_success() => {
                            answered += 1;
                            resp.bytes().await.is_ok()
                        }
                        Ok(resp) => {
                            answered += 1;
                            // Say what failed: a refusal's problem+json names its code.
                            let status = resp.status();
                            let body = resp.text().await.unwrap_or_default();
                            eprintln!("failed: {status} {}", body.chars().take(200).collect::<String>());
                            false
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            false
                        }
                    };
                    if ok {
                        latencies.push(start.elapsed().as_micros() as u64);
                    } else {
                        failures += 1;
                    }
                }
                (latencies, failures, answered)
            }));
        }
        let mut all = Vec::new();
        let mut failures = 0;
        for w in workers {
            let (l, f, a) = w.await?;
            all.extend(l);
            failures += f;
            self.answered.fetch_add(a, std::sync::atomic::Ordering::Relaxed);
        }
        // The next segment (maybe the other server's) must not pay for writing this one's usage.
        self.state.usage.flush().await;
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0)
        };
        println!(
            "scenario={} pipeline={} counters={} concurrency={} seconds={} requests={} failures={} rps={:.0} p50={}us p99={}us max={}us",
            args.scenario,
            if self.bypass { "off" } else { "on" },
            self.counters,
            args.concurrency,
            args.seconds,
            all.len(),
            failures,
            all.len() as f64 / args.seconds as f64,
            pct(0.50),
            pct(0.99),
            all.last().copied().unwrap_or(0)
        );
        Ok(all.len() as u64)
    }

    /// Checks that every answered request is in the usage totals, then shuts the server down.
    async fn stop(self) -> anyhow::Result<()> {
        let state = &self.state;
        state.usage.flush().await;
        let now = angage_core::clock::Clock::now_ms(&angage_core::clock::SystemClock);
        let period =
            angage_store::usage::query::Period::parse("7d", now).ok_or_else(|| anyhow::anyhow!("period"))?;
        let demo = TenantId(angage_store::tenants::by_slug(&state.db, "demo").await?.id);
        let recorded =
            angage_store::usage::query::summary(&state.db, &demo, period, now, state.usage.dropped()).await?;
        println!(
            "usage (pipeline {}): client saw {} answers, usage recorded {}, dropped {}",
            if self.bypass { "off" } else { "on" },
            self.answered.load(std::sync::atomic::Ordering::Relaxed),
            recorded.total,
            recorded.dropped_events
        );
        let _ = self.stop_tx.send(());
        self.server.await??;
        Ok(())
    }
}
