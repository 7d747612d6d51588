//! The HTTP edge: the only crate that knows axum. Domain crates return typed errors; this crate
//! turns them into responses. It reaches the policy engine only through the core's `Policy`
//! façade, so it links no WebAssembly runtime.

pub mod admin;
mod bearer;
mod chart;
mod console;
mod docs;
mod health;
mod oauth;
mod observe;
mod origin;
mod oversize;
mod pipeline;
mod problem;
mod rate_headers;
mod serve;
mod shed;
mod tls;
pub mod v1;

use std::sync::Arc;

use angage_core::clock::Clock;
use angage_core::config::Settings;
use angage_core::policy::Policy;
use angage_rules::RuleSet;
use angage_store::admins::throttle::LoginThrottle;
use angage_store::db::Db;
use angage_store::keys::cache::KeyCache;
use angage_store::tenants::cache::SettingsCache;
use angage_store::usage::UsageSink;
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

pub use observe::REQUEST_ID;
pub use origin::TrustedProxies;
pub use problem::{Problem, ProblemBody, ProblemCode};
pub use serve::{Listener, serve};
pub use shed::InFlight;
pub use tls::{Tls, TlsError};

/// Shared state of one running app.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub db: Db,
    pub metrics: PrometheusHandle,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<KeyCache>,
    pub throttle: LoginThrottle,
    /// Password checks allowed at once (`admin.password_checks`).
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// The policy stages every `/v1` request passes.
    pub policy: Arc<dyn Policy>,
    pub usage: UsageSink,
    pub tenant_settings: Arc<SettingsCache>,
    pub rules: Arc<RuleSet>,
    /// `server.trusted_proxies`, parsed.
    pub proxies: TrustedProxies,
    /// Requests being answered now, against `server.max_in_flight`.
    pub in_flight: InFlight,
    /// Redis, when `redis.url` is set (for readiness).
    pub redis: Option<angage_store::shared::Redis>,
    /// Seals webhook signing secrets at rest.
    pub sealer: angage_store::webhooks::Sealer,
    /// `server.tls`, loaded: HTTPS on the server's own port.
    pub tls: Option<Arc<Tls>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

/// The whole router with its middleware.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.server.body_limit_bytes;
    Router::new()
        .merge(
            v1::router(state.clone())
                .route_layer(middleware::from_fn_with_state(state.clone(), pipeline::run)),
        )
        .merge(admin::router(state.clone()))
        .route("/v1/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::page))
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/assets/app.js", get(console::app_js))
        .route("/console/assets/app.css", get(console::app_css))
        .route("/docs/assets/swagger-ui-bundle.js", get(docs::swagger_js))
        .route("/docs/assets/swagger-ui.css", get(docs::swagger_css))
        .route("/docs/assets/start.js", get(docs::start_js))
        .route("/oauth/authorize", get(oauth::authorize_start))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/.well-known/oauth-authorization-server", get(oauth::metadata))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route_layer(middleware::from_fn(observe::record_route))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(problem::problems_only))
        .layer(middleware::from_fn_with_state(state.clone(), origin::layer))
        .layer(middleware::from_fn_with_state(state.clone(), shed::layer))
        .layer(middleware::from_fn(observe::observe))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("No route for {}", uri.path()))
}
