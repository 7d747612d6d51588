//! The configured store, opened (and migrated) for one command.

use anyhow::Context;

use angage_core::clock::{Clock, SystemClock};
use angage_core::config::Loaded;
use angage_core::tenant::TenantId;
use angage_store::db::Db;
use angage_store::tenants;

pub(super) async fn open(loaded: &Loaded) -> anyhow::Result<Db> {
    let db = Db::connect(&loaded.settings.database).await.context("opening the database")?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

pub(super) async fn tenant_id(db: &Db, slug: &str) -> anyhow::Result<TenantId> {
    let tenant = tenants::by_slug(db, slug).await.map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    Ok(TenantId(tenant.id))
}

pub(super) fn now() -> i64 {
    SystemClock.now_ms()
}
