//! What each plugin instance's store holds, and every host function plugins import: the `host`
//! interface and the methods of the lent `request` and `key` resources.

use std::sync::Arc;

use angage_core::clock::Clock;
use angage_core::key::{Access, Environment, KeyRecord};
use angage_core::limits::Limits;
use angage_core::policy::{Operation, PolicyRequest, Stage};
use angage_core::settings::TenantSettings;
use angage_store::db::Db;
use angage_store::keys::cache::{KeyCache, Lookup};
use angage_store::tenants::cache::SettingsCache;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};

use super::bindings::{host, types};
use super::counters::{Charge, CounterOp, Counters};
use super::deadline::Deadline;
use super::handles::{KeyRef, LENT_KEY, LENT_REQUEST, Lent, RequestRef};

/// The host services plugins reach through their imports.
pub(crate) struct HostCtx {
    pub keys: Arc<KeyCache>,
    pub tenant_settings: Arc<SettingsCache>,
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub counters: Arc<dyn Counters>,
    pub(crate) metric_names: MetricNames,
    /// This node, for the plugins it reports serving.
    pub node: Node,
}

/// A node's name (made once per data folder) and the address it serves.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub id: String,
    pub address: String,
}

/// The metric names each plugin has used: a plugin gets `MAX_METRIC_NAMES` series, so no
/// plugin (or the requests it sees) can mint series without bound.
#[derive(Default)]
pub(crate) struct MetricNames(
    std::sync::Mutex<std::collections::HashMap<String, std::collections::HashSet<String>>>,
);

/// Distinct metric names one plugin may use.
const MAX_METRIC_NAMES: usize = 32;

impl MetricNames {
    /// Whether `plugin` may count into `name` (a known name, or a new one within its share).
    fn admit(&self, plugin: &str, name: &str) -> bool {
        let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let used = names.entry(plugin.to_owned()).or_default();
        if used.contains(name) {
            return true;
        }
        if used.len() >= MAX_METRIC_NAMES {
            metrics::counter!("angage_plugin_metric_names_refused_total", "plugin" => plugin.to_owned())
                .increment(1);
            return false;
        }
        used.insert(name.to_owned());
        true
    }
}

/// Limits applied to every call and instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) deadline_ticks: u64,
    pub(crate) memory_bytes: usize,
    pub(crate) max_instances: usize,
    pub(crate) queue_timeout: std::time::Duration,
}

/// Request headers that carry the caller's secret. Only authenticate needs them; every other
/// stage reads them only when its plugin's configuration lists them (`allow_secret_headers`).
pub(crate) const SECRET_HEADERS: [&str; 4] = ["authorization", "x-api-key", "cookie", "proxy-authorization"];

/// What one plugin is, for its instances.
#[derive(Clone)]
pub(crate) struct Identity {
    pub(crate) name: Arc<str>,
    pub(crate) config: Arc<str>,
    /// The secret headers this plugin may not read.
    pub(crate) withheld: Arc<[&'static str]>,
}

impl Identity {
    /// `config` is the plugin's JSON configuration; its `allow_secret_headers` widens what a
    /// stage other than authenticate may read.
    pub(crate) fn new(name: &str, stage: Stage, config: Arc<str>) -> Self {
        let allowed: Vec<String> = serde_json::from_str::<serde_json::Value>(&config)
            .ok()
            .and_then(|c| c.get("allow_secret_headers").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let withheld: Vec<&'static str> = match stage {
            Stage::Authenticate => Vec::new(),
            _ => SECRET_HEADERS
                .into_iter()
                .filter(|h| !allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
                .collect(),
        };
        Self { name: name.into(), config, withheld: withheld.into() }
    }
}

/// Per-instance state.
pub(crate) struct StoreData {
    pub(crate) limits: StoreLimits,
    /// The current call's deadline (in the plugin's own running time).
    pub(crate) deadline: Deadline,
    pub(crate) plugin: Identity,
    pub(crate) ctx: Arc<HostCtx>,
    /// What the current stage call lends the plugin.
    pub(crate) lent: Lent,
    /// The keys the plugin owns (from `lookup-key`).
    table: ResourceTable,
    /// Keys from `lookup-key` the plugin still holds; the table lives outside its memory cap.
    keys_held: usize,
    /// How this call's charges are made.
    pub(crate) charging: Charging,
}

/// How a call's `check-and-increment` is answered: at once, or (with shared counters, see
/// `lanes.rs`) recorded for the batch's one round trip and then answered from it.
///
/// Both passes see the clock stopped at the same `now_ms`: a sliding window's limit depends on
/// the time, and a replay that asked for other ops than it recorded would be charged on its
/// own, a round trip per request.
#[derive(Default)]
pub(crate) enum Charging {
    #[default]
    Direct,
    /// Recorded, and answered as if every op fitted (this call's decision is not used).
    Record { log: Vec<(String, Vec<CounterOp>)>, now_ms: i64 },
    /// Answered from the batch's round trip, in order; ops that differ from those recorded
    /// are charged at once.
    Replay { answers: std::collections::VecDeque<(Vec<CounterOp>, Charge)>, now_ms: i64 },
}

impl Charging {
    /// What a recording call charged.
    pub(crate) fn recorded(self) -> Vec<(String, Vec<CounterOp>)> {
        match self {
            Charging::Record { log, .. } => log,
            _ => Vec::new(),
        }
    }

