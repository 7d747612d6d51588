//! The HTTP edge: the only module that knows axum. Domain code returns typed errors; this module
//! turns them into responses.

pub mod admin;
mod docs;
mod health;
mod observe;
mod problem;
mod tenancy;
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
    /// Test-only stand-in for authentication: resolve the tenant from `X-Test-Tenant`.
    pub test_tenant_header: bool,
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
                .route_layer(middleware::from_fn_with_state(state.clone(), tenancy::resolve)),
        )
        .merge(admin::router(state.clone()))
        .route("/v1/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::page))
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
