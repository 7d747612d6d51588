//! The `/v1` policy pipeline: authenticate (wasm) -> authorize (wasm) -> tenant rule ->
//! rate-limit (wasm), run in the request's lane (`lanes.rs`) -> handler -> rate-limit headers;
//! then enrich-usage (wasm) after the response is decided, off the response path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::enrich::Exchange;
use super::lanes::Verdict;
use super::{AppState, Problem, ProblemCode};
use crate::keys::cache::Lookup;
use crate::keys::store::KeyRecord;
use crate::plugins::Stage;
use crate::plugins::bindings::types;
use crate::plugins::handles::{PolicyRequest, Prefetched};
use crate::resources::store::TenantId;

pub async fn run(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let now = state.clock.now_ms();
    let route = matched.map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let peer =
        req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    // Warm the key cache without blocking a worker inside the plugin call; a known key also
    // lets a refusal (revoked, expired, ...) count in its tenant's usage.
    let prefetched = match credential(req.headers()) {
        Some(presented) => match state.keys.lookup(&state.db, presented, now).await {
            Ok(Lookup::Found(record)) => Some(Prefetched { presented: presented.to_owned(), key: record }),
            _ => None,
        },
        None => None,
    };
    let info = policy_request(&req, route, peer, now, prefetched);
    let latency_override =
        state.latency_header.then(|| header_u64(req.headers(), "x-test-latency-us")).flatten();
    let start = Stopwatch { start, latency_override };
    if state.bypass_policies {
        return bypass(&state, info, req, next, start).await;
    }
    // The prefetched key's tenant settings, read here so a cache miss waits in this request's
    // task rather than in its lane.
    let settings = match info.known() {
        Some(k) => Some(state.tenant_settings.get(&state.db, &k.tenant_id, now).await),
        None => None,
    };
    let (principal, settings, rule, decision) = match state.lanes.decide(info.clone(), settings).await {
        Verdict::Checked { key, settings, rule, decision } => (key, settings, rule, decision),
        Verdict::Denied { key, denial } => return finish(&state, info, key, denied(denial), start),
        Verdict::Unavailable { key, stage, error } => {
            return finish(&state, info, key, unavailable(Some(stage), &error), start);
        }
        Verdict::NoSettings { key, error } => {
            tracing::error!(error = %error, "tenant settings");
            let response = Problem::unavailable("database_unavailable", "Retry later").into_response();
            return finish(&state, info, Some(key), response, start);
        }
        Verdict::Lost => {
            return finish(&state, info, None, unavailable(None, &"its lane dropped the request"), start);
        }
    };
    let headers_on = settings.rate_limits.send_rate_limit_headers;
    if let Some(d) = decision.as_ref().filter(|d| !d.allowed) {
        let window = d.denied_window.as_deref().unwrap_or("window");
        let retry = d.retry_after_seconds.unwrap_or(1);
        let mut problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Rate limit exceeded for the {window} window; retry in {retry} seconds"),
        );
        if settings.rate_limits.send_retry_after {
            problem = problem.with_header(header::RETRY_AFTER, HeaderValue::from(retry));
        }
        problem = problem.with_rule(rule.clone());
        let mut response = problem.into_response();
        if headers_on {
            rate_headers(response.headers_mut(), d);
        }
        return finish_with(&state, info, Some(principal), response, start, rule);
    }

    req.extensions_mut().insert(TenantId(principal.tenant_id.clone()));
    let mut response = next.run(req).await;
    if let (Some(d), true) = (&decision, headers_on) {
        rate_headers(response.headers_mut(), d);
    }
    finish_with(&state, info, Some(principal), response, start, rule)
}

/// Bench-only: the policy stages (plugins and rules) skipped; the key is still looked up for its
/// tenant and the exchange is recorded from the host's own usage event, so a comparison measures
/// the stages and nothing else.
async fn bypass(
    state: &AppState,
    info: Arc<PolicyRequest>,
    mut req: Request,
    next: Next,
    start: Stopwatch,
) -> Response {
    let Some(tenant_id) = info.prefetched.as_ref().map(|p| p.key.tenant_id.clone()) else {
        let response =
            Problem::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "Invalid API key").into_response();
        return finish(state, info, None, response, start);
    };
    req.extensions_mut().insert(TenantId(tenant_id));
    let response = next.run(req).await;
    finish(state, info, None, response, start)
}

