//! `/admin/v1/oauth-clients`: the tenant's OAuth 2.0 clients (client credentials grant).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::Admin;
use crate::v1::extract::{JsonBody, QueryMap, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_core::key::Environment;
use angage_core::limits::Limits;
use angage_store::keys::store::Actor;
use angage_store::oauth::authorize::{self, Decision, Pending};
use angage_store::oauth::{self, ClientSpec, ClientView, IssuedClient};
use angage_store::resources::store::Page;

/// What a client is made with (on a change, every field is optional).
#[derive(Debug, ToSchema)]
// The request body's schema only: `ClientSpec::parse` reads the body itself.
#[allow(dead_code)]
#[schema(example = json!({"name": "Warehouse robot", "scopes": ["inventory:read", "inventory:write", "products:read"], "environments": ["live"], "rate_limits": {"per_minute": 600}}))]
pub(super) struct ClientRequest {
    pub name: String,
    /// `<module>:read` or `<module>:write` for customers, products, orders, invoices, payments,
    /// inventory and settings: the most its tokens may carry.
    pub scopes: Vec<String>,
    /// The environments its tokens may be for; default both.
    pub environments: Option<Vec<Environment>>,
    /// The client's own limits; absent windows take the tenant's defaults.
    pub rate_limits: Option<Limits>,
    /// For the authorization code flow: where the admin may be sent back (exact match; https,
    /// or http on a loopback address).
    pub redirect_uris: Option<Vec<String>>,
}

/// Create an OAuth client
///
/// The response carries `client_secret`: it is shown this once and never again.
#[utoipa::path(post, path = "/admin/v1/oauth-clients", tag = "OAuth clients", operation_id = "createOAuthClient", request_body = ClientRequest,
    responses((status = 201, description = "Created", body = IssuedClient), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let spec = ClientSpec::parse(&body, true).map_err(invalid)?;
    let issued = oauth::create(
        &state.db,
        state.keys.pepper(),
        &admin.tenant,
        &Actor(admin.email),
        spec,
        state.clock.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// List OAuth clients
#[utoipa::path(get, path = "/admin/v1/oauth-clients", tag = "OAuth clients", operation_id = "listOAuthClients",
    params(("limit" = Option<i64>, Query), ("starting_after" = Option<String>, Query)),
    responses((status = 200, description = "Clients, newest first; never their secrets", body = Page<ClientView>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Response, Problem> {
    let params = q.list_params(&[])?;
    Ok(Json(oauth::list(&state.db, &admin.tenant, &params).await?).into_response())
}

/// Show an OAuth client
#[utoipa::path(get, path = "/admin/v1/oauth-clients/{id}", tag = "OAuth clients", operation_id = "getOAuthClient", params(("id" = String, Path)),
    responses((status = 200, description = "The client", body = ClientView), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, Problem> {
    Ok(Json(oauth::get(&state.db, &admin.tenant, &id).await?))
}

/// Change an OAuth client
///
/// Name, scopes, environments, limits. Tokens already issued keep their scopes until they
/// expire, never beyond what the client may have: narrowing the client takes effect at once.
#[utoipa::path(put, path = "/admin/v1/oauth-clients/{id}", tag = "OAuth clients", operation_id = "updateOAuthClient", params(("id" = String, Path)), request_body = ClientRequest,
    responses((status = 200, description = "The changed client", body = ClientView), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<ClientView>, Problem> {
    let spec = ClientSpec::parse(&body, false).map_err(invalid)?;
    let view =
        oauth::update(&state.db, &admin.tenant, &Actor(admin.email), &id, spec, state.clock.now_ms()).await?;
    state.keys.invalidate_key(&id);
    Ok(Json(view))
}

/// Give an OAuth client a new secret
///
/// The old secret stops working at once; tokens already issued keep working until they expire.
#[utoipa::path(post, path = "/admin/v1/oauth-clients/{id}/rotate-secret", tag = "OAuth clients", operation_id = "rotateOAuthClientSecret", params(("id" = String, Path)),
    responses((status = 200, description = "The new secret, shown once", body = IssuedClient), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<IssuedClient>, Problem> {
    let now = state.clock.now_ms();
    Ok(Json(
        oauth::rotate_secret(&state.db, state.keys.pepper(), &admin.tenant, &Actor(admin.email), &id, now)
            .await?,
    ))
}

/// Revoke an OAuth client
///
/// The client can get no more tokens and every token it holds is refused at once, on every node.
#[utoipa::path(post, path = "/admin/v1/oauth-clients/{id}/revoke", tag = "OAuth clients", operation_id = "revokeOAuthClient", params(("id" = String, Path)),
    responses((status = 200, description = "The revoked client", body = ClientView), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, Problem> {
    let view =
        oauth::revoke(&state.db, &admin.tenant, &Actor(admin.email), &id, state.clock.now_ms()).await?;
    state.keys.invalidate_key(&id);
    Ok(Json(view))
}

/// A pending authorization request
///
/// What the consent page shows: the app, the scopes it asks for and where the admin returns.
#[utoipa::path(get, path = "/admin/v1/oauth/authorizations/{id}", tag = "OAuth clients", operation_id = "getAuthorization", params(("id" = String, Path)),
    responses((status = 200, description = "The request", body = Pending), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn pending(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Pending>, Problem> {
    Ok(Json(authorize::pending(&state.db, &admin.tenant, &id, state.clock.now_ms()).await?))
}

/// Approve an authorization request
///
/// The app gets a one-time code at its redirect URI (`redirect_to`), which it exchanges with its
/// PKCE verifier for tokens acting for this tenant within the scopes shown.
#[utoipa::path(post, path = "/admin/v1/oauth/authorizations/{id}/approve", tag = "OAuth clients", operation_id = "approveAuthorization", params(("id" = String, Path)),
    responses((status = 200, description = "Where to send the admin", body = Decision), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn approve(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Decision>, Problem> {
    Ok(Json(
        authorize::decide(&state.db, &admin.tenant, &id, &admin.email, true, state.clock.now_ms()).await?,
    ))
}

/// Deny an authorization request
#[utoipa::path(post, path = "/admin/v1/oauth/authorizations/{id}/deny", tag = "OAuth clients", operation_id = "denyAuthorization", params(("id" = String, Path)),
    responses((status = 200, description = "Where to send the admin (the app hears access_denied)", body = Decision), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn deny(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Decision>, Problem> {
    Ok(Json(
        authorize::decide(&state.db, &admin.tenant, &id, &admin.email, false, state.clock.now_ms()).await?,
    ))
}
