//! The `Idempotency-Key` store: the first response to a POST, replayed to retries. A claim is
//! a lease scoped to the API key that made it: a request that never finished (the server
//! stopped mid-way) leaves a claim another retry can take once the lease has passed, and one
//! key never sees the answer stored for another.

use angage_core::tenant::TenantId;

use crate::db::Db;

/// How long a key is remembered.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a claim is held for a request that is running; a claim older than this whose
/// request never finished can be taken again.
pub const LEASE_MS: i64 = 30_000;

/// Whose key it is: the tenant, the API key that sent it, and the key itself.
#[derive(Debug, Clone)]
pub struct Scope {
    pub tenant: TenantId,
    pub key_id: String,
    pub idem_key: String,
}

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use (or a lease left behind): run the request, then [`complete`] or [`release`].
    Fresh,
    /// A retry of a finished request: answer with the stored response.
    Replay { status: u16, location: Option<String>, body: String },
    /// The key was used with another request body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

pub async fn claim(db: &Db, scope: &Scope, hash: &str, now: i64) -> Result<Claim, sqlx::Error> {
    let mut conn = db.conn().await?;
    let pk = "tenant_id = $1 AND key_id = $2 AND idem_key = $3";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM idempotency_claims WHERE {pk} AND created_at < $4"
    )))
    .bind(&scope.tenant.0)
    .bind(&scope.key_id)
    .bind(&scope.idem_key)
    .bind(now - RETENTION_MS)
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_claims (tenant_id, key_id, idem_key, request_hash, status, created_at, lease_until) \
         VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&scope.tenant.0)
    .bind(&scope.key_id)
    .bind(&scope.idem_key)
    .bind(hash)
    .bind(now)
    .bind(now + LEASE_MS)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    // A claim whose request never finished, past its lease: take it over (one taker wins).
    let taken = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE idempotency_claims SET request_hash = $4, created_at = $5, lease_until = $6 \
         WHERE {pk} AND status = 0 AND lease_until < $5"
    )))
    .bind(&scope.tenant.0)
    .bind(&scope.key_id)
    .bind(&scope.idem_key)
    .bind(hash)
    .bind(now)
    .bind(now + LEASE_MS)
    .execute(&mut *conn)
    .await?;
    if taken.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row: Option<(String, i64, Option<String>, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT request_hash, status, location, body FROM idempotency_claims WHERE {pk}"),
    ))
    .bind(&scope.tenant.0)
    .bind(&scope.key_id)
    .bind(&scope.idem_key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        None | Some((_, 0, _, _)) => Claim::InProgress,
        Some((stored, _, _, _)) if stored != hash => Claim::Mismatch,
        Some((_, status, location, body)) => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            location,
            body: body.unwrap_or_default(),
        },
    })
}

pub async fn complete(
    db: &Db,
    scope: &Scope,
    status: u16,
    location: Option<&str>,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_claims SET status = $1, location = $2, body = $3 \
         WHERE tenant_id = $4 AND key_id = $5 AND idem_key = $6",
    )
    .bind(i64::from(status))
    .bind(location)
    .bind(body)
    .bind(&scope.tenant.0)
    .bind(&scope.key_id)
    .bind(&scope.idem_key)
    .execute(&mut *db.conn().await?)
    .await?;
    Ok(())
}

/// Forgets a claim whose request did not produce a result worth replaying.
pub async fn release(db: &Db, scope: &Scope) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_claims WHERE tenant_id = $1 AND key_id = $2 AND idem_key = $3 AND status = 0")
        .bind(&scope.tenant.0)
        .bind(&scope.key_id)
        .bind(&scope.idem_key)
        .execute(&mut *db.conn().await?)
        .await?;
    Ok(())
}

/// Removes keys older than the retention period; returns how many.
pub async fn purge(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM idempotency_claims WHERE created_at < $1")
        .bind(now - RETENTION_MS)
        .execute(&mut *db.conn().await?)
        .await?;
    Ok(done.rows_affected())
}