/// When the request started, and what the usage record needs from before the stages ran.
struct Stopwatch {
    start: Instant,
    /// Tests inject latencies (`x-test-latency-us`) so percentiles can be asserted exactly.
    latency_override: Option<u64>,
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

fn finish(
    state: &AppState,
    request: Arc<PolicyRequest>,
    principal: Option<Arc<KeyRecord>>,
    response: Response,
    start: Stopwatch,
) -> Response {
    finish_with(state, request, principal, response, start, None)
}

/// Records the exchange (enrich-usage runs after the response is decided and never changes it).
fn finish_with(
    state: &AppState,
    request: Arc<PolicyRequest>,
    principal: Option<Arc<KeyRecord>>,
    response: Response,
    start: Stopwatch,
    rule: Option<String>,
) -> Response {
    let status = response.status().as_u16();
    let problem = response.extensions().get::<ProblemCode>().cloned();
    let error_code = problem.as_ref().map(|p| p.code.clone());
    let error_detail = problem.and_then(|p| p.detail);
    let latency_us = start.latency_override.unwrap_or_else(|| start.start.elapsed().as_micros() as u64);
    let environment =
        principal.as_ref().or(request.known()).map_or("none", |k| k.environment.as_str()).to_owned();
    let labels =
        [("route", request.route.clone()), ("status", status.to_string()), ("environment", environment)];
    metrics::counter!("angage_api_requests_total", &labels).increment(1);
    metrics::histogram!("angage_api_request_duration_seconds", &labels[..1]).record(latency_us as f64 / 1e6);
    if status == 429 {
        metrics::counter!("angage_rate_limited_total", &labels[..1]).increment(1);
    }
    state.enrich.push(Exchange {
        request,
        key: principal,
        status,
        error_code,
        error_detail,
        latency_us,
        rule,
        ticket: state.usage.ticket(),
    });
    response
}

fn denied(d: types::Denial) -> Response {
    let status =
        StatusCode::from_u16(d.status).ok().filter(|s| s.is_client_error()).unwrap_or(StatusCode::FORBIDDEN);
    Problem::new(status, &d.code, d.detail).into_response()
}

/// 503 for a stage that failed (or, without a stage, a lane that stopped).
fn unavailable(stage: Option<Stage>, e: &dyn std::fmt::Display) -> Response {
    let name = stage.map_or("policy", Stage::as_str);
    tracing::error!(stage = name, error = %e, "policy stage failed; failing closed");
    let detail = match stage {
        Some(_) => format!("The {name} policy is unavailable; retry later"),
        None => "The policy stages are unavailable; retry later".to_owned(),
    };
    Problem::unavailable("policy_unavailable", detail).into_response()
}

/// `Authorization: Bearer ...` or `X-API-Key: ...`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim);
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

fn policy_request(
    req: &Request,
    route: String,
    client_ip: String,
    now: i64,
    prefetched: Option<Prefetched>,
) -> Arc<PolicyRequest> {
    let method = req.method().as_str().to_owned();
    Arc::new(PolicyRequest {
        module: PolicyRequest::module_of(&route).to_owned(),
        operation: PolicyRequest::operation_of(&method),
        route,
        path: req.uri().path().to_owned(),
        method,
        headers: req.headers().clone(),
        client_ip,
        scheme: if req.uri().scheme_str() == Some("https") { "https" } else { "http" },
        time_ms: now,
        prefetched,
    })
}

/// `X-RateLimit-*` for the window closest to its limit, and the IETF `RateLimit-Policy` /
/// `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
fn rate_headers(headers: &mut HeaderMap, d: &types::RateDecision) {
    // Every `/v1` response carries these: names are built at compile time, numbers are
    // written without an intermediate string.
    const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    const STATE: HeaderName = HeaderName::from_static("ratelimit");
    let chosen = d
        .denied_window
        .as_ref()
        .and_then(|name| d.windows.iter().find(|w| &w.name == name))
        .or_else(|| d.windows.iter().min_by_key(|w| (w.remaining, w.window_seconds)));
    let Some(w) = chosen else { return };
    // One growth for all five: growing a header map one entry at a time reallocates it more
    // than once per response.
    headers.reserve(5);
    headers.insert(LIMIT, HeaderValue::from(w.limit));
    headers.insert(REMAINING, HeaderValue::from(w.remaining));
    headers.insert(RESET, HeaderValue::from(w.reset_seconds));
    if let Some(v) = policy_value(&d.windows) {
        headers.insert(POLICY, v);
    }
    if let Ok(v) = HeaderValue::try_from(format!("\"{}\";r={};t={}", w.name, w.remaining, w.reset_seconds)) {
        headers.insert(STATE, v);
    }
}

/// `RateLimit-Policy` for these windows. A key's windows change only when its limits do, so
/// each thread keeps the value it made last and hands out clones of it (a reference count, no
/// formatting) while the windows stay the same.
fn policy_value(windows: &[types::WindowState]) -> Option<HeaderValue> {
    use std::cell::RefCell;
    use std::fmt::Write;

    type Shape = Vec<(String, u64, u64)>;
    thread_local! {
        static LAST: RefCell<Option<(Shape, HeaderValue)>> = const { RefCell::new(None) };
    }
    let same = |shape: &Shape| {
        shape.len() == windows.len()
            && shape.iter().zip(windows).all(|((name, limit, seconds), w)| {
                *name == w.name && *limit == w.limit && *seconds == w.window_seconds
            })
    };
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((shape, value)) = last.as_ref()
            && same(shape)
        {
            return Some(value.clone());
        }
        let mut policy = String::with_capacity(windows.len() * 32);
        for (i, p) in windows.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(policy, "{sep}\"{}\";q={};w={}", p.name, p.limit, p.window_seconds);
        }
        let value = HeaderValue::try_from(policy).ok()?;
        let shape = windows.iter().map(|w| (w.name.clone(), w.limit, w.window_seconds)).collect();
        *last = Some((shape, value.clone()));
        Some(value)
    })
}
