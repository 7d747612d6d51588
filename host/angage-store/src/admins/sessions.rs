//! Console sessions: an HttpOnly cookie holds a random token; the store keeps its digest and the
//! session's CSRF token.

use crate::db::Db;
use crate::keys::Pepper;
use angage_core::ids::random_base62;
use angage_core::tenant::TenantId;

use super::{AdminCtx, Role};

pub const COOKIE: &str = "angage_session";
/// The cookie's name when served over HTTPS: `__Host-` makes the browser refuse one set by a
/// sibling host or over plain HTTP, and one scoped to a path.
pub const SECURE_COOKIE: &str = "__Host-angage_session";

/// A new session: the cookie value and the CSRF token are shown to the browser once.
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

pub async fn create(
    db: &Db,
    pepper: &Pepper,
    admin: &AdminCtx,
    ttl_ms: i64,
    now: i64,
) -> Result<NewSession, sqlx::Error> {
    let token = random_base62(43);
    let csrf_token = random_base62(32);
    let expires_at = now + ttl_ms;
    sqlx::query("INSERT INTO admin_sessions (digest, admin_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(pepper.digest_str(&token))
        .bind(&admin.admin_id)
        .bind(&csrf_token)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *db.conn().await?)
        .await?;
    Ok(NewSession { token, csrf_token, expires_at })
}

/// The admin and CSRF token of a live session; none once the admin is disabled.
pub async fn find(
    db: &Db,
    pepper: &Pepper,
    token: &str,
    now: i64,
) -> Result<Option<(AdminCtx, String)>, sqlx::Error> {
    let row: Option<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT a.id, a.email, a.tenant_id, a.role, s.csrf_token FROM admin_sessions s \
         JOIN admin_users a ON a.id = s.admin_id \
         WHERE s.digest = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL",
    )
    .bind(pepper.digest_str(token))
    .bind(now)
    .fetch_optional(&mut *db.conn().await?)
    .await?;
    Ok(row.map(|(admin_id, email, tenant, role, csrf)| {
        (AdminCtx { admin_id, email, tenant: TenantId(tenant), role: Role::stored(&role) }, csrf)
    }))
}

pub async fn delete(db: &Db, pepper: &Pepper, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE digest = $1")
        .bind(pepper.digest_str(token))
        .execute(&mut *db.conn().await?)
        .await?;
    Ok(())
}
