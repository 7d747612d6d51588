//! Webhook delivery, measured: the real server in process on the embedded database, a receiver
//! on 127.0.0.1 answering 204 at once.
//!
//! ```sh
//! cargo bench --bench webhooks                       # all three parts, default sizes
//! cargo bench --bench webhooks -- --backlog 5000 --rate 200 --seconds 10 --rounds 5
//! cargo bench --bench webhooks -- --part write-path --rounds 8   # or throughput, lag
//! ```
//!
//! 1. Throughput: `--backlog` test events are queued while the endpoint is disabled, then it is
//!    enabled; deliveries per second until the receiver has them all.
//! 2. Lag: `POST /v1/customers` at `--rate` per second for `--seconds`; for each event, the time
//!    from its commit (the event's `created_at`) to the receiver's answer: p50, p99, max.
//! 3. The write path: `POST /v1/customers` from 32 clients (SQLite's one writer saturated) on a
//!    server with no endpoint and one with an endpoint subscribed, in alternating 2 s segments
//!    off-on-on-off for `--rounds`; the ratio of requests served. Twice: with the webhook worker
//!    off (what the outbox costs the write's own transaction), and on (its deliveries sent
//!    meanwhile, the rest drained before the next segment).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use angage::app::{App, Deps};
use angage_core::config::Settings;
use angage_core::tenant::TenantId;
use angage_store::keys::store::Actor;
use angage_store::keys::{NewKey, store};
use angage_store::webhooks::deliveries;
use angage_store::webhooks::endpoints::{self, EndpointUpdate, NewEndpoint};
use serde_json::json;

struct Args {
    /// `throughput`, `lag`, `write-path` or `all`.
    part: String,
    backlog: usize,
    rate: u64,
    seconds: u64,
    rounds: usize,
}

