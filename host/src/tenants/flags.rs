//! A short-lived cache of tenant settings for the request path (rate-limit header switches,
//! time zone). Changes through this process invalidate at once; others within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::settings::{self, TenantSettings};
use crate::db::Db;
use crate::resources::store::TenantId;

pub struct SettingsCache {
    ttl_ms: i64,
    entries: RwLock<HashMap<String, (Arc<TenantSettings>, i64)>>,
}

impl SettingsCache {
    pub fn new(ttl_ms: i64) -> Self {
        Self { ttl_ms, entries: RwLock::new(HashMap::new()) }
    }

    pub async fn get(&self, db: &Db, tenant_id: &str, now: i64) -> Result<Arc<TenantSettings>, sqlx::Error> {
        if let Some((s, at)) = self.entries.read().unwrap_or_else(|p| p.into_inner()).get(tenant_id)
            && now - at < self.ttl_ms
        {
            return Ok(s.clone());
        }
        let mut conn = db.pool.acquire().await?;
        let s = Arc::new(settings::get(&mut conn, &TenantId(tenant_id.to_owned())).await?);
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant_id.to_owned(), (s.clone(), now));
        Ok(s)
    }

    pub fn invalidate(&self, tenant_id: &str) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(tenant_id);
    }
}
