//! A host for native unit tests: keys, counters, a clock, configuration and captured logs, on
//! the current thread, and the requests and keys a test hands to a plugin. In a `wasm32` build
//! the real host is used and nothing here runs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::{
    Access, ChargeResult, CounterOp, Environment, Grant, Header, KeyState, Level, Limits, Operation, Refusal,
};

/// What a test sets up and later inspects.
#[derive(Debug, Default, Clone)]
pub struct MockHost {
    state: Rc<RefCell<State>>,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, MockKey>,
    counters: HashMap<String, (u64, i64)>,
    now_ms: i64,
    config: String,
    logs: Vec<(Level, String)>,
    metrics: HashMap<String, u64>,
    lookups: usize,
    counter_reads: usize,
}

thread_local! {
    static CURRENT: RefCell<Option<MockHost>> = const { RefCell::new(None) };
}

impl MockHost {
    /// An empty host: no keys, time 0, configuration `{}`.
    pub fn new() -> Self {
        let host = Self::default();
        host.state.borrow_mut().config = "{}".into();
        host
    }

    /// Makes `presented` resolve to `key`.
    pub fn with_key(self, presented: &str, key: MockKey) -> Self {
        self.state.borrow_mut().keys.insert(presented.to_owned(), key);
        self
    }

    /// Sets the clock.
    pub fn with_time_ms(self, now_ms: i64) -> Self {
        self.state.borrow_mut().now_ms = now_ms;
        self
    }

    /// Sets the plugin's configuration JSON.
    pub fn with_config(self, json: &str) -> Self {
        self.state.borrow_mut().config = json.to_owned();
        self
    }

    /// Moves the clock.
    pub fn advance_ms(&self, ms: i64) {
        self.state.borrow_mut().now_ms += ms;
    }

    /// Makes this the host of the current thread (replacing any other).
    pub fn install(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// Log lines the plugin wrote.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// How many times the plugin asked to look a key up.
    pub fn lookups(&self) -> usize {
        self.state.borrow().lookups
    }

    /// How many times the plugin read counters (`get_counters` calls).
    pub fn counter_reads(&self) -> usize {
        self.state.borrow().counter_reads
    }

    /// A metric's total.
    pub fn metric(&self, name: &str) -> u64 {
        self.state.borrow().metrics.get(name).copied().unwrap_or(0)
    }
}

/// A request as a test describes it. The module and operation default to what the host would
/// derive from the route and method.
#[derive(Debug, Clone)]
pub struct MockRequest {
    method: String,
    route: String,
    path: String,
    module: String,
    operation: Operation,
    headers: Vec<Header>,
    client_ip: String,
    scheme: String,
    time_ms: i64,
}

impl MockRequest {
    /// `method` on `route` (a template such as `/v1/orders/{id}`, also used as the path), from
    /// 127.0.0.1 over http, with no headers.
    pub fn new(method: &str, route: &str) -> Self {
        let write = !matches!(method, "GET" | "HEAD" | "OPTIONS");
        Self {
            method: method.to_owned(),
            route: route.to_owned(),
            path: route.to_owned(),
            module: route.split('/').nth(2).unwrap_or("").to_owned(),
            operation: if write { Operation::Write } else { Operation::Read },
            headers: Vec::new(),
            client_ip: "127.0.0.1".into(),
            scheme: "http".into(),
            time_ms: 0,
        }
    }

    /// Adds a header (the name is stored lowercase, as the host sends it).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Header { name: name.to_ascii_lowercase(), value: value.to_owned() });
        self
    }

    /// Sets the request path.
    pub fn with_path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// Sets the host's module.
    pub fn with_module(mut self, module: &str) -> Self {
        self.module = module.to_owned();
        self
    }

    /// Sets the TCP peer's address.
    pub fn with_client_ip(mut self, ip: &str) -> Self {
        self.client_ip = ip.to_owned();
        self
    }

    /// Sets the listener's scheme.
    pub fn with_scheme(mut self, scheme: &str) -> Self {
        self.scheme = scheme.to_owned();
        self
    }

    /// Sets when the request arrived.
    pub fn with_time_ms(mut self, time_ms: i64) -> Self {
        self.time_ms = time_ms;
        self
    }

    /// The [`crate::Request`] a plugin receives.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn build(self) -> crate::Request {
        crate::Request::from_owned(self)
    }
}

// What `crate::Request` reads in a native build.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
impl MockRequest {
    pub(crate) fn method(&self) -> String {
        self.method.clone()
    }
    pub(crate) fn route(&self) -> String {
        self.route.clone()
    }
    pub(crate) fn path(&self) -> String {
        self.path.clone()
    }
    pub(crate) fn module(&self) -> String {
        self.module.clone()
    }
    pub(crate) fn operation(&self) -> Operation {
        self.operation
    }
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.clone())
    }
    pub(crate) fn headers(&self) -> Vec<Header> {
        self.headers.clone()
    }
    pub(crate) fn client_ip(&self) -> String {
        self.client_ip.clone()
    }
    pub(crate) fn scheme(&self) -> String {
        self.scheme.clone()
    }
    pub(crate) fn time_ms(&self) -> i64 {
        self.time_ms
    }
}

