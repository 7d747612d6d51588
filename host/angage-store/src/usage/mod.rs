//! The usage pipeline: events go into a bounded in-memory buffer and are written in batches;
//! a full buffer drops the event and counts the loss (never silent, never blocking a request).
//! Flushed on graceful shutdown. Each batch also updates the per-minute and per-day rollups and
//! each tenant's daily latency histogram the dashboard reads (`query.rs`).

pub mod histogram;
pub mod query;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::Arguments;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Backend, Db};
use angage_core::ids::new_id;

/// One finished `/v1` request, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub endpoint: String,
    pub module: String,
    pub status: u16,
    pub status_class: String,
    pub error_code: Option<String>,
    /// The problem's detail, for the recent-errors list.
    pub error_detail: Option<String>,
    pub latency_us: u64,
    pub tags: Vec<(String, String)>,
    pub at_ms: i64,
}

enum Msg {
    Event(Box<UsageRecord>),
    Flush(oneshot::Sender<()>),
}

/// The sending side, shared by request handlers.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Msg>,
    stats: Arc<Stats>,
    in_flight: Arc<InFlight>,
}

/// Requests whose usage event is still being built (enrich-usage runs after the response).
#[derive(Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held while a request's usage event is being built; `flush` waits for every ticket.
pub struct Ticket(Arc<InFlight>);

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[derive(Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub dropped: AtomicU64,
    pub written: AtomicU64,
}

const BATCH: usize = 500;
/// How long a batch may wait to fill before it is written.
const LINGER: Duration = Duration::from_millis(20);

fn take(m: Msg, batch: &mut Vec<UsageRecord>, waiters: &mut Vec<oneshot::Sender<()>>) {
    match m {
        Msg::Event(e) => batch.push(*e),
        Msg::Flush(w) => waiters.push(w),
    }
}

impl UsageSink {
    /// Starts the writer task.
    pub fn start(db: Db, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(Stats::default());
        tokio::spawn(writer(db, rx, stats.clone()));
        Self { tx, stats, in_flight: Arc::default() }
    }

    /// Announces an event that will be recorded shortly.
    pub fn ticket(&self) -> Ticket {
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        Ticket(self.in_flight.clone())
    }

    /// Queues an event; when the buffer is full the event is dropped and counted.
    pub fn record(&self, event: UsageRecord) {
        match self.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                metrics::gauge!("angage_usage_buffer_depth")
                    .set((self.tx.max_capacity() - self.tx.capacity()) as f64);
            }
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("angage_usage_dropped_total").increment(1);
            }
        }
    }

    /// Waits until every announced event is queued, then until everything queued is written.
    pub async fn flush(&self) {
        let settle = async {
            loop {
                let idle = self.in_flight.idle.notified();
                if self.in_flight.count.load(Ordering::Acquire) == 0 {
                    break;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), settle).await;
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Events dropped because the buffer was full, since start.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Msg>, stats: Arc<Stats>) {
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(BATCH);
    loop {
        let first = match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(m)) => Some(m),
            Ok(None) => break,
            Err(_) => None,
        };
        let mut waiters = Vec::new();
        // Each transaction rewrites the same rollup and index pages, so events arriving a few
        // at a time would cost a transaction each: after the first event the batch gathers for
        // up to `LINGER` (or until full). A flush is answered at once.
        let linger = matches!(first, Some(Msg::Event(_))).then(|| tokio::time::Instant::now() + LINGER);
        if let Some(m) = first {
            take(m, &mut batch, &mut waiters);
        }
        while batch.len() < BATCH {
            let m = match rx.try_recv() {
                Ok(m) => m,
                // Nothing queued: wait for more only while lingering and no flush is waiting.
                Err(_) => match linger.filter(|_| waiters.is_empty()) {
                    Some(until) => match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(m)) => m,
                        Ok(None) | Err(_) => break,
                    },
                    None => break,
                },
            };
            take(m, &mut batch, &mut waiters);
        }
        if !batch.is_empty() {
            match write(&db, &batch).await {
                Ok(()) => {
                    stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                }
                Err(e) => {
                    tracing::error!(error = %e, events = batch.len(), "cannot write usage events; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if batch.len() > 100_000 {
                        stats.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        metrics::counter!("angage_usage_dropped_total").increment(batch.len() as u64);
                        batch.clear();
                    }
                }
            }
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
    if !batch.is_empty() {
        let _ = write(&db, &batch).await;
    }
}

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// One rollup row's key: tenant, bucket (minute or day), key, endpoint, status, error code.
type RollupKey = (String, i64, String, String, i64, String);