    /// The time a pass is stopped at.
    fn now_ms(&self) -> Option<i64> {
        match self {
            Charging::Record { now_ms, .. } | Charging::Replay { now_ms, .. } => Some(*now_ms),
            Charging::Direct => None,
        }
    }
}

/// Core instances, tables and table slots a plugin may have: a component made from one module
/// has a few of each (its own and `wit-component`'s adapters).
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// One linear memory, so the memory cap is the plugin's whole memory (multi-memory would give
/// it the cap once per memory), and bounded tables (`table.grow` lives outside the memory cap).
fn store_limits(memory_bytes: usize) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(memory_bytes)
        .instances(MAX_INSTANCES)
        .tables(MAX_TABLES)
        .memories(1)
        .table_elements(MAX_TABLE_ELEMENTS)
        .build()
}

/// More keys than any authenticator needs at once: a plugin that keeps asking without
/// letting go is stopped before the host's table grows without bound.
const MAX_KEYS_HELD: usize = 64;

impl StoreData {
    pub(crate) fn new(plugin: Identity, ctx: Arc<HostCtx>, budget: Budget) -> Self {
        Self {
            limits: store_limits(budget.memory_bytes),
            deadline: Deadline::new(budget.deadline_ticks),
            plugin,
            ctx,
            lent: Lent::default(),
            table: ResourceTable::new(),
            keys_held: 0,
            charging: Charging::Direct,
        }
    }

    /// Gives the plugin a key it owns (from `lookup-key`).
    fn hand_out(&mut self, key: KeyRef) -> wasmtime::Result<Option<Resource<KeyRef>>> {
        let handle = self.table.push(key)?;
        self.keys_held += 1;
        Ok(Some(handle))
    }