/// A key as a test describes it: a live key of tenant `demo` with read-write access to every
/// module and no limits, unless the fields say otherwise.
#[derive(Debug, Clone)]
pub struct MockKey {
    /// `key_...`
    pub id: String,
    /// The owning tenant's id.
    pub tenant_id: String,
    /// The owning tenant's slug.
    pub tenant: String,
    /// The calling application.
    pub app_name: String,
    /// `None` grants every module read-write access.
    pub grants: Option<Vec<Grant>>,
    /// Environment, revocation, expiry, restrictions and limits.
    pub state: KeyState,
    /// CIDR blocks; a non-empty list also sets `state.ip_restricted`.
    pub ip_allowlist: Vec<String>,
}

impl MockKey {
    /// A key with this id and the defaults above.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            tenant_id: "ten_demo".into(),
            tenant: "demo".into(),
            app_name: "app".into(),
            grants: None,
            state: KeyState {
                environment: Environment::Live,
                revoked: false,
                expires_at_ms: None,
                require_https: false,
                ip_restricted: false,
                limits: Limits {
                    per_second: None,
                    per_minute: None,
                    per_hour: None,
                    per_day: None,
                    burst: None,
                    burst_window_seconds: 1,
                },
            },
            ip_allowlist: Vec::new(),
        }
    }

    /// Only these grants (other modules: no access).
    pub fn with_grants(mut self, grants: &[(&str, Access)]) -> Self {
        self.grants =
            Some(grants.iter().map(|(m, a)| Grant { module: (*m).to_owned(), access: *a }).collect());
        self
    }

    /// A `test` key instead of a `live` one.
    pub fn test_environment(mut self) -> Self {
        self.state.environment = Environment::Test;
        self
    }

    /// Restricts the key to these CIDR blocks.
    pub fn with_ip_allowlist(mut self, cidrs: &[&str]) -> Self {
        self.ip_allowlist = cidrs.iter().map(|c| (*c).to_owned()).collect();
        self.state.ip_restricted = !self.ip_allowlist.is_empty();
        self
    }

    /// The [`crate::Key`] a plugin receives.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn build(self) -> crate::Key {
        crate::Key::from_owned(self)
    }
}

// What `crate::Key` reads in a native build.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
impl MockKey {
    pub(crate) fn id(&self) -> String {
        self.id.clone()
    }
    pub(crate) fn tenant_id(&self) -> String {
        self.tenant_id.clone()
    }
    pub(crate) fn tenant(&self) -> String {
        self.tenant.clone()
    }
    pub(crate) fn app_name(&self) -> String {
        self.app_name.clone()
    }
    pub(crate) fn state(&self) -> KeyState {
        self.state
    }
    pub(crate) fn access(&self, module: &str) -> Access {
        match &self.grants {
            None => Access::ReadWrite,
            Some(grants) => grants.iter().find(|g| g.module == module).map_or(Access::None, |g| g.access),
        }
    }
    pub(crate) fn grants(&self) -> Vec<Grant> {
        self.grants.clone().unwrap_or_default()
    }
    pub(crate) fn ip_allowlist(&self) -> Vec<String> {
        self.ip_allowlist.clone()
    }
}

/// The native implementations behind [`crate::host`], [`crate::Request`] and [`crate::Key`].
#[doc(hidden)]
pub mod native {
    use super::*;

    pub use super::{MockKey as Key, MockRequest as Request};

    fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
        CURRENT.with(|c| {
            let current = c.borrow();
            let host = current
                .as_ref()
                .expect("no MockHost installed on this thread: call MockHost::install() first");
            let mut state = host.state.borrow_mut();
            f(&mut state)
        })
    }

    pub fn lookup_key(presented: &str) -> Option<Key> {
        with(|s| {
            s.lookups += 1;
            s.keys.get(presented).cloned()
        })
    }

    pub fn check_and_increment(ops: &[CounterOp]) -> ChargeResult {
        with(|s| {
            let now = s.now_ms;
            s.counters.retain(|_, (_, expires)| *expires > now);
            let values: Vec<u64> = ops.iter().map(|op| s.counters.get(&op.key).map_or(0, |c| c.0)).collect();
            if let Some(index) = ops.iter().zip(&values).position(|(op, v)| v + op.cost > op.limit) {
                return ChargeResult::Refused(Refusal { index: index as u32, values });
            }
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                let ttl = i64::try_from(op.ttl_ms).unwrap_or(i64::MAX);
                let slot = s.counters.entry(op.key.clone()).or_insert((0, now.saturating_add(ttl)));
                slot.0 += op.cost;
                out.push(slot.0);
            }
            ChargeResult::Charged(out)
        })
    }

    pub fn get_counters(keys: &[String]) -> Vec<u64> {
        with(|s| {
            s.counter_reads += 1;
            let now = s.now_ms;
            keys.iter().map(|k| s.counters.get(k).filter(|c| c.1 > now).map_or(0, |c| c.0)).collect()
        })
    }

    pub fn now_ms() -> i64 {
        with(|s| s.now_ms)
    }

    pub fn log(level: Level, message: &str) {
        with(|s| s.logs.push((level, message.to_owned())))
    }

    pub fn metric_increment(name: &str, value: u64) {
        with(|s| *s.metrics.entry(name.to_owned()).or_default() += value)
    }

    pub fn config() -> String {
        with(|s| s.config.clone())
    }
}
