//! The change feed: what changed, in order, so every node (and a server beside the CLI) drops
//! what it cached of it. A change is recorded in the transaction that makes it; on PostgreSQL
//! the commit also notifies `angage_changes` (LISTEN/NOTIFY), on SQLite nodes poll the
//! sequence. [`Feed`] hands each node the changes past the last one it saw.

use std::time::Duration;

use crate::db::{Backend, Db, WriteTx};
use angage_core::tenant::TenantId;

/// The PostgreSQL channel a commit notifies.
pub const CHANNEL: &str = "angage_changes";
/// How often SQLite (or PostgreSQL, as a safety net under LISTEN) asks for new changes.
pub const POLL_SQLITE: Duration = Duration::from_millis(250);
pub const POLL_POSTGRES: Duration = Duration::from_secs(5);
/// Changes kept for nodes that were away; older ones are purged.
pub const KEEP_MS: i64 = 3_600_000;

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An API key (revoked, rotated, updated): `subject` is its id.
    Key,
    /// A tenant's settings: `subject` is the tenant id.
    TenantSettings,
    /// A rule: `subject` is its scope (`default` or a tenant id).
    Rule,
    /// A plugin installed or rolled back: `subject` is its name.
    Plugin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::TenantSettings => "tenant_settings",
            Kind::Rule => "rule",
            Kind::Plugin => "plugin",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "key" => Kind::Key,
            "tenant_settings" => Kind::TenantSettings,
            "rule" => Kind::Rule,
            "plugin" => Kind::Plugin,
            _ => return None,
        })
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub tenant_id: Option<String>,
    pub kind: Kind,
    pub subject: String,
}

/// Records a change inside `tx`, as its last statement (the sequence row stays locked until the
/// commit, so changes become visible in sequence order).
pub async fn record(
    tx: &mut WriteTx,
    tenant: Option<&TenantId>,
    kind: Kind,
    subject: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let (seq,): (i64,) = sqlx::query_as("UPDATE change_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO changes (seq, tenant_id, kind, subject, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(seq)
    .bind(tenant.map(|t| t.0.as_str()))
    .bind(kind.as_str())
    .bind(subject)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if tx.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(seq.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(seq)
}

/// [`record`] in a transaction of its own, for a change whose write committed elsewhere.
pub async fn record_alone(
    db: &Db,
    tenant: Option<&TenantId>,
    kind: Kind,
    subject: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let mut tx = db.write_tx().await?;
    let seq = record(&mut tx, tenant, kind, subject, now).await?;
    tx.commit().await?;
    Ok(seq)
}

/// The newest change's sequence number (0 before any).
pub async fn latest(db: &Db) -> Result<i64, sqlx::Error> {
    let (seq,): (i64,) =
        sqlx::query_as("SELECT seq FROM change_seq WHERE id = 1").fetch_one(&mut *db.conn().await?).await?;
    Ok(seq)
}

/// Changes after `seq`, oldest first, at most `limit`.
pub async fn since(db: &Db, seq: i64, limit: i64) -> Result<Vec<Change>, sqlx::Error> {
    let rows: Vec<(i64, Option<String>, String, String)> = sqlx::query_as(
        "SELECT seq, tenant_id, kind, subject FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(seq, tenant_id, kind, subject)| {
            Kind::parse(&kind).map(|kind| Change { seq, tenant_id, kind, subject })
        })
        .collect())
}

/// Forgets changes older than [`KEEP_MS`].
pub async fn purge(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM changes WHERE created_at < $1")
        .bind(now - KEEP_MS)
        .execute(&mut *db.conn().await?)
        .await?;
    Ok(done.rows_affected())
}

/// What a node learns from the feed.
#[derive(Debug)]
pub enum News {
    /// These changes, in order.
    Changes(Vec<Change>),
    /// Changes may have been missed (the feed fell behind its retention, or the listener
    /// reconnected): drop every cache.
    Resync,
}

/// A node's view of the feed: waits for news, from LISTEN/NOTIFY on PostgreSQL or by polling.
pub struct Feed {
    db: Db,
    seen: i64,
    listener: Option<sqlx::postgres::PgListener>,
    listen_failed: bool,
    url: String,
}

/// Changes read per round.
const BATCH: i64 = 1000;

impl Feed {
    /// Starts after the newest change (what is cached now was read after it).
    pub async fn start(db: Db, url: &str) -> Result<Self, sqlx::Error> {
        let seen = latest(&db).await?;
        let mut feed = Self { db, seen, listener: None, listen_failed: false, url: url.to_owned() };
        if feed.db.backend == Backend::Postgres {
            feed.listen().await;
        }
        Ok(feed)
    }

    /// Connects the PostgreSQL listener; true when it is listening.
    async fn listen(&mut self) -> bool {
        let listening = async {
            let mut l = sqlx::postgres::PgListener::connect(&self.url).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match listening.await {
            Ok(l) => {
                self.listener = Some(l);
                true
            }
            Err(e) => {
                if !self.listen_failed {
                    tracing::warn!(error = %e, "cannot LISTEN for changes; polling until it can");
                    self.listen_failed = true;
                }
                false
            }
        }
    }

    /// The next news: waits for a notification (PostgreSQL) or a poll interval, then reads.
    pub async fn next(&mut self) -> News {
        loop {
            let missed = self.wait().await;
            match self.read().await {
                Ok(_) if missed => return News::Resync,
                Ok(News::Changes(c)) if c.is_empty() => {}
                Ok(news) => return news,
                Err(e) => tracing::debug!(error = %e, "cannot read the change feed; will retry"),
            }
        }
    }

    /// Waits for a reason to read; true when notifications may have been missed (the listener
    /// was lost and is back).
    async fn wait(&mut self) -> bool {
        let Some(listener) = self.listener.as_mut() else {
            tokio::time::sleep(POLL_SQLITE).await;
            if self.db.backend == Backend::Postgres && self.listen().await {
                self.listen_failed = false;
                return true;
            }
            return false;
        };
        match tokio::time::timeout(POLL_POSTGRES, listener.try_recv()).await {
            // A notification, or the safety-net poll.
            Ok(Ok(Some(_))) | Err(_) => false,
            // The connection was lost and re-established: what was sent meanwhile is gone.
            Ok(Ok(None)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the change listener failed; polling until it is back");
                self.listener = None;
                true
            }
        }
    }

    async fn read(&mut self) -> Result<News, sqlx::Error> {
        let newest = latest(&self.db).await?;
        if newest <= self.seen {
            return Ok(News::Changes(Vec::new()));
        }
        let changes = since(&self.db, self.seen, BATCH).await?;
        let gap = changes.first().is_none_or(|c| c.seq != self.seen + 1) || changes.len() as i64 == BATCH;
        self.seen = if gap { newest } else { changes.last().map_or(newest, |c| c.seq) };
        Ok(if gap { News::Resync } else { News::Changes(changes) })
    }
}
