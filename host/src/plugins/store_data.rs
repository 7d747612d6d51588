//! What each plugin instance's store holds, and the host functions plugins import.

use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};

use super::bindings::{host, types};
use super::counters::{Charge, CounterOp, Counters};
use super::deadline::Deadline;
use super::handles::{KeyRef, Lent};
use super::loaded::Budget;
use crate::clock::Clock;
use crate::db::Db;
use crate::keys::cache::{KeyCache, Lookup};
use crate::keys::store::KeyRecord;

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
    /// The current call's deadline (in the plugin's own running time).
    pub deadline: Deadline,
    pub plugin: Arc<str>,
    pub config: Arc<str>,
    pub ctx: Arc<HostCtx>,
    /// What the current stage call lends the plugin.
    pub lent: Lent,
    /// The keys the plugin owns (from `lookup-key`).
    pub table: ResourceTable,
    /// Keys from `lookup-key` the plugin still holds; the table lives outside its memory cap.
    pub keys_held: usize,
}

/// More keys than any authenticator needs at once: a plugin that keeps asking without
/// letting go is stopped before the host's table grows without bound.
const MAX_KEYS_HELD: usize = 64;

impl StoreData {
    pub fn new(plugin: Arc<str>, config: Arc<str>, ctx: Arc<HostCtx>, budget: Budget) -> Self {
        let limits = StoreLimitsBuilder::new()
            .memory_size(budget.memory_bytes)
            .instances(32)
            .tables(32)
            .memories(8)
            .build();
        Self {
            limits,
            deadline: Deadline::new(budget.deadline_ticks),
            plugin,
            config,
            ctx,
            lent: Lent::default(),
            table: ResourceTable::new(),
            keys_held: 0,
        }
    }

    /// Gives the plugin a key it owns (from `lookup-key`).
    fn hand_out(&mut self, key: Arc<KeyRecord>) -> wasmtime::Result<Option<Resource<KeyRef>>> {
        let handle = self.table.push(KeyRef(key))?;
        self.keys_held += 1;
        Ok(Some(handle))
    }

    /// Takes back a key the plugin owned: dropped by it, or returned by authenticate.
    pub fn take_key(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<Arc<KeyRecord>> {
        let key = self.table.delete(k)?;
        self.keys_held = self.keys_held.saturating_sub(1);
        Ok(key.0)
    }
}

impl types::Host for StoreData {}

impl host::Host for StoreData {
    fn lookup_key(&mut self, presented: String) -> wasmtime::Result<Option<Resource<KeyRef>>> {
        if self.keys_held >= MAX_KEYS_HELD {
            wasmtime::bail!("holds {MAX_KEYS_HELD} keys from lookup-key without dropping them");
        }
        if let Some(known) = self.lent.request.as_ref().and_then(|r| r.prefetched.as_ref())
            && known.presented == presented
        {
            return self.hand_out(known.key.clone());
        }
        let now = self.ctx.clock.now_ms();
        let found = match self.ctx.keys.lookup_cached(&presented, now) {
            Ok(found) => Some(found),
            Err(_) => fetch(&self.ctx, &presented, now),
        };
        match found {
            Some(Lookup::Found(record)) => self.hand_out(record),
            _ => Ok(None),
        }
    }

    fn check_and_increment(&mut self, ops: Vec<host::CounterOp>) -> wasmtime::Result<host::ChargeResult> {
        let ops = ops
            .into_iter()
            .map(|o| CounterOp { key: o.key, cost: o.cost, limit: o.limit, ttl_ms: o.ttl_ms })
            .collect();
        Ok(match self.ctx.counters.check_and_increment(&self.plugin, ops, self.ctx.clock.now_ms()) {
            Charge::Charged(values) => host::ChargeResult::Charged(values),
            Charge::Refused { index, values } => host::ChargeResult::Refused(host::Refusal {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                values,
            }),
        })
    }

    fn get_counters(&mut self, keys: Vec<String>) -> wasmtime::Result<Vec<u64>> {
        Ok(self.ctx.counters.get_many(&self.plugin, &keys, self.ctx.clock.now_ms()))
    }

    fn now_ms(&mut self) -> wasmtime::Result<i64> {
        Ok(self.ctx.clock.now_ms())
    }

    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        let plugin = &*self.plugin;
        match level {
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    fn metric_increment(&mut self, name: String, value: u64) -> wasmtime::Result<()> {
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(64)
            .collect();
        metrics::counter!(format!("angage_plugin_{name}_total"), "plugin" => self.plugin.to_string())
            .increment(value);
        Ok(())
    }

    fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.config.to_string())
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
