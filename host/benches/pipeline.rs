//! The four policy stages in process, per request: authenticate (key lookup served from the
//! cache), authorize, rate-limit (five windows on the host counters) and enrich-usage, through
//! the real built-in plugins on warm instances.
//!
//! ```sh
//! cargo bench --bench pipeline
//! ```
//! Criterion reports the median; the run also prints p50/p99 over 100 000 requests, one at a time
//! and in batches of 16 the way the server's lanes run them (each stage over the batch on one
//! warm instance; the per-request figure is a batch's time over 16).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use angage_host::clock::SystemClock;
use angage_host::config::Settings;
use angage_host::db::Db;
use angage_host::keys::cache::KeyCache;
use angage_host::keys::store::Actor;
use angage_host::keys::store::KeyRecord;
use angage_host::keys::{NewKey, Pepper, store};
use angage_host::plugins::bindings::types;
use angage_host::plugins::counters::LocalCounters;
use angage_host::plugins::handles::{PolicyRequest, key_state};
use angage_host::plugins::store_data::HostCtx;
use angage_host::plugins::{PluginRuntime, stage};
use angage_host::resources::store::TenantId;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

// The allocator the `angage` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Fixture {
    plugins: Arc<PluginRuntime>,
    request: Arc<PolicyRequest>,
}

fn fixture(rt: &tokio::runtime::Runtime) -> (Fixture, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::default();
    settings.database.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    settings.data.dir = dir.path().join("data");
    settings.plugins.dir = dir.path().join("plugins.d");
    let pepper = Pepper::new(&"p".repeat(48)).expect("pepper");
    let fixture = rt.block_on(async {
        let db = Db::connect(&settings.database).await.expect("db");
        db.migrate().await.expect("migrate");
        let tenant = angage_host::tenants::create(&db, "bench", "Bench", 0).await.expect("tenant");
        let big = 1_000_000_000;
        let new = NewKey::parse(&json!({"name": "bench", "rate_limits": {"per_second": big, "per_minute": big, "per_hour": big, "per_day": big, "burst": big}}))
            .expect("key");
        let key = store::create(&db, &pepper, &TenantId(tenant.id), &Actor("bench".into()), new, 0).await.expect("issue").key;
        let keys = Arc::new(KeyCache::new(pepper.clone(), 3_600_000));
        // Warm the cache as the pipeline's prefetch would (the host clock is the system clock).
        keys.lookup(&db, &key, angage_host::clock::Clock::now_ms(&SystemClock)).await.expect("warm");
        let ctx = Arc::new(HostCtx { keys, db, clock: Arc::new(SystemClock), counters: Arc::new(LocalCounters::default()) });
        let plugins = PluginRuntime::start(Arc::new(settings), ctx).expect("plugins");
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("host", "127.0.0.1:8080".to_owned()),
            ("authorization", format!("Bearer {key}")),
            ("user-agent", "python-requests/2.31.0".to_owned()),
            ("accept", "*/*".to_owned()),
        ] {
            headers.insert(name, value.parse().expect("header value"));
        }
        let request = Arc::new(PolicyRequest {
            method: "GET".into(),
            route: "/v1/customers/{id}".into(),
            path: "/v1/customers/CUST-10001".into(),
            module: "customers".into(),
            operation: types::Operation::Read,
            headers,
            client_ip: "127.0.0.1".into(),
            scheme: "http",
            time_ms: 0,
            // The plugin's lookup goes through the key cache (hash, then the map).
            prefetched: None,
        });
        Fixture { plugins, request }
    });
    (fixture, dir)
}

/// One request's worth of policy: the four stage calls.
async fn pipeline(f: &Fixture) {
    let p = &f.plugins;
    let key = authenticate(f).await;
    p.authz
        .load()
        .call(|b, s| stage::authorize(b, s, &key, &f.request))
        .await
        .expect("call")
        .expect("allowed");
    let limits = key_state(&key).limits;
    let decision =
        p.rate.load().call(|b, s| stage::check(b, s, &key, &f.request, 1, limits)).await.expect("call");
    assert!(decision.allowed);
    let draft = draft(&key);
    black_box(
        p.usage.load().call(|b, s| stage::enrich(b, s, &f.request, Some(&key), &draft)).await.expect("call"),
    );
}

