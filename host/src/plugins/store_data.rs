//! What each plugin instance's store holds, and the host functions plugins import.

use std::sync::Arc;

use wasmtime::{StoreLimits, StoreLimitsBuilder};

use super::bindings::{host, types};
use super::counters::{Charge, CounterOp, Counters};
use crate::clock::Clock;
use crate::db::Db;
use crate::keys::cache::{KeyCache, Lookup};
use crate::keys::store::KeyRecord;
use crate::keys::{Access, Limits};

/// The host services plugins reach through their imports.
pub struct HostCtx {
    pub keys: Arc<KeyCache>,
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub counters: Arc<dyn Counters>,
}

/// Per-instance state.
pub struct StoreData {
    pub limits: StoreLimits,
    pub plugin: Arc<str>,
    pub config: Arc<str>,
    pub ctx: Arc<HostCtx>,
}

impl StoreData {
    pub fn new(plugin: Arc<str>, config: Arc<str>, ctx: Arc<HostCtx>, memory_bytes: usize) -> Self {
        let limits =
            StoreLimitsBuilder::new().memory_size(memory_bytes).instances(32).tables(32).memories(8).build();
        Self { limits, plugin, config, ctx }
    }
}

impl types::Host for StoreData {}

impl host::Host for StoreData {
    fn lookup_key(&mut self, presented: String) -> Option<host::KeyRecord> {
        let now = self.ctx.clock.now_ms();
        let found = match self.ctx.keys.lookup_cached(&presented, now) {
            Ok(found) => found,
            Err(_) => fetch(&self.ctx, &presented, now)?,
        };
        match found {
            Lookup::Found(record) => Some(to_wit(&record)),
            Lookup::Unknown | Lookup::Malformed(_) => None,
        }
    }

    fn check_and_increment(&mut self, ops: Vec<host::CounterOp>) -> host::ChargeResult {
        let ops: Vec<CounterOp> = ops
            .into_iter()
            .map(|o| CounterOp {
                key: format!("{}:{}", self.plugin, o.key),
                cost: o.cost,
                limit: o.limit,
                ttl_ms: o.ttl_ms,
            })
            .collect();
        match self.ctx.counters.check_and_increment(&ops, self.ctx.clock.now_ms()) {
            Charge::Charged(values) => host::ChargeResult::Charged(values),
            Charge::Refused { index, values } => host::ChargeResult::Refused(host::Refusal {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                values,
            }),
        }
    }

    fn get_counter(&mut self, key: String) -> u64 {
        self.ctx.counters.get(&format!("{}:{key}", self.plugin), self.ctx.clock.now_ms())
    }

    fn now_ms(&mut self) -> i64 {
        self.ctx.clock.now_ms()
    }

    fn log(&mut self, level: host::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn metric_increment(&mut self, name: String, value: u64) {
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(64)
            .collect();
        metrics::counter!(format!("angage_plugin_{name}_total"), "plugin" => self.plugin.to_string())
            .increment(value);
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }
}

/// A cache miss inside a synchronous plugin call: wait for the store on this worker thread.
/// The pipeline prefetches the presented credential, so this is rare.
fn fetch(ctx: &HostCtx, presented: &str, now: i64) -> Option<Lookup> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        tracing::warn!("key lookup missed the cache on a single-threaded runtime; refusing");
        return None;
    }
    let result = tokio::task::block_in_place(|| handle.block_on(ctx.keys.lookup(&ctx.db, presented, now)));
    match result {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed");
            None
        }
    }
}

pub fn to_wit_limits(l: &Limits, burst_window_seconds: i64) -> types::Limits {
    let u = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
    types::Limits {
        per_second: u(l.per_second),
        per_minute: u(l.per_minute),
        per_hour: u(l.per_hour),
        per_day: u(l.per_day),
        burst: u(l.burst),
        burst_window_seconds: u64::try_from(burst_window_seconds).unwrap_or(1),
    }
}

fn to_wit(r: &KeyRecord) -> host::KeyRecord {
    host::KeyRecord {
        key_id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        tenant: r.tenant_slug.clone(),
        environment: r.environment.as_str().to_owned(),
        app_name: r.name.clone(),
        grants: r
            .grants
            .iter()
            .map(|(module, access)| types::Grant {
                module: module.clone(),
                access: match access {
                    Access::None => types::Access::None,
                    Access::Read => types::Access::Read,
                    Access::ReadWrite => types::Access::ReadWrite,
                },
            })
            .collect(),
        limits: to_wit_limits(&r.limits, r.burst_window_seconds),
        ip_allowlist: r.ip_allowlist.iter().map(ToString::to_string).collect(),
        expires_at_ms: r.expires_at,
        revoked: r.revoked_at.is_some(),
        require_https: r.require_https,
    }
}
