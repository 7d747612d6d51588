//! The usage pipeline: events go into a bounded in-memory buffer and are written in batches;
//! a full buffer drops the event and counts the loss (never silent, never blocking a request).
//! Flushed on graceful shutdown. Each batch also updates the per-minute and per-day rollups and
//! each tenant's daily latency histogram the dashboard reads (`query.rs`). Before an event goes
//! to the writer it is spooled to a local file (`spool.rs`), so a crash loses only the last
//! few milliseconds of events: a start writes what the spool holds beyond what the store has.

pub mod histogram;
pub mod query;
pub mod requests;
mod spool;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::Arguments;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Backend, Db};
use angage_core::ids::new_id;

pub use spool::SpoolError;

/// The name of the node whose usage spool is `spool_dir` (made on first use): also how the
/// node is known in `angage plugins list`.
pub fn node_id(spool_dir: &std::path::Path) -> Result<String, SpoolError> {
    spool::Spool::node(spool_dir)
}

/// One finished `/v1` request, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// What the request log shows of the request.
    #[serde(default)]
    pub line: requests::RequestLine,
    /// Whether the raw event is kept (the request log); the rollups count every event.
    #[serde(default = "kept")]
    pub keep_raw: bool,
}

/// Events spooled before the request log kept their raw rows all.
fn kept() -> bool {
    true
}

/// What a usage record may hold: its fields come from clients and plugins, and are kept for
/// the retention period, so each is bounded and NUL-free before it is stored.
const MAX_FIELD: usize = 200;
const MAX_DETAIL: usize = 500;
const MAX_TAGS: usize = 16;
const MAX_TAG_VALUE: usize = 256;
/// A latency longer than a day is recorded as a day (sums must not overflow).
const MAX_LATENCY_US: u64 = 86_400_000_000;

impl UsageRecord {
    /// This record with every field within bounds.
    pub fn bounded(mut self) -> Self {
        let clip = |s: &mut String, max: usize| *s = bounded_text(s, max);
        let clip_opt = |s: &mut Option<String>, max: usize| {
            if let Some(v) = s.as_mut() {
                *v = bounded_text(v, max);
            }
        };
        clip_opt(&mut self.tenant_id, 64);
        clip_opt(&mut self.key_id, 64);
        clip(&mut self.endpoint, MAX_FIELD);
        clip(&mut self.module, 64);
        clip(&mut self.status_class, 8);
        clip_opt(&mut self.error_code, 64);
        clip_opt(&mut self.error_detail, MAX_DETAIL);
        self.latency_us = self.latency_us.min(MAX_LATENCY_US);
        self.tags.truncate(MAX_TAGS);
        for (k, v) in &mut self.tags {
            clip(k, 64);
            clip(v, MAX_TAG_VALUE);
        }
        self.line = self.line.bounded();
        self
    }
}

