//! Dashboard query cost: 30 days of rollups for a tenant with 10 million requests (plus a
//! second tenant of the same size) on the embedded database; each dashboard query timed.
//!
//! ```sh
//! cargo bench --bench usage_queries
//! ```

use std::time::Instant;

use angage_core::config::Settings;
use angage_core::tenant::TenantId;
use angage_store::db::Db;
use angage_store::usage::query::{self, Period};

const DAY_MS: i64 = 86_400_000;
const ENDPOINTS: usize = 20;
const KEYS: usize = 10;
const STATUSES: [(i64, &str); 5] = [
    (200, ""),
    (400, "validation_failed"),
    (404, "not_found"),
    (429, "rate_limited"),
    (500, "internal_error"),
];

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::default();
    settings.database.url = format!("sqlite://{}", dir.path().join("usage.db").display());
    let db = Db::connect(&settings.database).await?;
    db.migrate().await?;
    let now = 1_793_613_600_000i64;
    let today = now / DAY_MS;
    let started = Instant::now();
    let mut total = 0i64;
    for tenant in ["ten_bench", "ten_noise"] {
        sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $2, 0)")
            .bind(tenant)
            .bind(tenant.replace('_', "-"))
            .execute(&db.pool)
            .await?;
        for day in (today - 29)..=today {
            let mut tx = db.write_tx().await?;
            for e in 0..ENDPOINTS {
                for k in 0..KEYS {
                    for (s, (status, code)) in STATUSES.iter().enumerate() {
                        // 10M per tenant over 30 days: 333,400 a day over 1,000 rows, mostly 200s.
                        let requests: i64 = if s == 0 { 1587 } else { 20 };
                        total += requests;
                        sqlx::query(
                            "INSERT INTO usage_daily (tenant_id, day, key_id, endpoint, status, error_code, requests, latency_sum_us) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(tenant)
                        .bind(day)
                        .bind(format!("key_{k:012}"))
                        .bind(format!("GET /endpoint{e}/{{id}}"))
                        .bind(status)
                        .bind(*code)
                        .bind(requests)
                        .bind(requests * (1000 + 37 * e as i64))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            for bucket in 300..700i64 {
                sqlx::query(
                    "INSERT INTO usage_latency_daily (tenant_id, day, bucket, count) VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant)
                .bind(day)
                .bind(bucket)
                .bind(833i64)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
    }
    println!("generated {} requests of rollups for two tenants in {:?}", total, started.elapsed());
    let tenant = TenantId("ten_bench".into());
    let period = Period::parse("30d", now).expect("period");
    let mut report = Vec::new();
    macro_rules! time {
        ($name:literal, $call:expr) => {{
            let mut samples = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                let _ = $call.await?;
                samples.push(t.elapsed());
            }
            samples.sort();
            report.push(format!("{}: median {:?}, max {:?}", $name, samples[10], samples[19]));
        }};
    }
    let s = query::summary(&db, &tenant, period, now, 0).await?;
    println!("tenant total over 30 days: {}", s.total);
    time!("usage summary", query::summary(&db, &tenant, period, now, 0));
    time!("usage by endpoint", query::endpoints(&db, &tenant, period));
    time!("usage by key", query::keys(&db, &tenant, period));
    time!("latency (p95/p99)", query::latency(&db, &tenant, period));
    time!("errors with trend", query::errors(&db, &tenant, period));
    for line in report {
        println!("{line}");
    }
    Ok(())
}