fn parse_args() -> Args {
    let mut args = Args { part: "all".into(), backlog: 5000, rate: 200, seconds: 10, rounds: 5 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok());
        if flag == "--part" {
            args.part = it.next().unwrap_or_default();
            continue;
        }
        match flag.as_str() {
            "--backlog" => args.backlog = value().unwrap_or(5000) as usize,
            "--rate" => args.rate = value().unwrap_or(200).max(1),
            "--seconds" => args.seconds = value().unwrap_or(10).max(1),
            "--rounds" => args.rounds = value().unwrap_or(5).max(1) as usize,
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Arrivals: webhook-id → (when it arrived, the event's created_at).
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<HashMap<String, (i64, i64)>>>);

impl Receiver {
    async fn start(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let seen = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, std::convert::Infallible>(seen.record(req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Ok(url)
    }

    async fn record(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<http_body_util::Empty<hyper::body::Bytes>> {
        use http_body_util::BodyExt;
        let id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let arrived = unix_ms();
        let created = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| angage_core::clock::parse_rfc3339(v["created_at"].as_str()?))
            .unwrap_or(arrived);
        self.0.lock().expect("receiver").entry(id).or_insert((arrived, created));
        let mut response = hyper::Response::new(http_body_util::Empty::new());
        *response.status_mut() = hyper::StatusCode::NO_CONTENT;
        response
    }

    fn count(&self) -> usize {
        self.0.lock().expect("receiver").len()
    }

    fn lags(&self) -> Vec<i64> {
        self.0.lock().expect("receiver").values().map(|(arrived, created)| arrived - created).collect()
    }
}

struct Server {
    state: angage_http::AppState,
    base: String,
    key: String,
    tenant: TenantId,
    client: reqwest::Client,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> anyhow::Result<Self> {
        Self::start_with(Deps::default()).await
    }

    async fn start_with(deps: Deps) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut settings = Settings::default();
        settings.server.addr = "127.0.0.1:0".parse()?;
        settings.database.url = format!("sqlite://{}", dir.path().join("hooks.db").display());
        settings.data.dir = dir.path().join("data");
        settings.plugins.dir = dir.path().join("plugins.d");
        settings.log.level = "error".into();
        settings.webhooks.allow_insecure_urls = true;
        settings.webhooks.allow_private_targets = true;
        let app = App::build(settings, deps).await?;
        let state = app.state().clone();
        let base = format!("http://{}", app.local_addr());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(async move {
            let _ = stop_rx.await;
        }));
        let tenant = TenantId(angage_store::tenants::by_slug(&state.db, "demo").await?.id);
        let unlimited = json!({"per_second": 1_000_000_000, "per_minute": 1_000_000_000, "per_hour": 1_000_000_000,
                               "per_day": 1_000_000_000, "burst": 1_000_000_000});
        let new = NewKey::parse(&json!({"name": "hooks", "rate_limits": unlimited}))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let key =
            store::create(&state.db, state.keys.pepper(), &tenant, &Actor("bench".into()), new, 0).await?.key;
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(Self { state, base, key, tenant, client, stop_tx, task, _dir: dir })
    }

    /// An endpoint for `url`, subscribed to `customer.created`; returns its id.
    async fn endpoint(&self, url: &str, enabled: bool) -> anyhow::Result<String> {
        let body = json!({"url": url, "events": ["customer.created"], "enabled": enabled});
        let new =
            NewEndpoint::parse(&body, &self.state.settings.webhooks).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(endpoints::create(&self.state.db, &self.state.sealer, &self.tenant, new, unix_ms())
            .await?
            .endpoint
            .id)
    }

    async fn create_customer(&self, i: u64) -> anyhow::Result<()> {
        let r = self
            .client
            .post(format!("{}/v1/customers", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"name": format!("Customer {i}"), "email": format!("c{i}@bench.example.com")}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "create: {}", r.status());
        Ok(())
    }

    /// `POST /v1/customers` from 32 clients for `seconds`; the requests served.
    async fn write_load(self: &Arc<Self>, seconds: f64) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let workers: Vec<_> = (0..32u64)
            .map(|w| {
                let server = self.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        server.create_customer(w * 10_000_000 + n).await?;
                        n += 1;
                    }
                    Ok::<_, anyhow::Error>(n)
                })
            })
            .collect();
        let mut total = 0;
        for w in workers {
            total += w.await??;
        }
        self.state.usage.flush().await;
        Ok(total)
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop_tx.send(());
        self.task.await??;
        Ok(())
    }
}

async fn wait_for(receiver: &Receiver, n: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while receiver.count() < n {
        anyhow::ensure!(Instant::now() < deadline, "only {} of {n} deliveries arrived", receiver.count());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// Deliveries per second of a backlog spread over `endpoints` endpoints.
async fn throughput(args: &Args, endpoints: usize) -> anyhow::Result<()> {
    let server = Server::start().await?;
    let receiver = Receiver::default();
    let url = receiver.start().await?;
    // A disabled endpoint's deliveries wait; test sends are queued for it all the same.
    let mut ids = Vec::new();
    for _ in 0..endpoints {
        ids.push(server.endpoint(&url, false).await?);
    }
    for i in 0..args.backlog {
        deliveries::send_test(&server.state.db, &server.tenant, &ids[i % endpoints], unix_ms()).await?;
    }
    let started = Instant::now();
    for id in &ids {
        let on = EndpointUpdate { enabled: Some(true), ..EndpointUpdate::default() };
        endpoints::update(&server.state.db, &server.tenant, id, on, unix_ms()).await?;
    }
    wait_for(&receiver, args.backlog, Duration::from_secs(600)).await?;
    let took = started.elapsed().as_secs_f64();
    let cap = server.state.settings.webhooks.max_in_flight_per_endpoint;
    println!(
        "throughput: {} deliveries to {endpoints} endpoint(s) ({cap} in flight each) in {took:.2} s = {:.0} deliveries/s",
        args.backlog,
        args.backlog as f64 / took
    );
    server.stop().await
}

async fn lag(args: &Args) -> anyhow::Result<()> {
    let server = Arc::new(Server::start().await?);
    let receiver = Receiver::default();
    let url = receiver.start().await?;
    server.endpoint(&url, true).await?;
    let total = args.rate * args.seconds;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let server = server.clone();
        writes.push(tokio::spawn(async move { server.create_customer(i).await }));
    }
    for w in writes {
        w.await??;
    }
    wait_for(&receiver, total as usize, Duration::from_secs(60)).await?;
    let mut lags = receiver.lags();
    lags.sort_unstable();
    println!(
        "commit to delivery at {} events/s for {} s ({} events): p50={} ms p99={} ms max={} ms",
        args.rate,
        args.seconds,
        lags.len(),
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0)
    );
    match Arc::try_unwrap(server) {
        Ok(server) => server.stop().await,
        Err(_) => Ok(()),
    }
}

