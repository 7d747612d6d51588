//! The four stages, and how each one's generated bindings are instantiated, smoke-tested and
//! called.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{authenticator, authorizer, rate_limiter, types, usage_enricher};
use super::store_data::StoreData;

/// A pipeline stage a plugin serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Authenticate,
    Authorize,
    RateLimit,
    EnrichUsage,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Authenticate, Stage::Authorize, Stage::RateLimit, Stage::EnrichUsage];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Authorize => "authorize",
            Self::RateLimit => "rate_limit",
            Self::EnrichUsage => "enrich_usage",
        }
    }

    /// The interface the plugin must export, without version.
    pub fn export(self) -> &'static str {
        match self {
            Self::Authenticate => "angage:policy/authenticate",
            Self::Authorize => "angage:policy/authorize",
            Self::RateLimit => "angage:policy/rate-limit",
            Self::EnrichUsage => "angage:policy/enrich-usage",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Generated bindings of one stage world.
pub trait Bindings: Sized + Send + 'static {
    const STAGE: Stage;
    fn instantiate(pre: &InstancePre<StoreData>, store: &mut Store<StoreData>) -> wasmtime::Result<Self>;
    fn info(&self, store: &mut Store<StoreData>) -> wasmtime::Result<types::PluginInfo>;
    /// A call with a sample input: proves the export works before the plugin serves traffic.
    fn smoke(&self, store: &mut Store<StoreData>) -> wasmtime::Result<()>;
}

pub fn sample_request() -> types::RequestInfo {
    types::RequestInfo {
        method: "SMOKE".into(),
        route: "/v1/smoke".into(),
        path: "/v1/smoke".into(),
        module: "smoke".into(),
        operation: types::Operation::Read,
        headers: Vec::new(),
        client_ip: "127.0.0.1".into(),
        scheme: "http".into(),
        time_ms: 0,
    }
}

pub fn sample_principal() -> types::Principal {
    types::Principal {
        key_id: "key_smoke".into(),
        tenant_id: "ten_smoke".into(),
        tenant: "smoke".into(),
        environment: "test".into(),
        app_name: "smoke".into(),
        grants: Vec::new(),
        limits: types::Limits {
            per_second: None,
            per_minute: None,
            per_hour: None,
            per_day: None,
            burst: None,
            burst_window_seconds: 1,
        },
    }
}

impl Bindings for authenticator::Authenticator {
    const STAGE: Stage = Stage::Authenticate;
    fn instantiate(pre: &InstancePre<StoreData>, store: &mut Store<StoreData>) -> wasmtime::Result<Self> {
        let instance = pre.instantiate(&mut *store)?;
        Self::new(store, &instance)
    }
    fn info(&self, store: &mut Store<StoreData>) -> wasmtime::Result<types::PluginInfo> {
        self.angage_policy_authenticate().call_info(store)
    }
    fn smoke(&self, store: &mut Store<StoreData>) -> wasmtime::Result<()> {
        self.angage_policy_authenticate().call_authenticate(store, &sample_request()).map(drop)
    }
}

impl Bindings for authorizer::Authorizer {
    const STAGE: Stage = Stage::Authorize;
    fn instantiate(pre: &InstancePre<StoreData>, store: &mut Store<StoreData>) -> wasmtime::Result<Self> {
        let instance = pre.instantiate(&mut *store)?;
        Self::new(store, &instance)
    }
    fn info(&self, store: &mut Store<StoreData>) -> wasmtime::Result<types::PluginInfo> {
        self.angage_policy_authorize().call_info(store)
    }
    fn smoke(&self, store: &mut Store<StoreData>) -> wasmtime::Result<()> {
        self.angage_policy_authorize().call_authorize(store, &sample_principal(), &sample_request()).map(drop)
    }
}

impl Bindings for rate_limiter::RateLimiter {
    const STAGE: Stage = Stage::RateLimit;
    fn instantiate(pre: &InstancePre<StoreData>, store: &mut Store<StoreData>) -> wasmtime::Result<Self> {
        let instance = pre.instantiate(&mut *store)?;
        Self::new(store, &instance)
    }
    fn info(&self, store: &mut Store<StoreData>) -> wasmtime::Result<types::PluginInfo> {
        self.angage_policy_rate_limit().call_info(store)
    }
    fn smoke(&self, store: &mut Store<StoreData>) -> wasmtime::Result<()> {
        let principal = sample_principal();
        let request =
            types::RateRequest { limits: principal.limits, principal, request: sample_request(), cost: 1 };
        self.angage_policy_rate_limit().call_check(store, &request).map(drop)
    }
}

impl Bindings for usage_enricher::UsageEnricher {
    const STAGE: Stage = Stage::EnrichUsage;
    fn instantiate(pre: &InstancePre<StoreData>, store: &mut Store<StoreData>) -> wasmtime::Result<Self> {
        let instance = pre.instantiate(&mut *store)?;
        Self::new(store, &instance)
    }
    fn info(&self, store: &mut Store<StoreData>) -> wasmtime::Result<types::PluginInfo> {
        self.angage_policy_enrich_usage().call_info(store)
    }
    fn smoke(&self, store: &mut Store<StoreData>) -> wasmtime::Result<()> {
        let exchange = types::Exchange {
            request: sample_request(),
            principal: None,
            status: 200,
            error_code: None,
            latency_us: 1,
        };
        self.angage_policy_enrich_usage().call_enrich(store, &exchange).map(drop)
    }
}
