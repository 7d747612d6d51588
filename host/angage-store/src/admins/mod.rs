//! Admin users (argon2id passwords, a role each), their console sessions, automation tokens and
//! the login throttle.

pub mod manage;
mod role;
pub mod sessions;
pub mod throttle;
pub mod tokens;

pub use role::Role;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{Db, is_unique_violation};
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
    pub role: Role,
    /// Set while the admin is disabled: they cannot log in and their tokens do not work.
    pub disabled_at: Option<String>,
    pub created_at: String,
}

/// The admin a request acts as, with the role it acts with (a token's may be lower).
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub admin_id: String,
    pub email: String,
    pub tenant: TenantId,
    pub role: Role,
}

/// A new admin: a password of at least 12 characters and a role.
pub struct NewAdmin<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("`{0}` is not a valid e-mail address")]
    BadEmail(String),
    #[error("an admin with e-mail {0} already exists in this tenant")]
    Exists(String),
    #[error("a password has at least 12 characters")]
    WeakPassword,
    #[error("no admin {0} in this tenant")]
    NotFound(String),
    #[error("the tenant's last owner cannot be demoted, disabled or removed; make another owner first")]
    LastOwner,
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

/// A password long enough, hashed off the async workers.
pub(crate) async fn new_hash(cfg: &AdminSettings, password: &str) -> Result<String, AdminError> {
    if password.chars().count() < 12 {
        return Err(AdminError::WeakPassword);
    }
    let (cfg, password) = (cfg.clone(), password.to_owned());
    tokio::task::spawn_blocking(move || hash_password(&cfg, &password))
        .await
        .map_err(|e| AdminError::Hash(e.to_string()))?
}

/// Creates an admin of `tenant`; `actor` (an admin's e-mail, `cli` or `system`) is audited.
pub async fn create(
    db: &Db,
    cfg: &AdminSettings,
    tenant: &TenantId,
    new: &NewAdmin<'_>,
    actor: &str,
    now: i64,
) -> Result<Admin, AdminError> {
    let email = new.email.trim().to_lowercase();
    if !is_email(&email) {
        return Err(AdminError::BadEmail(email));
    }
    let hash = new_hash(cfg, new.password).await?;
    let mut tx = db.write_tx().await?;
    let id = new_id("adm");
    let inserted = sqlx::query(
        "INSERT INTO admin_users (id, tenant_id, email, password_hash, created_at, role) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(&email)
    .bind(&hash)
    .bind(now)
    .bind(new.role.as_str())
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Err(AdminError::Exists(email)),
        other => other?,
    };
    crate::tenants::audit::record(
        &mut tx,
        tenant,
        actor,
        "admin.created",
        ("admin", &id),
        &serde_json::json!({"email": email, "role": new.role}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Admin { id, email, name: None, role: new.role, disabled_at: None, created_at: rfc3339(now) })
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    email: String,
    name: Option<String>,
    role: String,
    disabled_at: Option<i64>,
    created_at: i64,
}

impl From<Row> for Admin {
    fn from(r: Row) -> Self {
        Admin {
            id: r.id,
            email: r.email,
            name: r.name,
            role: Role::stored(&r.role),
            disabled_at: r.disabled_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
        }
    }
}

pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<Admin>, AdminError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, email, name, role, disabled_at, created_at FROM admin_users WHERE tenant_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(&tenant.0)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    Ok(rows.into_iter().map(Admin::from).collect())
}

/// One admin of the tenant, by id or e-mail.
pub async fn get(db: &Db, tenant: &TenantId, id_or_email: &str) -> Result<Admin, AdminError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, email, name, role, disabled_at, created_at FROM admin_users \
         WHERE tenant_id = $1 AND (id = $2 OR email = $3)",
    )
    .bind(&tenant.0)
    .bind(id_or_email)
    .bind(id_or_email.trim().to_lowercase())
    .fetch_optional(&mut *db.conn().await?)
    .await?;
    row.map(Admin::from).ok_or_else(|| AdminError::NotFound(id_or_email.to_owned()))
}

/// What a login attempt came to.
#[derive(Debug)]
pub enum Login {
    /// The password is an active admin's.
    Admin(AdminCtx),
    /// It is the password of active admins in several tenants: the client names one.
    ChooseTenant(Vec<String>),
    /// Wrong: these accounts (admin id and tenant) carry the e-mail and are told in their audit.
    Refused(Vec<(String, TenantId)>),
}

/// Accounts one e-mail may have, across tenants, that a login checks.
const MAX_CANDIDATES: usize = 8;

/// Checks `password` against every account with this e-mail (in `tenant`, a slug, when given).
/// Always does the work of at least one hash check, so response time does not reveal whether
/// the e-mail exists. Disabled admins never log in.
pub async fn authenticate(
    db: &Db,
    cfg: &AdminSettings,
    email: &str,
    password: &str,
    tenant: Option<&str>,
) -> Result<Login, AdminError> {
    let email = email.trim().to_lowercase();
    let rows: Vec<(String, String, String, String, Option<i64>, String)> = sqlx::query_as(
        "SELECT a.id, a.tenant_id, a.password_hash, a.role, a.disabled_at, t.slug FROM admin_users a \
         JOIN tenants t ON t.id = a.tenant_id WHERE a.email = $1 AND ($2 = '' OR t.slug = $2) \
         ORDER BY a.created_at, a.id",
    )
    .bind(&email)
    .bind(tenant.unwrap_or(""))
    .fetch_all(&mut *db.conn().await?)
    .await?;
    let hashes: Vec<Option<String>> =
        rows.iter().take(MAX_CANDIDATES).map(|r| r.4.is_none().then(|| r.2.clone())).collect();
    let (cfg, password) = (cfg.clone(), password.to_owned());
    // argon2 is deliberately slow: keep it off the async workers.
    let matched = tokio::task::spawn_blocking(move || {
        if hashes.iter().all(Option::is_none) {
            verify_password(&cfg, &password, DUMMY_HASH);
        }
        hashes.iter().map(|h| h.as_deref().is_some_and(|phc| verify_password(&cfg, &password, phc))).collect()
    })
    .await
    .unwrap_or_else(|_| Vec::<bool>::new());
    let hits: Vec<_> = rows.iter().zip(&matched).filter(|(_, ok)| **ok).map(|(r, _)| r).collect();
    Ok(match hits.as_slice() {
        [] => Login::Refused(rows.iter().map(|r| (r.0.clone(), TenantId(r.1.clone()))).collect()),
        [one] => Login::Admin(AdminCtx {
            admin_id: one.0.clone(),
            email,
            tenant: TenantId(one.1.clone()),
            role: Role::stored(&one.3),
        }),
        many => Login::ChooseTenant(many.iter().map(|r| r.5.clone()).collect()),
    })
}

/// A valid argon2id hash of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2OQBw7nAAazVqkSmXbVxyl9JvBsb9bKzLGGV4Ph4DYk";