async fn write(db: &Db, batch: &[UsageRecord]) -> Result<(), sqlx::Error> {
    let mut minutes: HashMap<RollupKey, (i64, i64)> = HashMap::new();
    let mut days: HashMap<RollupKey, (i64, i64)> = HashMap::new();
    let mut latency: HashMap<(String, i64, i64), i64> = HashMap::new();
    for e in batch {
        let Some(tenant) = &e.tenant_id else { continue };
        let latency_us = i64::try_from(e.latency_us).unwrap_or(i64::MAX);
        let row = |bucket: i64| {
            (
                tenant.clone(),
                bucket,
                e.key_id.clone().unwrap_or_default(),
                e.endpoint.clone(),
                i64::from(e.status),
                e.error_code.clone().unwrap_or_default(),
            )
        };
        for (map, size) in [(&mut minutes, MINUTE_MS), (&mut days, DAY_MS)] {
            let slot = map.entry(row(e.at_ms.div_euclid(size))).or_default();
            slot.0 += 1;
            slot.1 = slot.1.saturating_add(latency_us);
        }
        *latency
            .entry((tenant.clone(), e.at_ms.div_euclid(DAY_MS), histogram::bucket(e.latency_us)))
            .or_default() += 1;
    }
    let mut tx = db.write_tx().await?;
    for (table, bucket_col, rows) in [("usage_minute", "minute", &minutes), ("usage_daily", "day", &days)] {
        let sql = format!(
            "INSERT INTO {table} (tenant_id, {bucket_col}, key_id, endpoint, status, error_code, requests, latency_sum_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, {bucket_col}, key_id, endpoint, status, error_code) \
             DO UPDATE SET requests = {table}.requests + excluded.requests, latency_sum_us = {table}.latency_sum_us + excluded.latency_sum_us"
        );
        for ((tenant, bucket, key, endpoint, status, code), (requests, sum)) in rows {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(tenant)
                .bind(bucket)
                .bind(key)
                .bind(endpoint)
                .bind(status)
                .bind(code)
                .bind(requests)
                .bind(sum)
                .execute(&mut *tx)
                .await?;
        }
    }
    for ((tenant, day, bucket), count) in &latency {
        sqlx::query(
            "INSERT INTO usage_latency_daily (tenant_id, day, bucket, count) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, day, bucket) DO UPDATE SET count = usage_latency_daily.count + excluded.count",
        )
        .bind(tenant)
        .bind(day)
        .bind(bucket)
        .bind(count)
        .execute(&mut *tx)
        .await?;
    }
    // Raw events, many rows per statement (12 parameters a row keeps well under the limits).
    for chunk in batch.chunks(80) {
        let mut sql = String::from(
            "INSERT INTO usage_events (id, tenant_id, key_id, endpoint, module, status, status_class, error_code, \
             latency_us, tags, created_at, error_detail) VALUES ",
        );
        let mut args = sqlx::any::AnyArguments::default();
        for (i, e) in chunk.iter().enumerate() {
            let base = i * 12;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for p in 1..=12 {
                if p > 1 {
                    sql.push_str(", ");
                }
                // SQLite looks a numbered parameter up by name, one scan per parameter: with
                // hundreds per statement that is quadratic, so it gets positional ones.
                match db.backend {
                    Backend::Sqlite => sql.push('?'),
                    Backend::Postgres => sql.push_str(&format!("${}", base + p)),
                }
            }
            sql.push(')');
            let tags: serde_json::Map<String, Value> =
                e.tags.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
            // Adding owned values to AnyArguments cannot fail.
            let _ = args.add(new_id("use"));
            let _ = args.add(e.tenant_id.clone());
            let _ = args.add(e.key_id.clone());
            let _ = args.add(e.endpoint.clone());
            let _ = args.add(e.module.clone());
            let _ = args.add(i64::from(e.status));
            let _ = args.add(e.status_class.clone());
            let _ = args.add(e.error_code.clone());
            let _ = args.add(i64::try_from(e.latency_us).unwrap_or(i64::MAX));
            let _ = args.add(Value::Object(tags).to_string());
            let _ = args.add(e.at_ms);
            let _ = args.add(e.error_detail.clone());
        }
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Deletes what is past its retention; returns the rows removed.
pub async fn retain(
    db: &Db,
    settings: &angage_core::config::UsageSettings,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let days = |d: u64| i64::try_from(d).unwrap_or(i64::MAX / DAY_MS);
    let raw_before = now_ms - days(settings.raw_retention_days) * DAY_MS;
    let minute_before = (now_ms - days(settings.minute_retention_days) * DAY_MS).div_euclid(MINUTE_MS);
    let day_before = (now_ms - days(settings.daily_retention_days) * DAY_MS).div_euclid(DAY_MS);
    let mut removed = 0;
    for (sql, bound) in [
        ("DELETE FROM usage_events WHERE created_at < $1", raw_before),
        ("DELETE FROM usage_minute WHERE minute < $1", minute_before),
        ("DELETE FROM usage_daily WHERE day < $1", day_before),
        ("DELETE FROM usage_latency_daily WHERE day < $1", day_before),
    ] {
        removed += sqlx::query(sql).bind(bound).execute(&db.pool).await?.rows_affected();
    }
    Ok(removed)
}
