//! Liveness, readiness and the Prometheus scrape endpoint.

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, Problem};

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers. Redis, when configured, is reported too: while it is down
/// the node is `degraded` (still ready) unless `redis.failure = "closed"` makes it refuse.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if !state.db.ready().await {
        return Problem::unavailable("database_unavailable", "The database is not reachable").into_response();
    }
    let Some(redis) = &state.redis else {
        return Json(json!({ "status": "ready", "database": "ok" })).into_response();
    };
    if redis.ping().await {
        return Json(json!({ "status": "ready", "database": "ok", "redis": "ok" })).into_response();
    }
    if state.settings.redis.failure == angage_core::config::RedisFailure::Closed {
        return Problem::unavailable(
            "redis_unavailable",
            "Redis is not reachable and redis.failure is closed",
        )
        .into_response();
    }
    let fallback = match state.settings.redis.failure {
        angage_core::config::RedisFailure::Local => "counting on this node alone",
        _ => "not counting",
    };
    Json(json!({ "status": "degraded", "database": "ok", "redis": "unavailable", "rate_limits": fallback }))
        .into_response()
}

/// The Prometheus scrape: it names tenants' routes and traffic, so it answers a client on a
/// loopback address or one that presents `server.metrics_token`.
pub(crate) async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let token = &state.settings.server.metrics_token;
    let allowed = if token.is_empty() {
        peer.ip().to_canonical().is_loopback()
    } else {
        crate::bearer::presents(&headers, token)
    };
    if !allowed {
        let detail = if token.is_empty() {
            "Metrics are served on loopback addresses only (or set server.metrics_token)"
        } else {
            "Send the metrics token as `Authorization: Bearer ...`"
        };
        return Problem::new(StatusCode::FORBIDDEN, "metrics_forbidden", detail).into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}
