//! The request path's tenant settings: one short-lived cache with its own TTL
//! (`tenants.cache_ttl_seconds`). Changes through this process invalidate at once; changes from
//! other processes arrive through the change feed (within a second), the TTL being the backstop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use angage_core::settings::TenantSettings;
use angage_core::tenant::TenantId;

use super::settings;
use crate::db::Db;

pub struct SettingsCache {
    ttl_ms: i64,
    entries: RwLock<HashMap<String, (Arc<TenantSettings>, i64)>>,
    /// Bumped by every invalidation: a read that began before one is not cached.
    generation: AtomicU64,
}

impl SettingsCache {
    pub fn new(ttl_ms: i64) -> Self {
        Self { ttl_ms, entries: RwLock::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    /// A tenant's settings, from memory while fresh, else from the store.
    pub async fn get(&self, db: &Db, tenant_id: &str, now: i64) -> Result<Arc<TenantSettings>, sqlx::Error> {
        if let Some(s) = self.cached(tenant_id, now) {
            return Ok(s);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let mut conn = db.conn().await?;
        let s = Arc::new(settings::get(&mut conn, &TenantId(tenant_id.to_owned())).await?);
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) == generation {
            entries.insert(tenant_id.to_owned(), (s.clone(), now));
        }
        Ok(s)
    }

    /// The settings when memory holds a fresh copy.
    pub fn cached(&self, tenant_id: &str, now: i64) -> Option<Arc<TenantSettings>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (s, at) = entries.get(tenant_id)?;
        (now - at < self.ttl_ms).then(|| s.clone())
    }

    pub fn invalidate(&self, tenant_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(tenant_id);
    }

    /// Forgets every tenant (changes may have been missed).
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}