/// BATCH requests' policy the way a lane runs it: each stage over the whole batch.
async fn pipeline_batch(f: &Fixture, requests: &[Arc<PolicyRequest>]) {
    let p = &f.plugins;
    let keys: Vec<Arc<KeyRecord>> = p
        .authn
        .load()
        .call_batch(requests, stage::authenticate)
        .await
        .into_iter()
        .map(|k| k.expect("call").expect("authenticated"))
        .collect();
    let pairs: Vec<_> = keys.iter().zip(requests).collect();
    for allowed in p.authz.load().call_batch(&pairs, |b, s, (k, r)| stage::authorize(b, s, k, r)).await {
        allowed.expect("call").expect("allowed");
    }
    let limits = key_state(&keys[0]).limits;
    for d in p.rate.load().call_batch(&pairs, |b, s, (k, r)| stage::check(b, s, k, r, 1, limits)).await {
        assert!(d.expect("call").allowed);
    }
    let drafts: Vec<_> = pairs.iter().map(|(k, r)| (*k, *r, draft(k))).collect();
    black_box(p.usage.load().call_batch(&drafts, |b, s, (k, r, d)| stage::enrich(b, s, r, Some(k), d)).await);
}

const BATCH: usize = 16;

/// The host's draft usage event for a 200 (the pipeline builds one per request).
fn draft(key: &KeyRecord) -> types::UsageEvent {
    types::UsageEvent {
        endpoint: "GET /customers/{id}".into(),
        module: "customers".into(),
        key_id: Some(key.id.clone()),
        status: 200,
        status_class: "2xx".into(),
        error_code: None,
        latency_us: 350,
        tags: Vec::new(),
    }
}

async fn authenticate(f: &Fixture) -> Arc<KeyRecord> {
    f.plugins
        .authn
        .load()
        .call(|b, s| stage::authenticate(b, s, &f.request))
        .await
        .expect("call")
        .expect("authenticated")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (f, _dir) = fixture(&rt);
    c.bench_function("pipeline/four_stages", |b| b.iter(|| rt.block_on(pipeline(&f))));
    let batch = vec![f.request.clone(); BATCH];
    c.bench_function("pipeline/four_stages_batch_of_16", |b| {
        b.iter(|| rt.block_on(pipeline_batch(&f, &batch)))
    });
    stages(c, &rt, &f);

    let samples: Vec<u128> = (0..100_000)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(pipeline(&f));
            start.elapsed().as_nanos()
        })
        .collect();
    report("pipeline/four_stages", samples, 1);
    let samples = (0..100_000 / BATCH)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(pipeline_batch(&f, &batch));
            start.elapsed().as_nanos()
        })
        .collect();
    report("pipeline/four_stages in batches of 16", samples, BATCH);
}

/// Prints p50, p99 and max per request of `samples` (nanoseconds per run of `per_run` requests).
fn report(name: &str, mut samples: Vec<u128>, per_run: usize) {
    samples.sort_unstable();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] as f64 / 1000.0 / per_run as f64
    };
    println!(
        "{name} over {} requests: p50 {:.2} us, p99 {:.2} us, max {:.2} us (per request)",
        samples.len() * per_run,
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Each stage on its own, to see where a request's time goes.
fn stages(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Fixture) {
    let p = &f.plugins;
    let key = rt.block_on(authenticate(f));
    c.bench_function("pipeline/authenticate", |b| b.iter(|| rt.block_on(authenticate(f))));
    c.bench_function("pipeline/authorize", |b| {
        b.iter(|| rt.block_on(p.authz.load().call(|b, s| stage::authorize(b, s, &key, &f.request))))
    });
    let limits = key_state(&key).limits;
    c.bench_function("pipeline/rate_limit", |b| {
        b.iter(|| rt.block_on(p.rate.load().call(|b, s| stage::check(b, s, &key, &f.request, 1, limits))))
    });
    let draft = draft(&key);
    c.bench_function("pipeline/enrich_usage", |b| {
        b.iter(|| {
            rt.block_on(p.usage.load().call(|b, s| stage::enrich(b, s, &f.request, Some(&key), &draft)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
