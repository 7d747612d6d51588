//! Tenants, their settings and their audit log.

pub mod audit;
pub mod cache;
pub mod settings;

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::Db;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;

/// A tenant as admins see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("a tenant slug is 2 to 40 lowercase letters, digits or '-', starting with a letter")]
    BadSlug,
    #[error("tenant `{0}` already exists")]
    Exists(String),
    #[error("no tenant `{0}`")]
    Unknown(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Whether `slug` is a valid tenant slug.
pub fn is_slug(slug: &str) -> bool {
    (2..=40).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Creates a tenant with the seeded default settings, in one transaction.
pub async fn create(db: &Db, slug: &str, name: &str, now: i64) -> Result<Tenant, TenantError> {
    if !is_slug(slug) {
        return Err(TenantError::BadSlug);
    }
    let mut tx = db.write_tx().await?;
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT id FROM tenants WHERE slug = $1").bind(slug).fetch_optional(&mut *tx).await?;
    if exists.is_some() {
        return Err(TenantError::Exists(slug.to_owned()));
    }
    let tenant = Tenant { id: new_id("ten"), slug: slug.to_owned(), name: name.to_owned() };
    sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&tenant.id)
        .bind(&tenant.slug)
        .bind(&tenant.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    settings::seed(&mut tx, &TenantId(tenant.id.clone()), now).await?;
    tx.commit().await?;
    Ok(tenant)
}

pub async fn by_slug(db: &Db, slug: &str) -> Result<Tenant, TenantError> {
    sqlx::query_as("SELECT id, slug, name FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&mut *db.conn().await?)
        .await?
        .ok_or_else(|| TenantError::Unknown(slug.to_owned()))
}

pub async fn by_id(db: &Db, id: &str) -> Result<Tenant, TenantError> {
    sqlx::query_as("SELECT id, slug, name FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *db.conn().await?)
        .await?
        .ok_or_else(|| TenantError::Unknown(id.to_owned()))
}
