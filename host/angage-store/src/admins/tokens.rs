//! Admin tokens for automation (`Authorization: Bearer aat_...`): shown once, stored as digests.

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::Db;
use crate::keys::Pepper;
use angage_core::clock::rfc3339;
use angage_core::ids::{new_id, random_base62};
use angage_core::tenant::TenantId;

use super::AdminCtx;

pub const PREFIX: &str = "aat_";

/// An admin token as lists show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    #[schema(example = "aat_Xy12...")]
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A token just minted: its secret is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub view: TokenView,
    pub token: String,
}

pub async fn create(
    db: &Db,
    pepper: &Pepper,
    admin: &AdminCtx,
    name: &str,
    expires_in_days: Option<i64>,
    now: i64,
) -> Result<IssuedToken, sqlx::Error> {
    let token = format!("{PREFIX}{}", random_base62(40));
    let id = new_id("tok");
    let expires_at = expires_in_days.map(|d| now + d * 86_400_000);
    let prefix = format!("{}...", &token[..8]);
    sqlx::query(
        "INSERT INTO admin_tokens (id, admin_id, tenant_id, name, digest, display_prefix, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&admin.admin_id)
    .bind(&admin.tenant.0)
    .bind(name)
    .bind(pepper.digest_str(&token))
    .bind(&prefix)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *db.conn().await?)
    .await?;
    let view = TokenView {
        id,
        name: name.to_owned(),
        prefix,
        created_at: rfc3339(now),
        expires_at: expires_at.map(rfc3339),
        revoked_at: None,
    };
    Ok(IssuedToken { view, token })
}

pub async fn find(db: &Db, pepper: &Pepper, token: &str, now: i64) -> Result<Option<AdminCtx>, sqlx::Error> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT a.id, a.email, t.tenant_id FROM admin_tokens t JOIN admin_users a ON a.id = t.admin_id \
         WHERE t.digest = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)",
    )
    .bind(pepper.digest_str(token))
    .bind(now)
    .fetch_optional(&mut *db.conn().await?)
    .await?;
    Ok(row.map(|(admin_id, email, tenant)| AdminCtx { admin_id, email, tenant: TenantId(tenant) }))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    display_prefix: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<TokenView>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, display_prefix, created_at, expires_at, revoked_at FROM admin_tokens WHERE tenant_id = $1 ORDER BY created_at DESC, id",
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
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            revoked_at: r.revoked_at.map(rfc3339),
        })
        .collect())
}

/// Revokes a token of the tenant; false when there is no such token.
pub async fn revoke(db: &Db, tenant: &TenantId, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE admin_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .execute(&mut *db.conn().await?)
    .await?;
    Ok(done.rows_affected() == 1)
}