/// At most `max` characters, NUL and other control characters shown as `\u{fffd}`.
pub(crate) fn bounded_text(s: &str, max: usize) -> String {
    if s.len() <= max && !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

enum Msg {
    Event(Box<UsageRecord>),
    Flush(oneshot::Sender<()>),
}

/// What the spool hands the writer: events with their spool sequence numbers.
enum Spooled {
    Event(u64, Box<UsageRecord>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("writing the spooled usage events: {0}")]
    Db(#[from] sqlx::Error),
}

/// The sending side, shared by request handlers.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Msg>,
    stats: Arc<Stats>,
    in_flight: Arc<InFlight>,
    sample: Arc<requests::Sample>,
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

fn take(m: Spooled, batch: &mut Vec<UsageRecord>, last: &mut u64, waiters: &mut Vec<oneshot::Sender<()>>) {
    match m {
        Spooled::Event(seq, e) => {
            batch.push(*e);
            *last = seq;
        }
        Spooled::Flush(w) => waiters.push(w),
    }
}

/// Events taken from the buffer at most at once by the spool.
const SPOOL_GROUP: usize = 4096;
/// The spool syncs at most this often (a flush syncs at once): each sync costs a disk flush, and
/// a crash then loses at most about this long of events.
const SPOOL_WINDOW: Duration = Duration::from_millis(20);

impl UsageSink {
    /// Writes what the spool in `spool_dir` holds beyond what the store has (a crash left it),
    /// then starts the spool and writer tasks.
    /// `success_sample_rate`: the share of successes whose raw event is kept when the tenant
    /// does not log every request.
    pub async fn start(
        db: Db,
        capacity: usize,
        spool_dir: &Path,
        success_sample_rate: f64,
    ) -> Result<Self, UsageError> {
        let node = spool::Spool::node(spool_dir)?;
        let mark: Option<(i64,)> = sqlx::query_as("SELECT seq FROM usage_spool_marks WHERE node = $1")
            .bind(&node)
            .fetch_optional(&mut *db.conn().await?)
            .await?;
        let mark = mark.map_or(0, |(m,)| u64::try_from(m).unwrap_or(0));
        let (spool, recovered) = spool::Spool::open(spool_dir, mark)?;
        if !recovered.events.is_empty() {
            tracing::info!(
                events = recovered.events.len(),
                "writing usage events the spool kept through a stop"
            );
        }
        for chunk in recovered.events.chunks(BATCH) {
            let last = chunk.last().map_or(mark, |(seq, _)| *seq);
            let batch: Vec<UsageRecord> = chunk.iter().map(|(_, e)| e.clone()).collect();
            write(&db, &batch, Some((&spool.node, last))).await?;
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (spooled_tx, spooled_rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(Stats::default());
        let committed = spool.committed.clone();
        let node = spool.node.clone();
        tokio::spawn(spooler(spool, rx, spooled_tx));
        tokio::spawn(writer(db, spooled_rx, stats.clone(), node, committed));
        let sample = Arc::new(requests::Sample::new(success_sample_rate));
        Ok(Self { tx, stats, in_flight: Arc::default(), sample })
    }

    /// Announces an event that will be recorded shortly.
    pub fn ticket(&self) -> Ticket {
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        Ticket(self.in_flight.clone())
    }

    /// Queues an event; when the buffer is full the event is dropped and counted. An event not
    /// kept for the request log may still be kept as part of the successes' sample.
    pub fn record(&self, mut event: UsageRecord) {
        if !event.keep_raw {
            event.keep_raw = self.sample.take();
        }
        match self.tx.try_send(Msg::Event(Box::new(event.bounded()))) {
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

/// Numbers and syncs each group of events to the spool, then passes them on in order.
async fn spooler(mut spool: spool::Spool, mut rx: mpsc::Receiver<Msg>, tx: mpsc::Sender<Spooled>) {
    let mut group = Vec::with_capacity(SPOOL_GROUP);
    let mut last_sync = tokio::time::Instant::now();
    while rx.recv_many(&mut group, SPOOL_GROUP).await > 0 {
        // Gather until the window since the last sync is over, unless a flush is waiting.
        let until = last_sync + SPOOL_WINDOW;
        while group.len() < SPOOL_GROUP && !group.iter().any(|m| matches!(m, Msg::Flush(_))) {
            let room = SPOOL_GROUP - group.len();
            match tokio::time::timeout_at(until, rx.recv_many(&mut group, room)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let mut out = Vec::with_capacity(group.len());
        for m in group.drain(..) {
            out.push(match m {
                Msg::Event(e) => Spooled::Event(spool.append(&e), e),
                Msg::Flush(w) => Spooled::Flush(w),
            });
        }
        // The file work blocks: off the runtime's threads, one hop a group.
        let (back, synced) = match tokio::task::spawn_blocking(move || {
            let r = spool.sync();
            (spool, r)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "the usage spool stopped; events are no longer kept through a crash");
                break;
            }
        };
        spool = back;
        last_sync = tokio::time::Instant::now();
        if let Err(e) = synced {
            metrics::counter!("angage_usage_spool_failures_total").increment(1);
            tracing::error!(error = %e, "cannot sync the usage spool; these events survive only a clean stop");
        }
        for m in out {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    }
}

async fn writer(
    db: Db,
    mut rx: mpsc::Receiver<Spooled>,
    stats: Arc<Stats>,
    node: String,
    committed: Arc<AtomicU64>,
) {
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(BATCH);
    let mut last = 0u64;
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
        let linger = matches!(first, Some(Spooled::Event(..))).then(|| tokio::time::Instant::now() + LINGER);
        if let Some(m) = first {
            take(m, &mut batch, &mut last, &mut waiters);
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
            take(m, &mut batch, &mut last, &mut waiters);
        }
        if !batch.is_empty() {
            match write_bisecting(&db, &batch, (&node, last), &stats).await {
                Ok(()) => {
                    committed.store(last, Ordering::Release);
                    batch.clear();
                }
                Err((e, settled)) => {
                    batch.drain(..settled);
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
    if !batch.is_empty() && write_bisecting(&db, &batch, (&node, last), &stats).await.is_ok() {
        committed.store(last, Ordering::Release);
    }
}

/// Writes a batch; when the database refuses it (not merely unreachable), the batch is halved
/// until the refused events stand alone, and those are dropped and counted: one poisoned
/// event never stops everyone's analytics. `Err` only while the database cannot be reached,
/// with how many of the batch's first events are settled (written or dropped) by then.
async fn write_bisecting(
    db: &Db,
    batch: &[UsageRecord],
    mark: (&str, u64),
    stats: &Stats,
) -> Result<(), (sqlx::Error, usize)> {
    // Halves to try in order (a stack, left on top), so what is settled is always a prefix;
    // the spool's mark goes with the last half.
    let mut pending: Vec<(&[UsageRecord], bool)> = vec![(batch, true)];
    let mut settled = 0;
    while let Some((part, with_mark)) = pending.pop() {
        let m = with_mark.then_some(mark);
        match write(db, part, m).await {
            Ok(()) => {
                stats.written.fetch_add(part.len() as u64, Ordering::Relaxed);
                settled += part.len();
            }
            Err(e) if crate::db::is_unavailable(&e) => return Err((e, settled)),
            Err(e) if part.len() == 1 => {
                tracing::error!(error = %e, "a usage event the database refuses was dropped");
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("angage_usage_dropped_total").increment(1);
                metrics::counter!("angage_usage_refused_total").increment(1);
                settled += 1;
                if with_mark {
                    write(db, &[], m).await.map_err(|e| (e, settled))?;
                }
            }
            Err(_) => {
                let (left, right) = part.split_at(part.len() / 2);
                pending.push((right, with_mark));
                pending.push((left, false));
            }
        }
    }
    Ok(())
}

/// Columns of a raw event row.
const COLUMNS: usize = 18;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// One rollup row's key: tenant, bucket (minute or day), key, endpoint, status, error code.
type RollupKey = (String, i64, String, String, i64, String);

/// Writes a batch: raw events and rollups, and (`spooled`) how far this node's spool is now
/// in the store, all in one transaction.
async fn write(db: &Db, batch: &[UsageRecord], spooled: Option<(&str, u64)>) -> Result<(), sqlx::Error> {
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
    // Raw events, many rows per statement (18 parameters a row keeps well under the limits).
    // A request no tenant's key named (no key, a made-up one) is counted, not kept: it would
    // belong to nobody's dashboard and only fill the table.
    // Only the events the request log keeps (every one of a tenant that logs all requests,
    // else errors and the successes' sample) are written raw; the rollups above count all.
    let attributed = batch.iter().filter(|e| e.tenant_id.is_some()).count();
    let unattributed = batch.len() - attributed;
    if unattributed > 0 {
        metrics::counter!("angage_usage_unattributed_total").increment(unattributed as u64);
    }
    let kept: Vec<&UsageRecord> = batch.iter().filter(|e| e.tenant_id.is_some() && e.keep_raw).collect();
    for chunk in kept.chunks(60) {
        let mut sql = String::from(
            "INSERT INTO usage_events (id, tenant_id, key_id, endpoint, module, status, status_class, error_code, \
             latency_us, tags, created_at, error_detail, method, path, client_ip, user_agent, request_id, client_id) \
             VALUES ",
        );
        let mut args = sqlx::any::AnyArguments::default();
        for (i, e) in chunk.iter().enumerate() {
            let base = i * COLUMNS;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for p in 1..=COLUMNS {
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
            let _ = args.add(e.line.method.clone());
            let _ = args.add(e.line.path.clone());
            let _ = args.add(e.line.client_ip.clone());
            let _ = args.add(e.line.user_agent.clone());
            let _ = args.add(e.line.request_id.clone());
            let _ = args.add(e.line.client_id.clone());
        }
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args).execute(&mut *tx).await?;
    }
    if let Some((node, seq)) = spooled {
        sqlx::query(
            "INSERT INTO usage_spool_marks (node, seq) VALUES ($1, $2) \
             ON CONFLICT (node) DO UPDATE SET seq = excluded.seq",
        )
        .bind(node)
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Deletes what is past its retention; returns the rows removed.
pub async fn retain(
    db: &Db,
    settings: &angage_core::config::UsageSettings,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    // However many days a setting names, the cut-off is never later than the epoch (a huge
    // number must keep everything, not wrap around and delete everything).
    let before =
        |d: u64| now_ms.saturating_sub(i64::try_from(d).unwrap_or(i64::MAX).saturating_mul(DAY_MS)).max(0);
    let raw_before = before(settings.raw_retention_days);
    let minute_before = before(settings.minute_retention_days).div_euclid(MINUTE_MS);
    let day_before = before(settings.daily_retention_days).div_euclid(DAY_MS);
    let mut removed = 0;
    for (sql, bound) in [
        ("DELETE FROM usage_events WHERE created_at < $1", raw_before),
        ("DELETE FROM usage_minute WHERE minute < $1", minute_before),
        ("DELETE FROM usage_daily WHERE day < $1", day_before),
        ("DELETE FROM usage_latency_daily WHERE day < $1", day_before),
    ] {
        removed += sqlx::query(sql).bind(bound).execute(&mut *db.conn().await?).await?.rows_affected();
    }
    Ok(removed)
}
