//! `Idempotency-Key` on POST: a retry with the same key and body gets the first answer again.
//! The request runs in a task of its own, so a client that disconnects mid-way does not cancel
//! it: the write either commits and its answer is stored for the retry, or fails and the claim
//! is released for a clean re-run.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::{AppState, Problem};
use angage_core::tenant::TenantId;
use angage_store::resources::idempotency::{self, Claim, Scope};
use tracing::Instrument;

use crate::pipeline::CallerKey;

pub(super) const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";

pub(super) async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (Some(key), Some(tenant), Some(caller)) = (
        req.headers().get(HEADER).cloned(),
        req.extensions().get::<TenantId>().cloned(),
        req.extensions().get::<CallerKey>().cloned(),
    ) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => k.to_owned(),
        _ => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    let (parts, body) = req.into_parts();
    let limit = state.settings.server.body_limit_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Problem::too_large().into_response();
    };
    let hash = request_hash(&parts.method, parts.uri.path(), &bytes);
    let scope = Scope { tenant, key_id: caller.0, idem_key: key };
    // From the claim on, the work runs in a task of its own: a client that goes away (its
    // request future dropped) can neither leave a claim behind nor cancel a write half-way.
    let run = async move {
        let claim = match idempotency::claim(&state.db, &scope, &hash, state.clock.now_ms()).await {
            Ok(c) => c,
            Err(e) => {
                return Problem::from(angage_store::resources::store::ResourceError::Db(e)).into_response();
            }
        };
        match claim {
            Claim::Replay { status, location, body } => replay(status, location, body),
            Claim::Mismatch => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request body",
            )
            .into_response(),
            Claim::InProgress => Problem::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still being processed; retry shortly",
            )
            .into_response(),
            Claim::Fresh => {
                let mut claimed = Claimed { state, scope: Some(scope) };
                let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
                claimed.remember(response).await
            }
        }
    };
    match tokio::spawn(run.instrument(tracing::Span::current())).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "an idempotent request's task failed");
            Problem::internal().into_response()
        }
    }
}

/// A claim held by a running request. Whatever happens to the request (it panics, the server
/// stops), a claim not completed is released when this goes.
struct Claimed {
    state: AppState,
    scope: Option<Scope>,
}

impl Claimed {
    /// Keeps outcomes a retry must see again (success and business conflicts); forgets the rest
    /// so a corrected request can reuse the key.
    async fn remember(&mut self, response: Response) -> Response {
        let Some(scope) = self.scope.take() else { return response };
        let state = &self.state;
        let status = response.status();
        if !(status.is_success() || status == StatusCode::CONFLICT) {
            if let Err(e) = idempotency::release(&state.db, &scope).await {
                tracing::warn!(error = %e, "cannot release an idempotency key");
            }
            return response;
        }
        let (parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return Problem::internal().into_response();
        };
        let location = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = idempotency::complete(&state.db, &scope, status.as_u16(), location, &text).await {
            tracing::warn!(error = %e, "cannot store an idempotent response");
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            let db = self.state.db.clone();
            tokio::spawn(async move {
                if let Err(e) = idempotency::release(&db, &scope).await {
                    tracing::warn!(error = %e, "cannot release an idempotency key; its lease will expire");
                }
            });
        }
    }
}

fn replay(status: u16, location: Option<String>, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() { "application/json" } else { "application/problem+json" };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, v);
    }
    response
}

fn request_hash(method: &Method, path: &str, body: &Bytes) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update([0]);
    h.update(path);
    h.update([0]);
    // Key order and white space do not make a different request.
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => h.update(value.to_string()),
        Err(_) => h.update(body),
    }
    hex::encode(h.finalize())
}
