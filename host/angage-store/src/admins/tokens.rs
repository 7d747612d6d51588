//! Admin tokens for automation (`Authorization: Bearer aat_...`): shown once, stored as digests,
//! always expiring, each with a role that is never above its admin's (a token acts with the
//! lower of the two, so demoting or disabling an admin reaches their tokens at once).

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::Db;
use crate::keys::Pepper;
use angage_core::clock::rfc3339;
use angage_core::ids::{new_id, random_base62};
use angage_core::tenant::TenantId;

use super::{AdminCtx, Role};

pub const PREFIX: &str = "aat_";

/// An admin token as lists show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    #[schema(example = "aat_Xy12...")]
    pub prefix: String,
    /// The admin who minted it.
    pub admin_id: String,
    /// What it may do, at most its admin's role.
    pub role: Role,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    /// When it last authenticated a request (to the minute).
    pub last_used_at: Option<String>,
}

/// A token just minted: its secret is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub view: TokenView,
    pub token: String,
}

/// Days a token lives when its maker does not say, and at most.
pub const DEFAULT_DAYS: i64 = 90;
pub const MAX_DAYS: i64 = 365;

/// How stale `last_used_at` may get before a use writes it again.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// Mints a token of `admin` acting as `role` (the caller checks it is not above theirs).
pub async fn create(
    db: &Db,
    pepper: &Pepper,
    admin: &AdminCtx,
    name: &str,
    role: Role,
    expires_in_days: i64,
    now: i64,
) -> Result<IssuedToken, sqlx::Error> {
    let token = format!("{PREFIX}{}", random_base62(40));
    let id = new_id("tok");
    let expires_at = now + expires_in_days.clamp(1, MAX_DAYS) * 86_400_000;
    let prefix = format!("{}...", &token[..8]);
    sqlx::query(
        "INSERT INTO admin_tokens (id, admin_id, tenant_id, name, digest, display_prefix, role, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(&admin.admin_id)
    .bind(&admin.tenant.0)
    .bind(name)
    .bind(pepper.digest_str(&token))
    .bind(&prefix)
    .bind(role.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(&mut *db.conn().await?)
    .await?;
    let view = TokenView {
        id,
        name: name.to_owned(),
        prefix,
        admin_id: admin.admin_id.clone(),
        role,
        created_at: rfc3339(now),
        expires_at: rfc3339(expires_at),
        revoked_at: None,
        last_used_at: None,
    };
    Ok(IssuedToken { view, token })
}

/// The admin a live token acts as, with the lower of the token's and the admin's role; none
/// when revoked, expired, or its admin is disabled. Records the use (at most once a minute).
pub async fn find(db: &Db, pepper: &Pepper, token: &str, now: i64) -> Result<Option<AdminCtx>, sqlx::Error> {
    let row: Option<Live> = sqlx::query_as(
        "SELECT a.id AS admin_id, a.email, t.tenant_id, a.role AS admin_role, t.role AS token_role, t.id, \
         t.last_used_at FROM admin_tokens t \
         JOIN admin_users a ON a.id = t.admin_id \
         WHERE t.digest = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND a.disabled_at IS NULL",
    )
    .bind(pepper.digest_str(token))
    .bind(now)
    .fetch_optional(&mut *db.conn().await?)
    .await?;
    let Some(live) = row else { return Ok(None) };
    if live.last_used_at.is_none_or(|at| now - at >= LAST_USED_EVERY_MS) {
        sqlx::query("UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&live.id)
            .execute(&mut *db.conn().await?)
            .await?;
    }
    let role = Role::stored(&live.admin_role).min(Role::stored(&live.token_role));
    Ok(Some(AdminCtx { admin_id: live.admin_id, email: live.email, tenant: TenantId(live.tenant_id), role }))
}

/// A live token joined to its admin.
#[derive(sqlx::FromRow)]
struct Live {
    admin_id: String,
    email: String,
    tenant_id: String,
    admin_role: String,
    token_role: String,
    id: String,
    last_used_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    display_prefix: String,
    admin_id: String,
    role: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<TokenView>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, display_prefix, admin_id, role, created_at, expires_at, revoked_at, last_used_at \
         FROM admin_tokens WHERE tenant_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(&tenant.0)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TokenView {
            id: r.id,
            name: r.name,
            prefix: r.display_prefix,
            admin_id: r.admin_id,
            role: Role::stored(&r.role),
            created_at: rfc3339(r.created_at),
            expires_at: rfc3339(r.expires_at),
            revoked_at: r.revoked_at.map(rfc3339),
            last_used_at: r.last_used_at.map(rfc3339),
        })
        .collect())
}

/// Revokes a token of the tenant (with `owned_by`, only that admin's); false when there is no
/// such token.
pub async fn revoke(
    db: &Db,
    tenant: &TenantId,
    id: &str,
    owned_by: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE admin_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL \
         AND ($4 = '' OR admin_id = $4)",
    )
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .bind(owned_by.unwrap_or(""))
    .execute(&mut *db.conn().await?)
    .await?;
    Ok(done.rows_affected() == 1)
}
