//! The request and key the host lends plugins as WIT resources. A stage call puts them in its
//! store (`Lent`) for the length of the call and hands the plugin borrowed handles with fixed
//! numbers; keys a plugin owns (from `lookup-key`) live in the store's resource table. A plugin
//! reads fields through the methods below, so only what it asks for is copied into its memory.

use std::sync::Arc;

use http::HeaderMap;
use wasmtime::component::Resource;

use super::bindings::types;
use super::store_data::StoreData;
use crate::keys::store::KeyRecord;
use crate::keys::{Access, Environment, Limits};

/// What the host knows about a request before any stage runs; the stages and the tenant's
/// rule share one copy.
pub struct PolicyRequest {
    pub method: String,
    /// The matched route template, e.g. `/v1/customers/{id}`.
    pub route: String,
    pub path: String,
    /// The module the route belongs to (`customers`, ...).
    pub module: String,
    pub operation: types::Operation,
    pub headers: HeaderMap,
    /// The TCP peer's address.
    pub client_ip: String,
    pub scheme: &'static str,
    pub time_ms: i64,
    /// The key the pipeline already looked up for the request's credential.
    pub prefetched: Option<Prefetched>,
}

/// A credential the host has resolved: `lookup-key` for the same string during this request
/// answers with the key without hashing it again.
pub struct Prefetched {
    pub presented: String,
    pub key: Arc<KeyRecord>,
}

// Headers and the credential hold the caller's secret: never printed.
impl std::fmt::Debug for PolicyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRequest")
            .field("method", &self.method)
            .field("route", &self.route)
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

impl PolicyRequest {
    /// The module of a `/v1/<module>/...` route; empty for any other path.
    pub fn module_of(route: &str) -> &str {
        route.split('/').nth(2).unwrap_or("")
    }

    /// The key the request's credential belongs to, when the store knows it.
    pub fn known(&self) -> Option<&Arc<KeyRecord>> {
        self.prefetched.as_ref().map(|p| &p.key)
    }

    /// GET, HEAD and OPTIONS read; every other method writes.
    pub fn operation_of(method: &str) -> types::Operation {
        if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            types::Operation::Read
        } else {
            types::Operation::Write
        }
    }
}

/// The WIT `request` resource. A request is only ever lent, never owned by a plugin: the handle
/// names `Lent::request`.
pub struct RequestRef;

/// A key handed to a plugin (by `lookup-key`); the caller's key is lent (`Lent::key`).
pub struct KeyRef(pub Arc<KeyRecord>);

/// What one stage call lends its plugin. Borrowed handles carry these fixed numbers instead of a
/// resource-table entry: lending costs no allocation, and the component model already stops a
/// plugin from keeping a borrowed handle past the call.
#[derive(Default)]
pub struct Lent {
    pub request: Option<Arc<PolicyRequest>>,
    pub key: Option<Arc<KeyRecord>>,
}

/// The handle number of the lent request.
pub const LENT_REQUEST: u32 = u32::MAX;
/// The handle number of the lent key; the resource table never grows this far.
pub const LENT_KEY: u32 = u32::MAX - 1;

impl StoreData {
    fn request(&self, r: &Resource<RequestRef>) -> wasmtime::Result<&PolicyRequest> {
        match (&self.lent.request, r.rep()) {
            (Some(request), LENT_REQUEST) => Ok(request),
            _ => wasmtime::bail!("no request is lent under handle {}", r.rep()),
        }
    }

    fn key(&self, k: &Resource<KeyRef>) -> wasmtime::Result<&KeyRecord> {
        match (&self.lent.key, k.rep()) {
            (Some(key), LENT_KEY) => Ok(key),
            (None, LENT_KEY) => wasmtime::bail!("no key is lent"),
            _ => Ok(&self.table.get(k)?.0),
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
        Ok(self.request(&r)?.operation)
    }

    fn header(&mut self, r: Resource<RequestRef>, name: String) -> wasmtime::Result<Option<String>> {
        // `HeaderMap` matches names without regard to case.
        let value = self.request(&r)?.headers.get(name.as_str());
        Ok(value.and_then(|v| v.to_str().ok()).map(str::to_owned))
    }

    fn headers(&mut self, r: Resource<RequestRef>) -> wasmtime::Result<Vec<types::Header>> {
        let headers = &self.request(&r)?.headers;
        Ok(headers
            .iter()
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
        Ok(self.key(&k)?.id.clone())
    }

    fn tenant_id(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<String> {
        Ok(self.key(&k)?.tenant_id.clone())
    }

    fn tenant(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<String> {
        Ok(self.key(&k)?.tenant_slug.clone())
    }

    fn app_name(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<String> {
        Ok(self.key(&k)?.name.clone())
    }

    fn state(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<types::KeyState> {
        Ok(key_state(self.key(&k)?))
    }

    fn access(&mut self, k: Resource<KeyRef>, module: String) -> wasmtime::Result<types::Access> {
        Ok(self.key(&k)?.grants.get(&module).map_or(types::Access::None, |a| to_wit_access(*a)))
    }

    fn grants(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<Vec<types::Grant>> {
        let grants = &self.key(&k)?.grants;
        Ok(grants
            .iter()
            .map(|(module, access)| types::Grant { module: module.clone(), access: to_wit_access(*access) })
            .collect())
    }

    fn ip_allowlist(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<Vec<String>> {
        Ok(self.key(&k)?.ip_allowlist.iter().map(ToString::to_string).collect())
    }

    fn drop(&mut self, k: Resource<KeyRef>) -> wasmtime::Result<()> {
        // Only keys from `lookup-key` are owned by the plugin, so only those are dropped.
        self.take_key(k).map(drop)
    }
}

pub fn key_state(r: &KeyRecord) -> types::KeyState {
    types::KeyState {
        environment: match r.environment {
            Environment::Live => types::Environment::Live,
            Environment::Test => types::Environment::Test,
        },
        revoked: r.revoked_at.is_some(),
        expires_at_ms: r.expires_at,
        require_https: r.require_https,
        ip_restricted: !r.ip_allowlist.is_empty(),
        limits: to_wit_limits(&r.limits, r.burst_window_seconds),
    }
}

fn to_wit_access(a: Access) -> types::Access {
    match a {
        Access::None => types::Access::None,
        Access::Read => types::Access::Read,
        Access::ReadWrite => types::Access::ReadWrite,
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
