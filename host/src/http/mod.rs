//! The HTTP edge: the only module that knows axum. Domain code returns typed errors; this module
//! turns them into responses.

pub mod admin;
mod console;
pub(crate) mod docs;
pub mod enrich;
mod health;
pub mod lanes;
mod observe;
mod oversize;
pub mod pipeline;
mod problem;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admins::throttle::LoginThrottle;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::keys::cache::KeyCache;
use crate::plugins::PluginRuntime;
use crate::rules::RuleSet;
use crate::tenants::flags::SettingsCache;
use crate::usage::UsageSink;

pub use observe::REQUEST_ID;
pub use problem::{Problem, ProblemBody, ProblemCode};

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
    pub plugins: Arc<PluginRuntime>,
    pub usage: UsageSink,
    /// Finished exchanges waiting for enrich-usage.
    pub enrich: enrich::EnrichQueue,
    pub tenant_settings: Arc<SettingsCache>,
    /// The lanes that run the request-path policy stages.
    pub lanes: lanes::PolicyLanes,
    pub rules: Arc<RuleSet>,
    /// Bench-only: skip the policy stages (tenant from the key; no plugins, rules or limits;
    /// usage still recorded from the host's own event).
    pub bypass_policies: bool,
    /// Test-only: record the latency given in `x-test-latency-us` instead of the measured one.
    pub latency_header: bool,
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
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route_layer(middleware::from_fn(observe::record_route))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(observe::observe))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("No route for {}", uri.path()))
}
