//! The four stages: how each one's generated bindings are instantiated, smoke-tested and
//! called. A call lends the request (and the caller's key) and takes them back, whatever the
//! plugin did.

use std::sync::Arc;

use angage_core::key::{Environment, KeyRecord};
use angage_core::policy::{Operation, PolicyRequest, Stage};
use angage_core::settings::TenantSettings;
use wasmtime::Store;
use wasmtime::component::{InstancePre, Resource};

use super::bindings::{authenticator, authorizer, rate_limiter, types, usage_enricher};
use super::handles::{KeyRef, LENT_KEY, LENT_REQUEST, Lent, Prefetched, RequestRef};
use super::store_data::{StoreData, key_state};

/// The interface a plugin of `stage` must export, without version.
pub(crate) fn export(stage: Stage) -> &'static str {
    match stage {
        Stage::Authenticate => "angage:policy/authenticate",
        Stage::Authorize => "angage:policy/authorize",
        Stage::RateLimit => "angage:policy/rate-limit",
        Stage::EnrichUsage => "angage:policy/enrich-usage",
    }
}

/// Generated bindings of one stage world.
pub(crate) trait Bindings: Sized + Send + 'static {
    const STAGE: Stage;
    fn instantiate(pre: &InstancePre<StoreData>, store: &mut Store<StoreData>) -> wasmtime::Result<Self>;
    fn info(&self, store: &mut Store<StoreData>) -> wasmtime::Result<types::PluginInfo>;
    /// A call with a sample input: proves the export works before the plugin serves traffic.
    fn smoke(&self, store: &mut Store<StoreData>) -> wasmtime::Result<()>;
}

/// What a smoke call lends the plugin.
fn sample_request() -> Arc<PolicyRequest> {
    Arc::new(PolicyRequest {
        method: "SMOKE".into(),
        route: "/v1/smoke".into(),
        path: "/v1/smoke".into(),
        query: None,
        module: "smoke".into(),
        operation: Operation::Read,
        headers: Default::default(),
        client_ip: "127.0.0.1".into(),
        origin: None,
        scheme: "http",
        https: false,
        time_ms: 0,
        request_id: String::new(),
    })
}

fn sample_key() -> KeyRef {
    KeyRef {
        key: Arc::new(KeyRecord {
            id: "key_smoke".into(),
            tenant_id: "ten_smoke".into(),
            tenant_slug: "smoke".into(),
            name: "smoke".into(),
            environment: Environment::Test,
            grants: Default::default(),
            limits: Default::default(),
            ip_allowlist: Vec::new(),
            ip_restricted: false,
            expires_at: None,
            revoked_at: None,
            signing_key: None,
            require_signature: false,
            oauth: false,
            last_used: Default::default(),
        }),
        settings: Arc::new(TenantSettings::default()),
    }
}

/// Lends the request (and the caller's key) for one call.
fn lend(
    s: &mut Store<StoreData>,
    request: &Arc<PolicyRequest>,
    prefetched: Option<&Arc<Prefetched>>,
    key: Option<&KeyRef>,
) {
    s.data_mut().lent =
        Lent { request: Some(request.clone()), prefetched: prefetched.cloned(), key: key.cloned() };
}

/// The handle a call passes for the lent request.
fn lent_request() -> Resource<RequestRef> {
    Resource::new_borrow(LENT_REQUEST)
}

/// The handle a call passes for the lent key.
fn lent_key() -> Resource<KeyRef> {
    Resource::new_borrow(LENT_KEY)
}

/// Ends the loan, whatever the call did.
fn take_back<R>(s: &mut Store<StoreData>, out: wasmtime::Result<R>) -> wasmtime::Result<R> {
    s.data_mut().lent = Lent::default();
    out
}

/// The authenticate call: the key the plugin chose, or its refusal.
pub(crate) fn authenticate(
    b: &authenticator::Authenticator,
    s: &mut Store<StoreData>,
    request: &Arc<PolicyRequest>,
    prefetched: Option<&Arc<Prefetched>>,
) -> wasmtime::Result<Result<KeyRef, types::Denial>> {
    lend(s, request, prefetched, None);
    let out = b.angage_policy_authenticate().call_authenticate(&mut *s, lent_request());
    match take_back(s, out)? {
        Ok(key) => Ok(Ok(s.data_mut().take_key(key)?)),
        Err(denial) => Ok(Err(denial)),
    }
}

/// The authorize call.
pub(crate) fn authorize(
    b: &authorizer::Authorizer,
    s: &mut Store<StoreData>,
    key: &KeyRef,
    request: &Arc<PolicyRequest>,
) -> wasmtime::Result<Result<(), types::Denial>> {
    lend(s, request, None, Some(key));
    let out = b.angage_policy_authorize().call_authorize(&mut *s, lent_key(), lent_request());
    take_back(s, out)
}

/// The rate-limit call: `cost` units against `limits`.
pub(crate) fn check(
    b: &rate_limiter::RateLimiter,
    s: &mut Store<StoreData>,
    key: &KeyRef,
    request: &Arc<PolicyRequest>,
    cost: u64,
    limits: types::Limits,
) -> wasmtime::Result<types::RateDecision> {
    lend(s, request, None, Some(key));
    let out = b.angage_policy_rate_limit().call_check(&mut *s, lent_key(), lent_request(), cost, limits);
    take_back(s, out)
}

/// The enrich-usage call.
pub(crate) fn enrich(
    b: &usage_enricher::UsageEnricher,
    s: &mut Store<StoreData>,
    request: &Arc<PolicyRequest>,
    key: Option<&KeyRef>,
    draft: &types::UsageEvent,
) -> wasmtime::Result<types::UsageEvent> {
    lend(s, request, None, key);
    let out =
        b.angage_policy_enrich_usage().call_enrich(&mut *s, lent_request(), key.map(|_| lent_key()), draft);
    take_back(s, out)
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
        authenticate(self, store, &sample_request(), None).map(drop)
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
        authorize(self, store, &sample_key(), &sample_request()).map(drop)
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
        let key = sample_key();
        let limits = key_state(&key.key, &key.settings).limits;
        check(self, store, &key, &sample_request(), 1, limits).map(drop)
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
        let draft = types::UsageEvent {
            endpoint: "SMOKE /smoke".into(),
            module: "smoke".into(),
            key_id: None,
            status: 200,
            status_class: "2xx".into(),
            error_code: None,
            latency_us: 1,
            tags: Vec::new(),
        };
        enrich(self, store, &sample_request(), None, &draft).map(drop)
    }
}
