//! The policy façade's contract: what the HTTP edge asks the policy engine and what it hears
//! back, in host-native types. The engine (plugins, lanes, rules) implements [`Policy`]; the
//! edge renders a [`Verdict`] and reports the finished [`Exchange`]. Neither side sees the
//! other's types: no WIT type and no axum type crosses here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use crate::key::KeyRecord;
use crate::settings::TenantSettings;
use crate::tenant::TenantId;

/// What a request does to its module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

impl Operation {
    /// GET, HEAD and OPTIONS read; every other method writes.
    pub fn of(method: &str) -> Self {
        if matches!(method, "GET" | "HEAD" | "OPTIONS") { Self::Read } else { Self::Write }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// What the host knows about a request before any stage runs; the stages, the tenant's rule and
/// the usage event share one copy.
pub struct PolicyRequest {
    pub method: String,
    /// The matched route template, e.g. `/v1/customers/{id}`.
    pub route: String,
    pub path: String,
    /// The query string as sent (without `?`), when there is one.
    pub query: Option<String>,
    /// The module the route belongs to (`customers`, ...).
    pub module: String,
    pub operation: Operation,
    pub headers: HeaderMap,
    /// The TCP peer's address (a proxy, when there is one), as the contract gives plugins.
    pub client_ip: String,
    /// The client's address as the host judges it: behind `server.trusted_proxies`, the
    /// rightmost forwarded address that is not one of them.
    pub origin: Option<std::net::IpAddr>,
    pub scheme: &'static str,
    /// Whether the request reached the host over HTTPS as the host judges it: TLS on its own
    /// connection, or `https` forwarded by a trusted proxy.
    pub https: bool,
    pub time_ms: i64,
    /// The id the response carries in `X-Request-Id`.
    pub request_id: String,
}

impl PolicyRequest {
    /// The module of a `/v1/<module>/...` route; empty for any other path.
    pub fn module_of(route: &str) -> &str {
        route.split('/').nth(2).unwrap_or("")
    }
}

// Headers hold the caller's secret: never printed.
impl std::fmt::Debug for PolicyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRequest")
            .field("method", &self.method)
            .field("route", &self.route)
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

/// What the stages decided, with everything the edge needs to answer.
#[derive(Debug)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The authenticated caller, and its tenant's settings as the stages read them.
    pub caller: Option<Arc<KeyRecord>>,
    pub settings: Option<Arc<TenantSettings>>,
    /// The key the request's credential names, when the store knows it (also when a stage
    /// refused it): a refused request still counts for that key's tenant.
    pub presented: Option<Arc<KeyRecord>>,
    /// The rate-limit state to announce in headers (absent when the tenant turned them off).
    pub rate: Option<RateState>,
    /// `name@vN` of the limit rule that applied.
    pub rule: Option<String>,
}

/// Serve the request, or refuse it.
#[derive(Debug)]
pub enum Outcome {
    Allowed { tenant: TenantId },
    Refused(Refusal),
}

/// A refusal: answered with this status and an RFC 9457 body with this `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

/// Every rate-limit window after a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateState {
    pub windows: Vec<WindowState>,
    /// The window that refused the request, when one did.
    pub denied_window: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    /// `second`, `burst`, `minute`, `hour` or `day`.
    pub name: String,
    pub window_seconds: u64,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window frees capacity.
    pub reset_seconds: u64,
}

/// A finished exchange, reported after the response is decided.
#[derive(Debug)]
pub struct Exchange {
    pub request: Arc<PolicyRequest>,
    pub verdict: Verdict,
    pub status: u16,
    /// The `code` and `detail` of a problem response.
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub latency_us: u64,
}

/// A boxed future, so the façade can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The policy engine as the edge sees it.
pub trait Policy: Send + Sync + 'static {
    /// Runs authenticate, authorize, the tenant rule and rate-limit for one request.
    fn decide(&self, request: Arc<PolicyRequest>) -> BoxFuture<'_, Verdict>;
    /// Records the exchange (enrich-usage runs later and never changes the answer).
    fn finished(&self, exchange: Exchange);
    /// Which plugin serves each stage, for the admin API.
    fn status(&self) -> Vec<StageStatus>;
    /// Checks a component as plugin `name` the way every node would load it, without serving
    /// it: the plugin's own version, or why no node would take it.
    fn check_plugin(&self, name: String, bytes: Arc<[u8]>) -> BoxFuture<'_, Result<String, String>>;
}

/// A pipeline stage a plugin serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
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
}

/// What `GET /admin/v1/plugins` shows for a stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageStatus {
    pub stage: Stage,
    /// The configured plugin name.
    pub plugin: String,
    /// `builtin` or `file`.
    pub source: &'static str,
    pub file: Option<String>,
    /// The plugin's own version, from its `info` export.
    pub version: String,
    /// The contract version it was checked against.
    pub contract: &'static str,
    pub content_hash: String,
    pub loaded_at: String,
    /// Successful swaps since start.
    pub reloads: u64,
    /// The last failed load, while the previous version keeps serving.
    pub last_error: Option<LoadFailure>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoadFailure {
    pub message: String,
    pub file: String,
    pub at: String,
}
