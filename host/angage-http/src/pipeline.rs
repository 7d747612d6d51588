//! The `/v1` middleware: HTTP mapping around one call into the policy façade. It turns the
//! request into a `PolicyRequest`, the `Verdict` into a refusal or the handler's response (one
//! place), adds the rate-limit headers, and reports the finished exchange.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use angage_core::policy::{Exchange, Operation, Outcome, PolicyRequest, Refusal};
use angage_core::signing::{self, DigestCheck};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::observe::RequestId;
use super::origin::Origin;
use super::rate_headers::rate_headers;
use super::tls::OverTls;
use super::{AppState, Problem, ProblemCode};

pub(crate) async fn run(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let request = policy_request(&req, matched, state.clock.now_ms());
    let verdict = state.policy.decide(request.clone()).await;
    let mut response = match &verdict.outcome {
        Outcome::Allowed { tenant } => {
            req.extensions_mut().insert(tenant.clone());
            if let Some(key) = verdict.caller.as_ref().or(verdict.presented.as_ref()) {
                req.extensions_mut().insert(CallerKey(key.id.clone()));
            }
            match digested(req, state.settings.server.body_limit_bytes).await {
                Ok(req) => next.run(req).await,
                Err(problem) => problem.into_response(),
            }
        }
        Outcome::Refused(refusal) => refused(refusal, verdict.rule.clone()),
    };
    if let Some(rate) = &verdict.rate {
        rate_headers(response.headers_mut(), rate);
    }
    let status = response.status().as_u16();
    let latency_us = start.elapsed().as_micros() as u64;
    let environment =
        verdict.caller.as_ref().or(verdict.presented.as_ref()).map_or("none", |k| k.environment.as_str());
    let labels = [
        ("route", request.route.clone()),
        ("status", status.to_string()),
        ("environment", environment.to_owned()),
    ];
    metrics::counter!("angage_api_requests_total", &labels).increment(1);
    metrics::histogram!("angage_api_request_duration_seconds", &labels[..1]).record(latency_us as f64 / 1e6);
    if status == 429 {
        metrics::counter!("angage_rate_limited_total", &labels[..1]).increment(1);
    }
    let problem = response.extensions().get::<ProblemCode>().cloned();
    let (error_code, error_detail) = problem.map_or((None, None), |p| (Some(p.code), p.detail));
    state.policy.finished(Exchange { request, verdict, status, error_code, error_detail, latency_us });
    response
}

/// A request with a `Content-Digest` (RFC 9530) reaches its handler only with the body it
/// names: the body is read (within the body limit) and checked first. A signature covers the
/// header; this ties the header to the bytes.
async fn digested(req: Request, limit: usize) -> Result<Request, Problem> {
    let Some(header) = req.headers().get("content-digest") else { return Ok(req) };
    let header = header.to_str().unwrap_or("").to_owned();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The body exceeds {limit} bytes"),
        )
    })?;
    let refuse = |code: &str, detail: String| Err(Problem::new(StatusCode::BAD_REQUEST, code, detail));
    match signing::check_content_digest(&header, &bytes) {
        DigestCheck::Matches => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        DigestCheck::Differs(alg) => refuse(
            "content_digest_mismatch",
            format!("The body does not match its Content-Digest ({alg}); it changed after it was digested"),
        ),
        DigestCheck::Unsupported => {
            refuse("unsupported_digest", "Content-Digest must carry a sha-256 or sha-512 digest".into())
        }
        DigestCheck::Malformed(e) => refuse("invalid_content_digest", e.to_string()),
    }
}

/// The API key a served request acts with (idempotency keys are scoped by it).
#[derive(Debug, Clone)]
pub(crate) struct CallerKey(pub(crate) String);

/// The one place a refusal becomes a response.
fn refused(r: &Refusal, rule: Option<String>) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut problem = Problem::new(status, &r.code, r.detail.clone()).with_rule(rule);
    if let Some(retry) = r.retry_after {
        problem = problem.with_header(header::RETRY_AFTER, HeaderValue::from(retry));
    }
    problem.into_response()
}

/// The request's headers, with `Host` from the URI's authority when the request has none
/// (HTTP/2 sends `:authority` instead): stages and signatures read one name for it.
fn with_host(req: &Request) -> axum::http::HeaderMap {
    let mut headers = req.headers().clone();
    if !headers.contains_key(header::HOST)
        && let Some(value) = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(header::HOST, value);
    }
    headers
}

fn policy_request(req: &Request, matched: Option<MatchedPath>, now: i64) -> Arc<PolicyRequest> {
    let route = matched.map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let client_ip =
        req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    let judged = req.extensions().get::<Origin>();
    let origin = judged.and_then(|o| o.ip);
    let method = req.method().as_str().to_owned();
    Arc::new(PolicyRequest {
        module: PolicyRequest::module_of(&route).to_owned(),
        operation: Operation::of(&method),
        route,
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        method,
        headers: with_host(req),
        client_ip,
        origin,
        scheme: if req.uri().scheme_str() == Some("https") || req.extensions().get::<OverTls>().is_some() {
            "https"
        } else {
            "http"
        },
        https: judged.is_some_and(|o| o.https),
        time_ms: now,
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default(),
    })
}
