//! The `Idempotency-Key` store: the first response to a POST, replayed to retries.

use crate::db::Db;

use angage_core::tenant::TenantId;

/// How long a key is remembered.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: run the request, then [`complete`] or [`release`].
    Fresh,
    /// A retry of a finished request: answer with the stored response.
    Replay { status: u16, location: Option<String>, body: String },
    /// The key was used with another request body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

pub async fn claim(
    db: &Db,
    tenant: &TenantId,
    key: &str,
    hash: &str,
    now: i64,
) -> Result<Claim, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idem_key = $2 AND created_at < $3")
        .bind(&tenant.0)
        .bind(key)
        .bind(now - RETENTION_MS)
        .execute(&db.pool)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, idem_key, request_hash, status, created_at) VALUES ($1, $2, $3, 0, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&tenant.0)
    .bind(key)
    .bind(hash)
    .bind(now)
    .execute(&db.pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row: Option<(String, i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT request_hash, status, location, body FROM idempotency_keys WHERE tenant_id = $1 AND idem_key = $2",
    )
    .bind(&tenant.0)
    .bind(key)
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        None => Claim::InProgress,
        Some((stored, _, _, _)) if stored != hash => Claim::Mismatch,
        Some((_, 0, _, _)) => Claim::InProgress,
        Some((_, status, location, body)) => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            location,
            body: body.unwrap_or_default(),
        },
    })
}

pub async fn complete(
    db: &Db,
    tenant: &TenantId,
    key: &str,
    status: u16,
    location: Option<&str>,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET status = $1, location = $2, body = $3 WHERE tenant_id = $4 AND idem_key = $5")
        .bind(i64::from(status))
        .bind(location)
        .bind(body)
        .bind(&tenant.0)
        .bind(key)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Forgets a claim whose request did not produce a result worth replaying.
pub async fn release(db: &Db, tenant: &TenantId, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idem_key = $2 AND status = 0")
        .bind(&tenant.0)
        .bind(key)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Removes keys older than the retention period; returns how many.
pub async fn purge(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now - RETENTION_MS)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}
