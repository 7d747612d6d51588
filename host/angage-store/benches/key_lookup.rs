//! The request path's key lookup: a cache hit (format, checksum, HMAC digest, cache, last-used)
//! and a cache miss on the embedded database; the same for an OAuth access token.
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
    let (db, secret, token) = rt.block_on(async {
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
        // An OAuth client with OAuth on, and one of its tokens.
        let tenant_id = TenantId(angage_store::tenants::by_slug(&db, "bench").await.expect("tenant").id);
        let mut on = angage_core::settings::TenantSettings::default();
        on.security.oauth_enabled = true;
        let mut conn = db.pool.acquire().await.expect("conn");
        angage_store::tenants::settings::write(&mut conn, &tenant_id, &on, 0, false).await.expect("oauth on");
        drop(conn);
        let spec = angage_store::oauth::ClientSpec::parse(
            &serde_json::json!({"name": "bench", "scopes": ["customers:read"]}),
            true,
        )
        .expect("spec");
        let client = angage_store::oauth::create(&db, &pepper, &tenant_id, &Actor("bench".into()), spec, 0)
            .await
            .expect("client");
        let credentials = angage_store::oauth::tokens::Credentials {
            client_id: &client.client_id,
            secret: &client.client_secret,
        };
        let token =
            angage_store::oauth::tokens::issue(&db, &pepper, &credentials, None, None, SystemClock.now_ms())
                .await
                .expect("token");
        (db, issued.key, token.access_token)
    });
    let cache = KeyCache::new(pepper.clone(), 3_600_000);
    let now = SystemClock.now_ms();
    rt.block_on(cache.lookup(&db, &secret, now)).expect("warm");
    rt.block_on(cache.lookup(&db, &token, now)).expect("warm");
    c.bench_function("token_lookup/cache_hit", |b| {
        b.iter(|| match cache.lookup_cached(black_box(&token), now) {
            Ok(Lookup::Found(r)) => black_box(r),
            _ => panic!("expected a hit"),
        })
    });
    let token_digest = pepper.digest(&ApiKey::parse(&token).expect("token"));
    c.bench_function("token_lookup/cache_miss_sqlite", |b| {
        b.iter(|| {
            rt.block_on(angage_store::oauth::tokens::lookup(&db, black_box(&token_digest)))
                .expect("lookup")
                .expect("found")
        })
    });

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
