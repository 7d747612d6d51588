//! The admin API under `/admin/v1`: what the console and automation use to govern a tenant.
//! Authenticated by the console's session cookie (writes need the CSRF header) or an admin token.

mod admins;
mod auth;
mod keys;
mod oauth_clients;
pub mod openapi;
mod operator;
mod requests;
mod rules;
mod tenant;
mod usage;
mod webhooks;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

use super::{AppState, Problem};
use angage_store::admins::{AdminCtx, Role, sessions, tokens};

pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn router(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/admin/v1/me", get(auth::me))
        .route("/admin/v1/logout", post(auth::logout))
        .route("/admin/v1/keys", get(keys::list).post(keys::create))
        .route("/admin/v1/keys/{id}", get(keys::get).put(keys::update))
        .route("/admin/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/admin/v1/keys/{id}/rotate", post(keys::rotate))
        .route("/admin/v1/settings", get(tenant::get_settings).put(tenant::put_settings))
        .route("/admin/v1/audit", get(tenant::audit))
        .route("/admin/v1/plugins", get(tenant::plugins))
        .route("/admin/v1/usage", get(usage::summary))
        .route("/admin/v1/usage/endpoints", get(usage::endpoints))
        .route("/admin/v1/usage/keys", get(usage::keys))
        .route("/admin/v1/usage/latency", get(usage::latency))
        .route("/admin/v1/usage/export.csv", get(usage::export))
        .route("/admin/v1/usage/chart.svg", get(usage::chart))
        .route("/admin/v1/errors", get(usage::errors))
        .route("/admin/v1/errors/recent", get(usage::recent))
        .route("/admin/v1/oauth-clients", get(oauth_clients::list).post(oauth_clients::create))
        .route("/admin/v1/oauth-clients/{id}", get(oauth_clients::get).put(oauth_clients::update))
        .route("/admin/v1/oauth-clients/{id}/rotate-secret", post(oauth_clients::rotate))
        .route("/admin/v1/oauth-clients/{id}/revoke", post(oauth_clients::revoke))
        .route("/admin/v1/oauth/authorizations/{id}", get(oauth_clients::pending))
        .route("/admin/v1/oauth/authorizations/{id}/approve", post(oauth_clients::approve))
        .route("/admin/v1/oauth/authorizations/{id}/deny", post(oauth_clients::deny))
        .route("/admin/v1/requests", get(requests::list))
        .route("/admin/v1/requests/export.csv", get(requests::export))
        .route("/admin/v1/rules", get(rules::get).put(rules::put))
        .route("/admin/v1/rules/validate", post(rules::validate))
        .route("/admin/v1/rules/dry-run", post(rules::dry_run))
        .route("/admin/v1/rules/versions", get(rules::versions))
        .route("/admin/v1/rules/rollback", post(rules::rollback))
        .route("/admin/v1/admins", get(admins::list).post(admins::create))
        .route("/admin/v1/admins/{id}", get(admins::get).put(admins::update).delete(admins::delete))
        .route("/admin/v1/admins/{id}/password", post(admins::reset_password))
        .route("/admin/v1/tokens", get(admins::list_tokens).post(admins::create_token))
        .route("/admin/v1/tokens/{id}", axum::routing::delete(admins::revoke_token))
        .route("/admin/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/admin/v1/webhooks/event-types", get(webhooks::event_types))
        .route("/admin/v1/webhooks/{id}", get(webhooks::get).put(webhooks::update).delete(webhooks::delete))
        .route("/admin/v1/webhooks/{id}/rotate-secret", post(webhooks::rotate))
        .route("/admin/v1/webhooks/{id}/test", post(webhooks::test))
        .route("/admin/v1/webhooks/{id}/deliveries", get(webhooks::list_deliveries))
        .route("/admin/v1/webhooks/{id}/deliveries/{delivery}", get(webhooks::get_delivery))
        .route("/admin/v1/webhooks/{id}/deliveries/{delivery}/redeliver", post(webhooks::redeliver))
        .route_layer(middleware::from_fn_with_state(state.clone(), super::oversize::refuse))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let operator = Router::new()
        .route("/admin/v1/operator/plugins", get(operator::list))
        .route("/admin/v1/operator/plugins/{name}", axum::routing::put(operator::install))
        .route("/admin/v1/operator/plugins/{name}/rollback", post(operator::rollback))
        .route_layer(middleware::from_fn_with_state(state.clone(), operator::require_operator));
    Router::new()
        .route("/admin/v1/login", post(auth::login))
        .route("/admin/v1/openapi.json", get(openapi::serve))
        .route_layer(middleware::from_fn_with_state(state, super::oversize::refuse))
        .merge(protected)
        .merge(operator)
}

/// The authenticated admin of this request.
pub struct Admin(pub AdminCtx);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts.extensions.get::<AdminCtx>().cloned().map(Admin).ok_or_else(unauthenticated)
    }
}

/// Refuses unless the request acts with at least `role`.
pub(super) fn need(admin: &AdminCtx, role: Role) -> Result<(), Problem> {
    if admin.role >= role {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "insufficient_role",
        format!("This needs the {role} role; this request acts as {}", admin.role),
    ))
}

/// Changes a viewer may still make: ending their session and trying a rule without saving it.
const VIEWER_MAY_POST: [&str; 3] =
    ["/admin/v1/logout", "/admin/v1/rules/validate", "/admin/v1/rules/dry-run"];

fn unauthenticated() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "admin_auth_required",
        "Log in to the console or send an admin token as `Authorization: Bearer aat_...`",
    )
}

/// Resolves the admin from an admin token or the session cookie; cookie-authenticated writes
/// must echo the session's CSRF token in `X-CSRF-Token`.
async fn require_admin(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let now = state.clock.now_ms();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(tokens::PREFIX))
        .map(str::to_owned);
    let admin = if let Some(token) = bearer {
        match tokens::find(&state.db, state.keys.pepper(), &token, now).await {
            Ok(Some(admin)) => admin,
            Ok(None) => return unauthenticated().into_response(),
            Err(e) => return db_problem(e),
        }
    } else {
        let Some(cookie) = session_cookie(req.headers()) else { return unauthenticated().into_response() };
        let (admin, csrf) = match sessions::find(&state.db, state.keys.pepper(), &cookie, now).await {
            Ok(Some(found)) => found,
            Ok(None) => return unauthenticated().into_response(),
            Err(e) => return db_problem(e),
        };
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = req.headers().get(CSRF_HEADER).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        if !safe && !bool::from(sent.ct_eq(csrf.as_bytes())) {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "This change needs the session's CSRF token in the X-CSRF-Token header",
            )
            .into_response();
        }
        admin
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe
        && !VIEWER_MAY_POST.contains(&req.uri().path())
        && let Err(refused) = need(&admin, Role::Admin)
    {
        return refused.into_response();
    }
    req.extensions_mut().insert(admin);
    next.run(req).await
}

/// The session token from the `Cookie` header.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            let ours = name == sessions::COOKIE || name == sessions::SECURE_COOKIE;
            (ours && !value.is_empty()).then(|| value.to_owned())
        })
}

fn db_problem(e: sqlx::Error) -> Response {
    Problem::from(angage_store::resources::store::ResourceError::Db(e)).into_response()
}
