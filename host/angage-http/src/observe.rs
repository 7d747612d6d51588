//! Request spans, request ids and HTTP metrics for every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::{Instrument, field};

pub const REQUEST_ID: &str = "x-request-id";

/// The request's id, as its response will carry it.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

/// The route template a request matched, recorded by [`record_route`] for [`observe`].
#[derive(Debug, Clone)]
pub(crate) struct RouteTemplate(pub String);

/// Outermost layer: opens the `http.request` span, takes or makes the request id, echoes it and
/// records `angage_http_requests_total` and `angage_http_request_duration_seconds`.
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http.request",
        method = %method,
        route = field::Empty,
        request_id = %request_id,
        status = field::Empty,
        latency_ms = field::Empty,
    );
    let start = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let route =
        response.extensions().get::<RouteTemplate>().map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    let status = response.status().as_u16();
    span.record("route", route.as_str());
    span.record("status", status);
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::info!("request finished"));
    let labels =
        [("method", method_label(&method).to_owned()), ("route", route), ("status", status.to_string())];
    metrics::counter!("angage_http_requests_total", &labels).increment(1);
    metrics::histogram!("angage_http_request_duration_seconds", &labels[..2]).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The method as a metric label: the standard ones by name, anything a client made up as
/// `other`, so no client can mint label values.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Route layer: runs after routing, so it knows the template (`/v1/customers/{id}`).
pub(crate) async fn record_route(path: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if let Some(path) = path {
        response.extensions_mut().insert(RouteTemplate(path.as_str().to_owned()));
    }
    response
}

/// Accepts ids a proxy or client would plausibly send; anything else is replaced.
fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}
