//! `/admin/v1/keys`: issue, list, show, change, revoke and rotate API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Admin;
use crate::v1::extract::{JsonBody, QueryMap, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_core::key::Environment;
use angage_core::validate::{Errors, Input, Need};
use angage_store::keys::store::{self, Actor, IssuedKey, KeyView};
use angage_store::keys::{Grace, KeyUpdate, NewKey};
use angage_store::resources::store::Page;

/// Issue a key
///
/// The response carries the secret in `key`: it is shown this once and never again.
#[utoipa::path(post, path = "/admin/v1/keys", tag = "API keys", operation_id = "createKey", request_body = NewKey,
    responses((status = 201, description = "Issued", body = IssuedKey), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let new = NewKey::parse(&body).map_err(invalid)?;
    let issued = store::create(
        &state.db,
        state.keys.pepper(),
        &admin.tenant,
        &Actor(admin.email),
        new,
        state.clock.now_ms(),
    )
    .await?;
    state.keys.invalidate_key(&issued.view.id);
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// List keys
#[utoipa::path(get, path = "/admin/v1/keys", tag = "API keys", operation_id = "listKeys",
    params(("environment" = Option<String>, Query, description = "live or test"), ("limit" = Option<i64>, Query), ("starting_after" = Option<String>, Query)),
    responses((status = 200, description = "Keys, newest first; never their secrets", body = Page<KeyView>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list(
    State(state): State<AppState>,
    Admin(admin): Admin,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&["environment"])?;
    let env = match query.get("environment") {
        None => None,
        Some(e) => Some(Environment::parse(&e).ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_query", "environment must be live or test")
        })?),
    };
    let page = store::list(&state.db, &admin.tenant, env, &params, state.clock.now_ms()).await?;
    Ok(Json(page).into_response())
}

/// Show a key
#[utoipa::path(get, path = "/admin/v1/keys/{id}", tag = "API keys", operation_id = "getKey", params(("id" = String, Path)),
    responses((status = 200, description = "The key", body = KeyView), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, Problem> {
    Ok(Json(store::get(&state.db, &admin.tenant, &id, state.clock.now_ms()).await?))
}

/// Change a key
///
/// Name, description, scope or grants, rate limits, IP allowlist. Takes effect on the next
/// request.
#[utoipa::path(put, path = "/admin/v1/keys/{id}", tag = "API keys", operation_id = "updateKey", params(("id" = String, Path)), request_body = KeyUpdate,
    responses((status = 200, description = "The changed key", body = KeyView), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<KeyView>, Problem> {
    let change = KeyUpdate::parse(&body).map_err(invalid)?;
    let view =
        store::update(&state.db, &admin.tenant, &Actor(admin.email), &id, change, state.clock.now_ms())
            .await?;
    state.keys.invalidate_key(&id);
    Ok(Json(view))
}

/// Revoke a key
///
/// Immediate: the next request with this key is refused with 401 `revoked_api_key`.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/revoke", tag = "API keys", operation_id = "revokeKey", params(("id" = String, Path)),
    responses((status = 200, description = "The revoked key", body = KeyView), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, Problem> {
    let view =
        store::revoke(&state.db, &admin.tenant, &Actor(admin.email), &id, state.clock.now_ms()).await?;
    state.keys.invalidate_key(&id);
    Ok(Json(view))
}

/// Body of a rotation (its OpenAPI schema; parsing goes through `Input`).
#[derive(Debug, utoipa::ToSchema)]
#[expect(dead_code, reason = "the OpenAPI schema of the body")]
#[schema(example = json!({"grace": "24h"}))]
pub(super) struct RotateRequest {
    /// How long the old secret keeps working: `now`, `1h`, `24h` or `7d` (default `24h`).
    pub grace: Option<Grace>,
}

/// The `grace` of a rotation's body: `now`, `1h`, `24h` or `7d`, by default `24h`.
pub(super) fn grace_of(body: &serde_json::Value) -> Result<Grace, Problem> {
    let mut e = Errors::default();
    let grace = match Input::root(body, &mut e) {
        Some(input) => {
            input.known(&["grace"], &mut e);
            input
                .choice("grace", Need::Optional, &["now", "1h", "24h", "7d"], &mut e)
                .and_then(|g| Grace::parse(&g))
        }
        None => None,
    };
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    Ok(grace.unwrap_or(Grace::OneDay))
}

/// Rotate a key
///
/// Issues a new secret with the same settings (shown once); the old one keeps working until the
/// grace period ends.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/rotate", tag = "API keys", operation_id = "rotateKey", params(("id" = String, Path)), request_body = RotateRequest,
    responses((status = 201, description = "The new key", body = IssuedKey), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let grace = grace_of(&body)?;
    let issued = store::rotate(
        &state.db,
        state.keys.pepper(),
        &admin.tenant,
        &Actor(admin.email),
        &id,
        grace,
        state.clock.now_ms(),
    )
    .await?;
    state.keys.invalidate_key(&id);
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}