/// Requests served by `a` and `b` in alternating 2 s segments a-b-b-a, after a warm-up of each;
/// `between` runs, unmeasured, after each pair of `b` segments.
async fn alternate(
    a: &Arc<Server>,
    b: &Arc<Server>,
    rounds: usize,
    mut between: impl AsyncFnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, u64)> {
    a.write_load(2.0).await?;
    let warm = b.write_load(2.0).await?;
    between(warm).await?;
    let (mut a_n, mut b_n) = (0, 0);
    for _ in 0..rounds {
        a_n += a.write_load(2.0).await?;
        let pair = b.write_load(2.0).await? + b.write_load(2.0).await?;
        b_n += pair;
        between(pair).await?;
        a_n += a.write_load(2.0).await?;
    }
    Ok((a_n, b_n))
}

async fn write_path(args: &Args) -> anyhow::Result<()> {
    let seconds = (args.rounds * 4) as f64;
    let rate = |n: u64| n as f64 * 2.0 / seconds;
    // The outbox alone: an endpoint subscribed, its events written, no worker sending them.
    let off = Arc::new(Server::start().await?);
    let outbox = Arc::new(Server::start_with(Deps { deliver_webhooks: false, ..Deps::default() }).await?);
    outbox.endpoint("https://hooks.example.com/erp", true).await?;
    let (off_n, outbox_n) = alternate(&off, &outbox, args.rounds, async |_| Ok(())).await?;
    println!(
        "write path, outbox only: POST /v1/customers {:.0} req/s without an endpoint, {:.0} req/s with one \
         subscribed (events written, none sent); with/without = {:.3} ({} rounds of off-on-on-off, 2 s each)",
        rate(off_n),
        rate(outbox_n),
        outbox_n as f64 / off_n as f64,
        args.rounds
    );
    // Everything: the worker moves the events into deliveries and sends them meanwhile; what it
    // has not sent by the end of a segment is drained, unmeasured, before the next one.
    let on = Arc::new(Server::start().await?);
    let receiver = Receiver::default();
    let url = receiver.start().await?;
    on.endpoint(&url, true).await?;
    let mut created = 0usize;
    let mut during = 0usize;
    let (off_n, on_n) = alternate(&off, &on, args.rounds, async |n| {
        during += receiver.count().saturating_sub(created);
        created += n as usize;
        wait_for(&receiver, created, Duration::from_secs(120)).await
    })
    .await?;
    println!(
        "write path, delivering: POST /v1/customers {:.0} req/s without an endpoint, {:.0} req/s with one \
         subscribed and its deliveries sent meanwhile ({} of {created} sent within the segments); with/without = {:.3}",
        rate(off_n),
        rate(on_n),
        during,
        on_n as f64 / off_n as f64
    );
    for server in [off, outbox, on] {
        if let Ok(server) = Arc::try_unwrap(server) {
            server.stop().await?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let part = |name: &str| args.part == "all" || args.part == name;
        if part("throughput") {
            throughput(&args, 1).await?;
            throughput(&args, 8).await?;
        }
        if part("lag") {
            lag(&args).await?;
        }
        if part("write-path") {
            write_path(&args).await?;
        }
        Ok(())
    })
}
