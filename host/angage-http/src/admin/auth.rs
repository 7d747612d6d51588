//! Login, logout and "who am I".

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Admin, session_cookie};
use crate::origin::Origin;
use crate::v1::extract::{JsonBody, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_core::clock::rfc3339;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, Input, Need};
use angage_store::admins::throttle::Wait;
use angage_store::admins::{self, Login, Role, sessions};
use angage_store::tenants::audit;

/// Body of `POST /admin/v1/login`. Documents the body; parsing goes through `Input` so each bad
/// field is reported.
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "the OpenAPI schema of the body")]
#[schema(example = json!({"email": "admin@demo.local", "password": "..."}))]
pub(super) struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The tenant's slug, when the same e-mail and password govern several tenants.
    pub tenant: Option<String>,
}

/// A started session. The cookie carries the session; `csrf_token` goes in `X-CSRF-Token` on
/// every change.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LoginResponse {
    pub admin: Me,
    pub csrf_token: String,
    pub expires_at: String,
}

/// The admin behind a request.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Me {
    pub id: String,
    pub email: String,
    pub tenant_id: String,
    pub tenant_slug: String,
    pub tenant_name: String,
    /// What this session or token may do: `owner`, `admin` or `viewer` (reads only).
    pub role: Role,
    /// For a console session: the token to send as `X-CSRF-Token` on every change.
    pub csrf_token: Option<String>,
}

/// Log in
///
/// Starts a console session (an HttpOnly, SameSite=Strict cookie). Failed logins slow down per
/// account and per client address (429 with `Retry-After`); both outcomes are in the tenant's
/// audit log. When the e-mail and password are an admin's in several tenants, the answer is 409
/// `tenant_required` naming them: send `tenant`.
#[utoipa::path(post, path = "/admin/v1/login", tag = "Session", operation_id = "login", request_body = LoginRequest, security(()),
    responses(
        (status = 200, description = "Logged in; `Set-Cookie` carries the session", body = LoginResponse),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(super) async fn login(
    State(state): State<AppState>,
    Extension(origin): Extension<Origin>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["email", "password", "tenant"], &mut e);
    let email = input.string("email", Need::Required, 1, 254, &mut e);
    let password = input.string("password", Need::Required, 1, 1024, &mut e);
    let tenant = input.string("tenant", Need::Optional, 1, 64, &mut e);
    let (Some(email), Some(password)) = (email, password) else { return Err(invalid(e.0)) };
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    let now = state.clock.now_ms();
    let ip = origin.ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let attempt = match state.throttle.begin(&email, &ip, now).await {
        Ok(attempt) => attempt,
        Err(Wait(wait)) => {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "login_throttled",
                format!("Too many failed logins; try again in {wait} seconds"),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(wait)));
        }
    };
    // argon2 takes tens of MiB and milliseconds per check: only so many run at once, the
    // rest are told to come back instead of queueing memory.
    let Ok(_verifying) = state.password_checks.clone().try_acquire_owned() else {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "login_busy",
            "Too many logins are being checked right now; retry in a second",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
    };
    let login = admins::authenticate(&state.db, &state.settings.admin, &email, &password, tenant.as_deref())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "login failed");
            Problem::internal()
        })?;
    let admin = match login {
        Login::Admin(admin) => admin,
        Login::ChooseTenant(slugs) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "tenant_required",
                format!("This login governs several tenants; send `tenant`, one of: {}", slugs.join(", ")),
            ));
        }
        Login::Refused(accounts) => {
            tracing::info!(ip = %ip, "failed admin login");
            audit_login_failed(&state, &email, &ip, &accounts, now).await;
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_login",
                "E-mail or password is incorrect",
            ));
        }
    };
    state.throttle.succeeded(&attempt).await;
    let ttl_ms = state.settings.admin.session_ttl_hours as i64 * 3_600_000;
    let session = sessions::create(&state.db, state.keys.pepper(), &admin, ttl_ms, now).await.map_err(db)?;
    let mut conn = state.db.conn().await.map_err(db)?;
    let changes = serde_json::json!({"ip": ip});
    audit::record(
        &mut conn,
        &admin.tenant,
        &admin.email,
        "admin.login",
        ("admin", &admin.admin_id),
        &changes,
        now,
    )
    .await
    .map_err(db)?;
    drop(conn);
    let me = me_of(&state, &admin).await?;
    let (name, secure) = cookie_of(&state);
    let cookie = format!(
        "{name}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session.token,
        ttl_ms / 1000
    );
    let body =
        LoginResponse { admin: me, csrf_token: session.csrf_token, expires_at: rfc3339(session.expires_at) };
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Log out
#[utoipa::path(post, path = "/admin/v1/logout", tag = "Session", operation_id = "logout",
    responses((status = 204, description = "Session ended"), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    if let Some(token) = session_cookie(&headers) {
        sessions::delete(&state.db, state.keys.pepper(), &token).await.map_err(db)?;
    }
    let (name, secure) = cookie_of(&state);
    let expired = format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, expired)]).into_response())
}

/// The current admin
#[utoipa::path(get, path = "/admin/v1/me", tag = "Session", operation_id = "me",
    responses((status = 200, description = "The admin", body = Me), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn me(
    State(state): State<AppState>,
    Admin(admin): Admin,
    headers: axum::http::HeaderMap,
) -> Result<Json<Me>, Problem> {
    let mut me = me_of(&state, &admin).await?;
    // A console reloaded in the browser gets its CSRF token back from its own session.
    if let Some(token) = session_cookie(&headers) {
        let found =
            sessions::find(&state.db, state.keys.pepper(), &token, state.clock.now_ms()).await.map_err(db)?;
        me.csrf_token = found.map(|(_, csrf)| csrf);
    }
    Ok(Json(me))
}

async fn me_of(state: &AppState, admin: &admins::AdminCtx) -> Result<Me, Problem> {
    let tenant = angage_store::tenants::by_id(&state.db, &admin.tenant.0).await.map_err(|e| {
        tracing::error!(error = %e, "tenant of an admin");
        Problem::internal()
    })?;
    Ok(Me {
        id: admin.admin_id.clone(),
        email: admin.email.clone(),
        tenant_id: tenant.id,
        tenant_slug: tenant.slug,
        tenant_name: tenant.name,
        role: admin.role,
        csrf_token: None,
    })
}

/// A wrong password for accounts that exist goes in each one's tenant audit, with the claimed
/// e-mail as the actor; a failure to record it is logged, not answered.
async fn audit_login_failed(
    state: &AppState,
    email: &str,
    ip: &str,
    accounts: &[(String, TenantId)],
    now: i64,
) {
    for (admin_id, tenant) in accounts {
        let recorded = async {
            let mut conn = state.db.conn().await?;
            let changes = serde_json::json!({"ip": ip});
            audit::record(&mut conn, tenant, email, "admin.login_failed", ("admin", admin_id), &changes, now)
                .await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(error = %e, "cannot audit a failed login");
        }
    }
}

/// The session cookie's name and its `Secure` attribute, as `admin.secure_cookies` says.
fn cookie_of(state: &AppState) -> (&'static str, &'static str) {
    if state.settings.admin.secure_cookies {
        (sessions::SECURE_COOKIE, "; Secure")
    } else {
        (sessions::COOKIE, "")
    }
}

fn db(e: sqlx::Error) -> Problem {
    Problem::from(angage_store::resources::store::ResourceError::Db(e))
}
