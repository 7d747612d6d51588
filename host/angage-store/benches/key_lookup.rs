//! The request path's key lookup: a cache hit (format, checksum, HMAC digest, cache, last-used)
//! and a cache miss on the embedded database.
//!
//! ```sh
//! cargo bench --bench key_lookup
//! ```

use std::hint::black_box;

use angage_core::clock::{Clock, SystemClock};
use angage_core::config::Settings;
use angage_core::key::{Environment, Scope};
use angage_core::limits::Limits;
use angage_core::tenant::TenantId;
use angage_store::db::Db;
use angage_store::keys::cache::{KeyCache, Lookup};
use angage_store::keys::store::{self, Actor};
use angage_store::keys::{ApiKey, NewKey, Pepper};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::default();
    settings.database.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let pepper = Pepper::new(&"p".repeat(48)).expect("pepper");
    let (db, secret) = rt.block_on(async {
        let db = Db::connect(&settings.database).await.expect("db");
        db.migrate().await.expect("migrate");
        let tenant = angage_store::tenants::create(&db, "bench", "Bench", 0).await.expect("tenant");
        let new = NewKey {
            name: "bench".into(),
            description: None,
            environment: Environment::Live,
            scope: Scope::Full,
            grants: Default::default(),
            rate_limits: Limits::default(),
            ip_allowlist: vec!["10.0.0.0/8".into()],
            expires_in_days: None,
            signing_public_key: None,
            require_signature: false,
        };
        let issued = store::create(&db, &pepper, &TenantId(tenant.id), &Actor("bench".into()), new, 0)
            .await
            .expect("key");
        (db, issued.key)
    });
    let cache = KeyCache::new(pepper.clone(), 3_600_000);
    let now = SystemClock.now_ms();
    rt.block_on(cache.lookup(&db, &secret, now)).expect("warm");

    c.bench_function("key_lookup/cache_hit", |b| {
        b.iter(|| match cache.lookup_cached(black_box(&secret), now) {
            Ok(Lookup::Found(r)) => black_box(r),
            _ => panic!("expected a hit"),
        })
    });
    let key = ApiKey::parse(&secret).expect("key");
    let digest = pepper.digest(&key);
    c.bench_function("key_lookup/cache_miss_sqlite", |b| {
        b.iter(|| rt.block_on(store::lookup(&db, black_box(&digest))).expect("lookup").expect("found"))
    });
    c.bench_function("key_lookup/malformed", |b| {
        b.iter(|| {
            black_box(cache.lookup_cached(black_box("ak_live_0000000000000000000000000000000000000000"), now))
                .is_ok()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
