//! First start on an empty database: tenant `demo`, one admin, one test key, and a banner with
//! what a newcomer needs, printed once.

use angage_core::clock::Clock;
use angage_core::config::Settings;
use angage_core::ids::random_base62;
use angage_core::key::{Environment, Scope};
use angage_core::limits::Limits;
use angage_core::tenant::TenantId;
use angage_store::admins::{self, AdminError};
use angage_store::db::Db;
use angage_store::keys::store::{self as key_store, Actor};
use angage_store::keys::{NewKey, Pepper};
use angage_store::resources::store::ResourceError;
use angage_store::tenants::{self, TenantError};

pub const DEMO_TENANT: &str = "demo";
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.local";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("database error during first-start setup: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("cannot issue the demo key: {0}")]
    Key(#[from] ResourceError),
}

/// What a newcomer needs after the first start; `None` when the database already had tenants.
#[derive(Debug, Clone)]
pub struct Banner {
    pub admin_email: String,
    pub admin_password: String,
    pub test_key: String,
}

impl Banner {
    pub fn render(&self, base_url: &str) -> String {
        format!(
            "\n  Angage is ready (first start: tenant `{DEMO_TENANT}` created).\n\
             \n  Console       {base_url}/console\
             \n  Admin login   {}  /  {}\
             \n  Test API key  {}  (expires in {DEMO_KEY_DAYS} days)\
             \n  API docs      {base_url}/docs\
             \n\n  Try it:       curl -H 'Authorization: Bearer {}' {base_url}/v1/customers\
             \n\n  The password and the key are shown once. Keep them now.\n",
            self.admin_email, self.admin_password, self.test_key, self.test_key
        )
    }
}

/// Days the demo key lives: long enough to try everything, never a standing credential.
pub const DEMO_KEY_DAYS: i64 = 30;

/// Creates the demo tenant, its admin and a full-scope test key when no tenant exists yet, in
/// any profile but production (which starts empty: `angage init` makes the first tenant).
pub async fn run(
    db: &Db,
    settings: &Settings,
    pepper: &Pepper,
    clock: &dyn Clock,
) -> Result<Option<Banner>, BootstrapError> {
    if settings.profile == "production" {
        return Ok(None);
    }
    let (tenants,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM tenants").fetch_one(&mut *db.conn().await?).await?;
    if tenants > 0 {
        return Ok(None);
    }
    let now = clock.now_ms();
    let tenant = match tenants::create(db, DEMO_TENANT, "Demo Company", now).await {
        Ok(t) => t,
        // Another process bootstrapped at the same moment: nothing left to do.
        Err(TenantError::Exists(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let tenant_id = TenantId(tenant.id);
    let password = random_base62(20);
    let owner = admins::NewAdmin { email: DEMO_ADMIN_EMAIL, password: &password, role: admins::Role::Owner };
    admins::create(db, &settings.admin, &tenant_id, &owner, "system", now).await?;
    let key = NewKey {
        name: "Quick start".into(),
        description: Some("Created on first start".into()),
        environment: Environment::Test,
        scope: Scope::Full,
        grants: Default::default(),
        rate_limits: Limits::default(),
        ip_allowlist: Vec::new(),
        expires_in_days: Some(DEMO_KEY_DAYS),
        signing_public_key: None,
        require_signature: false,
    };
    let issued = key_store::create(db, pepper, &tenant_id, &Actor("system".into()), key, now).await?;
    Ok(Some(Banner { admin_email: DEMO_ADMIN_EMAIL.into(), admin_password: password, test_key: issued.key }))
}