    /// Takes back a key the plugin owned: dropped by it, or returned by authenticate.
    pub(crate) fn take_key(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<KeyRef> {
        let key = self.table.delete(k)?;
        self.keys_held = self.keys_held.saturating_sub(1);
        Ok(key)
    }

    fn request(&self, r: &Resource<RequestRef>) -> wasmtime::Result<&PolicyRequest> {
        match (&self.lent.request, r.rep()) {
            (Some(request), LENT_REQUEST) => Ok(request),
            _ => wasmtime::bail!("no request is lent under handle {}", r.rep()),
        }
    }

    fn key(&self, k: &Resource<KeyRef>) -> wasmtime::Result<&KeyRef> {
        match (&self.lent.key, k.rep()) {
            (Some(key), LENT_KEY) => Ok(key),
            (None, LENT_KEY) => wasmtime::bail!("no key is lent"),
            _ => Ok(self.table.get(k)?),
        }
    }

    fn readable(&self, name: &str) -> bool {
        !self.plugin.withheld.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

impl types::Host for StoreData {}

impl host::Host for StoreData {
    fn lookup_key(&mut self, presented: String) -> wasmtime::Result<Option<Resource<KeyRef>>> {
        if self.keys_held >= MAX_KEYS_HELD {
            wasmtime::bail!("holds {MAX_KEYS_HELD} keys from lookup-key without dropping them");
        }
        if let Some(known) = &self.lent.prefetched
            && known.presented == presented
        {
            let key = known.key.clone();
            return self.hand_out(key);
        }
        let now = self.ctx.clock.now_ms();
        let found = match self.ctx.keys.lookup_cached(&presented, now) {
            Ok(found) => Some(found),
            Err(_) => block_on("key lookup", self.ctx.keys.lookup(&self.ctx.db, &presented, now)),
        };
        let Some(Lookup::Found(key)) = found else { return Ok(None) };
        let settings = match self.ctx.tenant_settings.cached(&key.tenant_id, now) {
            Some(s) => Some(s),
            None => {
                block_on("tenant settings", self.ctx.tenant_settings.get(&self.ctx.db, &key.tenant_id, now))
            }
        };
        match settings {
            Some(settings) => self.hand_out(KeyRef { key, settings }),
            None => Ok(None),
        }
    }

    fn check_and_increment(&mut self, ops: Vec<host::CounterOp>) -> wasmtime::Result<host::ChargeResult> {
        let ops: Vec<CounterOp> = ops
            .into_iter()
            .map(|o| CounterOp { key: o.key, cost: o.cost, limit: o.limit, ttl_ms: o.ttl_ms })
            .collect();
        let charge = match &mut self.charging {
            Charging::Record { log, .. } => {
                let assumed = Charge::Charged(ops.iter().map(|o| o.cost).collect());
                log.push((self.plugin.name.to_string(), ops));
                assumed
            }
            Charging::Replay { answers, .. }
                if answers.front().is_some_and(|(recorded, _)| *recorded == ops) =>
            {
                answers.pop_front().map(|(_, answer)| answer).unwrap_or(Charge::Charged(Vec::new()))
            }
            Charging::Replay { .. } | Charging::Direct => self
                .ctx
                .counters
                .check_and_increment(&self.plugin.name, ops, self.ctx.clock.now_ms())
                .map_err(wasmtime::Error::new)?,
        };
        Ok(match charge {
            Charge::Charged(values) => host::ChargeResult::Charged(values),
            Charge::Refused { index, values } => host::ChargeResult::Refused(host::Refusal {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                values,
            }),
        })
    }

    fn get_counters(&mut self, keys: Vec<String>) -> wasmtime::Result<Vec<u64>> {
        self.ctx
            .counters
            .get_many(&self.plugin.name, &keys, self.ctx.clock.now_ms())
            .map_err(wasmtime::Error::new)
    }

    fn now_ms(&mut self) -> wasmtime::Result<i64> {
        Ok(self.charging.now_ms().unwrap_or_else(|| self.ctx.clock.now_ms()))
    }

    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        let plugin = &*self.plugin.name;
        let message = super::outputs::log_line(&message);
        match level {
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    fn metric_increment(&mut self, name: String, value: u64) -> wasmtime::Result<()> {
        let name = super::outputs::metric_name(&name);
        if !self.ctx.metric_names.admit(&self.plugin.name, &name) {
            return Ok(());
        }
        metrics::counter!(format!("angage_plugin_{name}_total"), "plugin" => self.plugin.name.to_string())
            .increment(value);
        Ok(())
    }

    fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.plugin.config.to_string())
    }
}

/// A cache miss inside a synchronous plugin call: wait for the store on this worker thread.
/// The policy engine prefetches the presented credential, so this is rare.
fn block_on<T>(what: &str, read: impl std::future::Future<Output = Result<T, sqlx::Error>>) -> Option<T> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        tracing::warn!("{what} missed the cache on a single-threaded runtime; refusing");
        return None;
    }
    match tokio::task::block_in_place(|| handle.block_on(read)) {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::error!(error = %e, "{what} failed");
            None
        }
    }
}

