//! First start on an empty database: tenant `demo`, one admin, and a banner printed once.

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};

use crate::clock::Clock;
use crate::db::Db;
use crate::ids::{new_id, random_base62};

pub const DEMO_TENANT: &str = "demo";
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.local";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("database error during first-start setup: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot hash the admin password: {0}")]
    Hash(String),
}

/// What a newcomer needs after the first start; `None` when the database already had tenants.
#[derive(Debug, Clone)]
pub struct Banner {
    pub admin_email: String,
    pub admin_password: String,
}

impl Banner {
    pub fn render(&self, base_url: &str) -> String {
        format!(
            "\n  Angage is ready (first start: tenant `{DEMO_TENANT}` created).\n\
             \n  Admin login   {}  /  {}\n  Health        curl {base_url}/healthz\n\
             \n  This password is shown once. Keep it now.\n",
            self.admin_email, self.admin_password
        )
    }
}

/// Creates the demo tenant and its admin when no tenant exists yet.
pub async fn run(db: &Db, clock: &dyn Clock) -> Result<Option<Banner>, BootstrapError> {
    let mut tx = db.pool.begin().await?;
    let (tenants,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tenants").fetch_one(&mut *tx).await?;
    if tenants > 0 {
        return Ok(None);
    }
    let now = clock.now_ms();
    let tenant_id = new_id("ten");
    sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&tenant_id)
        .bind(DEMO_TENANT)
        .bind("Demo Company")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let password = random_base62(20);
    let hash = hash_password(&password)?;
    sqlx::query(
        "INSERT INTO admin_users (id, tenant_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id("adm"))
    .bind(&tenant_id)
    .bind(DEMO_ADMIN_EMAIL)
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Banner { admin_email: DEMO_ADMIN_EMAIL.into(), admin_password: password }))
}

/// argon2id PHC string.
pub fn hash_password(password: &str) -> Result<String, BootstrapError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| BootstrapError::Hash(e.to_string()))
}
