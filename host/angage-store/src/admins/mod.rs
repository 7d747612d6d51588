//! Admin users (argon2id passwords), their console sessions, automation tokens and the login
//! throttle.

pub mod sessions;
pub mod throttle;
pub mod tokens;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::Db;
use angage_core::clock::rfc3339;
use angage_core::config::AdminSettings;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;
use angage_core::validate::is_email;

/// An admin as the admin API shows one (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Admin {
    #[schema(example = "adm_abc123def456")]
    pub id: String,
    #[schema(example = "admin@demo.local")]
    pub email: String,
    pub name: Option<String>,
    pub created_at: String,
}

/// The admin a request acts as.
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub admin_id: String,
    pub email: String,
    pub tenant: TenantId,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("`{0}` is not a valid e-mail address")]
    BadEmail(String),
    #[error("an admin with e-mail {0} already exists")]
    Exists(String),
    #[error("a password has at least 12 characters")]
    WeakPassword,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// argon2id with the configured cost.
pub fn hasher(cfg: &AdminSettings) -> Result<Argon2<'static>, AdminError> {
    let params = Params::new(cfg.argon2_memory_kib, cfg.argon2_iterations, cfg.argon2_parallelism, None)
        .map_err(|e| AdminError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string for `password`.
pub fn hash_password(cfg: &AdminSettings, password: &str) -> Result<String, AdminError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher(cfg)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Hash(e.to_string()))
}

/// Checks a password against a PHC string (parameters come from the string itself).
pub fn verify_password(cfg: &AdminSettings, password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    hasher(cfg).is_ok_and(|h| h.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Creates an admin of `tenant`.
pub async fn create(
    db: &Db,
    cfg: &AdminSettings,
    tenant: &TenantId,
    email: &str,
    password: &str,
    now: i64,
) -> Result<Admin, AdminError> {
    let email = email.trim().to_lowercase();
    if !is_email(&email) {
        return Err(AdminError::BadEmail(email));
    }
    if password.chars().count() < 12 {
        return Err(AdminError::WeakPassword);
    }
    let hash = hash_password(cfg, password)?;
    let mut tx = db.write_tx().await?;
    let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM admin_users WHERE email = $1")
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(AdminError::Exists(email));
    }
    let id = new_id("adm");
    sqlx::query("INSERT INTO admin_users (id, tenant_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(&tenant.0)
        .bind(&email)
        .bind(&hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    crate::tenants::audit::record(
        &mut tx,
        tenant,
        "system",
        "admin.created",
        ("admin", &id),
        &serde_json::json!({"email": email}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Admin { id, email, name: None, created_at: rfc3339(now) })
}

pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<Admin>, AdminError> {
    let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT id, email, name, created_at FROM admin_users WHERE tenant_id = $1 ORDER BY created_at, id",
    )
    .bind(&tenant.0)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, email, name, at)| Admin { id, email, name, created_at: rfc3339(at) })
        .collect())
}

/// The admin with this e-mail and password, if both match. Always does the work of one hash
/// check, so response time does not reveal whether the e-mail exists.
pub async fn authenticate(
    db: &Db,
    cfg: &AdminSettings,
    email: &str,
    password: &str,
) -> Result<Option<AdminCtx>, AdminError> {
    let email = email.trim().to_lowercase();
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT id, tenant_id, password_hash FROM admin_users WHERE email = $1")
            .bind(&email)
            .fetch_optional(&mut *db.conn().await?)
            .await?;
    let phc = row.as_ref().map(|r| r.2.clone()).unwrap_or_else(|| DUMMY_HASH.to_owned());
    let cfg = cfg.clone();
    let password = password.to_owned();
    // argon2 is deliberately slow: keep it off the async workers.
    let ok =
        tokio::task::spawn_blocking(move || verify_password(&cfg, &password, &phc)).await.unwrap_or(false);
    Ok(match row {
        Some((admin_id, tenant, _)) if ok => Some(AdminCtx { admin_id, email, tenant: TenantId(tenant) }),
        _ => None,
    })
}

/// A valid argon2id hash of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2OQBw7nAAazVqkSmXbVxyl9JvBsb9bKzLGGV4Ph4DYk";