impl types::HostRequest for StoreData {
    fn method(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.method.clone())
    }

    fn route(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.route.clone())
    }

    fn path(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.path.clone())
    }

    fn module(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.module.clone())
    }

    fn operation(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<types::Operation> {
        Ok(match self.request(&r)?.operation {
            Operation::Read => types::Operation::Read,
            Operation::Write => types::Operation::Write,
        })
    }

    fn header(&mut self, r: Resource<RequestRef>, name: String) -> wasmtime::Result<Option<String>> {
        if !self.readable(&name) {
            return Ok(None);
        }
        // `HeaderMap` matches names without regard to case.
        let value = self.request(&r)?.headers.get(name.as_str());
        Ok(value.and_then(|v| v.to_str().ok()).map(str::to_owned))
    }

    fn headers(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<Vec<types::Header>> {
        let headers = &self.request(&r)?.headers;
        Ok(headers
            .iter()
            .filter(|(n, _)| self.readable(n.as_str()))
            .filter_map(|(n, v)| {
                v.to_str().ok().map(|v| types::Header { name: n.as_str().to_owned(), value: v.to_owned() })
            })
            .collect())
    }

    fn client_ip(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.client_ip.clone())
    }

    fn scheme(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<String> {
        Ok(self.request(&r)?.scheme.to_owned())
    }

    fn time_ms(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<i64> {
        Ok(self.request(&r)?.time_ms)
    }

    fn drop(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<()> {
        // Only owned handles are dropped, and a plugin never owns a request.
        wasmtime::bail!("request handle {} was never owned", r.rep())
    }
}

impl types::HostKey for StoreData {
    fn id(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<String> {
        Ok(self.key(&k)?.key.id.clone())
    }

    fn tenant_id(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<String> {
        Ok(self.key(&k)?.key.tenant_id.clone())
    }

    fn tenant(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<String> {
        Ok(self.key(&k)?.key.tenant_slug.clone())
    }

    fn app_name(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<String> {
        Ok(self.key(&k)?.key.name.clone())
    }

    fn state(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<types::KeyState> {
        let k = self.key(&k)?;
        Ok(key_state(&k.key, &k.settings))
    }

    fn access(&mut self, k: Resource<KeyRef>, module: String) -> wasmtime::Result<types::Access> {
        Ok(self.key(&k)?.key.grants.get(&module).map_or(types::Access::None, |a| to_wit_access(*a)))
    }

    fn grants(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<Vec<types::Grant>> {
        let grants = &self.key(&k)?.key.grants;
        Ok(grants
            .iter()
            .map(|(module, access)| types::Grant { module: module.clone(), access: to_wit_access(*access) })
            .collect())
    }

    fn ip_allowlist(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<Vec<String>> {
        Ok(self.key(&k)?.key.ip_allowlist.iter().map(ToString::to_string).collect())
    }

    fn drop(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<()> {
        // Only keys from `lookup-key` are owned by the plugin, so only those are dropped.
        self.take_key(k).map(drop)
    }
}

/// A key's standing as the contract states it: its tenant's settings supply the HTTPS
/// requirement and the defaults under its own limits.
pub(crate) fn key_state(key: &KeyRecord, settings: &TenantSettings) -> types::KeyState {
    types::KeyState {
        environment: match key.environment {
            Environment::Live => types::Environment::Live,
            Environment::Test => types::Environment::Test,
        },
        revoked: key.revoked_at.is_some(),
        expires_at_ms: key.expires_at,
        require_https: settings.security.require_https,
        ip_restricted: key.ip_restricted,
        limits: to_wit_limits(&effective_limits(key, settings), settings.rate_limits.burst_window_seconds),
    }
}

/// A key's effective limits: its own over its tenant's defaults.
pub(crate) fn effective_limits(key: &KeyRecord, settings: &TenantSettings) -> Limits {
    key.limits.over(settings.rate_limits.defaults)
}

fn to_wit_access(a: Access) -> types::Access {
    match a {
        Access::None => types::Access::None,
        Access::Read => types::Access::Read,
        Access::ReadWrite => types::Access::ReadWrite,
    }
}

/// The one place the domain's limits become the contract's.
pub(crate) fn to_wit_limits(l: &Limits, burst_window_seconds: u64) -> types::Limits {
    types::Limits {
        per_second: l.per_second,
        per_minute: l.per_minute,
        per_hour: l.per_hour,
        per_day: l.per_day,
        burst: l.burst,
        burst_window_seconds,
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn a_plugin_gets_one_memory_and_bounded_tables() {
        let mut l = store_limits(16 << 20);
        assert_eq!(l.memories(), 1, "a second memory would double the memory cap");
        assert!(l.table_growing(10, MAX_TABLE_ELEMENTS, None).unwrap_or(false));
        assert!(!l.table_growing(10, MAX_TABLE_ELEMENTS + 1, None).unwrap_or(true), "table.grow is bounded");
    }
}
