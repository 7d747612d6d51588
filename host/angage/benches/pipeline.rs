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

use std::sync::Arc;
use std::time::Instant;

use angage_core::clock::{Clock, SystemClock};
use angage_core::config::Settings;
use angage_core::policy::{Operation, PolicyRequest};
use angage_core::tenant::TenantId;
use angage_policy::Services;
use angage_policy::plugins::counters::LocalCounters;
use angage_policy::testing::Stages;
use angage_rules::RuleSet;
use angage_store::db::Db;
use angage_store::keys::cache::KeyCache;
use angage_store::keys::store::Actor;
use angage_store::keys::{NewKey, Pepper, store};
use angage_store::tenants::cache::SettingsCache;
use angage_store::usage::UsageSink;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

// The allocator the `angage` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Fixture {
    stages: Stages,
    request: Arc<PolicyRequest>,
}

fn fixture(rt: &tokio::runtime::Runtime) -> (Fixture, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::default();
    settings.database.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    settings.data.dir = dir.path().join("data");
    settings.plugins.dir = dir.path().join("plugins.d");
    settings.policies.dir = dir.path().join("policies");
    let pepper = Pepper::new(&"p".repeat(48)).expect("pepper");
    let fixture = rt.block_on(async {
        let db = Db::connect(&settings.database).await.expect("db");
        db.migrate().await.expect("migrate");
        let tenant = angage_store::tenants::create(&db, "bench", "Bench", 0).await.expect("tenant");
        let big = 1_000_000_000;
        let new = NewKey::parse(&json!({"name": "bench", "rate_limits": {"per_second": big, "per_minute": big, "per_hour": big, "per_day": big, "burst": big}}))
            .expect("key");
        let key = store::create(&db, &pepper, &TenantId(tenant.id.clone()), &Actor("bench".into()), new, 0).await.expect("issue").key;
        let keys = Arc::new(KeyCache::new(pepper.clone(), 3_600_000));
        let tenant_settings = Arc::new(SettingsCache::new(3_600_000));
        // Warm the caches as the engine's prefetch would (the host clock is the system clock).
        let now = SystemClock.now_ms();
        keys.lookup(&db, &key, now).await.expect("warm");
        tenant_settings.get(&db, &tenant.id, now).await.expect("warm");
        let rules = RuleSet::start(db.clone(), &settings.policies, now).await.expect("rules");
        let services = Services {
            usage: UsageSink::start(db.clone(), 1024, &dir.path().join("spool"), 0.01).await.expect("usage"),
            db,
            keys,
            tenant_settings,
            rules,
            clock: Arc::new(SystemClock),
            counters: Arc::new(LocalCounters::default()),
            node: angage_policy::Node::default(),
        };
        let stages = Stages::start(Arc::new(settings), &services).expect("plugins");
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("host", "127.0.0.1:8080".to_owned()),
            ("authorization", format!("Bearer {key}")),
            ("user-agent", "python-requests/2.31.0".to_owned()),
            ("accept", "*/*".to_owned()),
        ] {
            headers.insert(name, value.parse().expect("header value"));
        }
        // Not prefetched: the plugin's lookup goes through the key cache (hash, then the map).
        let request = Arc::new(PolicyRequest {
            method: "GET".into(),
            route: "/v1/customers/{id}".into(),
            path: "/v1/customers/CUST-10001".into(),
            query: None,
            module: "customers".into(),
            operation: Operation::Read,
            headers,
            client_ip: "127.0.0.1".into(),
        origin: None,
            scheme: "http",
            https: false,
            time_ms: 0,
            request_id: String::new(),
        });
        Fixture { stages, request }
    });
    (fixture, dir)
}

const BATCH: usize = 16;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (f, _dir) = fixture(&rt);
    c.bench_function("pipeline/four_stages", |b| b.iter(|| rt.block_on(f.stages.one(&f.request))));
    let batch = vec![f.request.clone(); BATCH];
    c.bench_function("pipeline/four_stages_batch_of_16", |b| b.iter(|| rt.block_on(f.stages.batch(&batch))));
    stages(c, &rt, &f);

    let samples: Vec<u128> = (0..100_000)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(f.stages.one(&f.request));
            start.elapsed().as_nanos()
        })
        .collect();
    report("pipeline/four_stages", samples, 1);
    let samples = (0..100_000 / BATCH)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(f.stages.batch(&batch));
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
    let s = &f.stages;
    let caller = rt.block_on(s.authenticate(&f.request));
    c.bench_function("pipeline/authenticate", |b| b.iter(|| rt.block_on(s.authenticate(&f.request))));
    c.bench_function("pipeline/authorize", |b| b.iter(|| rt.block_on(s.authorize(&caller, &f.request))));
    c.bench_function("pipeline/rate_limit", |b| b.iter(|| rt.block_on(s.rate_limit(&caller, &f.request))));
    c.bench_function("pipeline/enrich_usage", |b| b.iter(|| rt.block_on(s.enrich(&caller, &f.request))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
