//! `/admin/v1/admins` and `/admin/v1/tokens`: who governs the tenant. Owners add, change,
//! disable, remove admins and reset their passwords; anyone but a viewer mints tokens for
//! themselves, never above their own role.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Admin, need};
use crate::v1::extract::{JsonBody, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_core::ids::random_base62;
use angage_core::validate::{Errors, FieldError, Input, Need, shown_name};
use angage_store::admins::manage::{self, AdminChange};
use angage_store::admins::tokens::{self, IssuedToken, TokenView};
use angage_store::admins::{self, AdminError, NewAdmin, Role};
use angage_store::resources::store::ResourceError;
use angage_store::tenants::audit;

/// Admins of the tenant
#[utoipa::path(get, path = "/admin/v1/admins", tag = "Admins", operation_id = "listAdmins",
    responses((status = 200, description = "Admins, oldest first", body = Vec<admins::Admin>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<Vec<admins::Admin>>, Problem> {
    admins::list(&state.db, &admin.tenant).await.map(Json).map_err(problem)
}

/// One admin
#[utoipa::path(get, path = "/admin/v1/admins/{id}", tag = "Admins", operation_id = "getAdmin", params(("id" = String, Path, description = "Admin id or e-mail")),
    responses((status = 200, description = "The admin", body = admins::Admin), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<admins::Admin>, Problem> {
    admins::get(&state.db, &admin.tenant, &id).await.map(Json).map_err(problem)
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct CreatedAdmin {
    #[serde(flatten)]
    pub admin: admins::Admin,
    /// The password, when none was sent: shown this once.
    pub generated_password: Option<String>,
}

/// Add an admin (owners)
///
/// `role` is `owner`, `admin` (the default) or `viewer`. Without a `password`, one is generated
/// and shown once.
#[utoipa::path(post, path = "/admin/v1/admins", tag = "Admins", operation_id = "createAdmin",
    request_body(content = Object, example = json!({"email": "ops@acme.example", "role": "viewer"})),
    responses((status = 201, description = "Created", body = CreatedAdmin), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    need(&admin, Role::Owner)?;
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["email", "password", "role"], &mut e);
    let email = input.string("email", Need::Required, 3, 254, &mut e);
    let password = input.string("password", Need::Optional, 12, 1024, &mut e);
    let role = input.choice("role", Need::Optional, &Role::NAMES, &mut e).and_then(|r| Role::parse(&r));
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    let generated = password.is_none().then(|| random_base62(20));
    let password = password.or_else(|| generated.clone()).unwrap_or_default();
    let email = email.unwrap_or_default();
    let new = NewAdmin { email: &email, password: &password, role: role.unwrap_or(Role::Admin) };
    let created = admins::create(
        &state.db,
        &state.settings.admin,
        &admin.tenant,
        &new,
        &admin.email,
        state.clock.now_ms(),
    )
    .await
    .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(CreatedAdmin { admin: created, generated_password: generated }))
        .into_response())
}

/// Change an admin (owners)
///
/// Any of `role`, `disabled` and `name`. Disabling ends the admin's sessions at once and stops
/// their tokens; the tenant's last active owner cannot be demoted or disabled (409).
#[utoipa::path(put, path = "/admin/v1/admins/{id}", tag = "Admins", operation_id = "updateAdmin", params(("id" = String, Path, description = "Admin id or e-mail")),
    request_body(content = Object, example = json!({"disabled": true})),
    responses((status = 200, description = "The admin", body = admins::Admin), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<admins::Admin>, Problem> {
    need(&admin, Role::Owner)?;
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["role", "disabled", "name"], &mut e);
    let role = input.choice("role", Need::Optional, &Role::NAMES, &mut e).and_then(|r| Role::parse(&r));
    let disabled = input.boolean("disabled", Need::Optional, &mut e);
    let name = input.string("name", Need::Optional, 1, 200, &mut e);
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    let name = if body.get("name").is_some() { Some(name) } else { None };
    let change = AdminChange { role, disabled, name };
    manage::update(&state.db, &admin.tenant, &id, &change, &admin.email, state.clock.now_ms())
        .await
        .map(Json)
        .map_err(problem)
}

/// Remove an admin (owners)
///
/// Ends their sessions and deletes their tokens. The tenant's last active owner stays (409).
#[utoipa::path(delete, path = "/admin/v1/admins/{id}", tag = "Admins", operation_id = "deleteAdmin", params(("id" = String, Path, description = "Admin id or e-mail")),
    responses((status = 204, description = "Removed"), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    need(&admin, Role::Owner)?;
    manage::delete(&state.db, &admin.tenant, &id, &admin.email, state.clock.now_ms())
        .await
        .map_err(problem)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ResetPassword {
    #[serde(flatten)]
    pub admin: admins::Admin,
    /// The new password, when none was sent: shown this once.
    pub generated_password: Option<String>,
}

/// Reset an admin's password (owners)
///
/// Sets `password` (or a generated one, shown once) and ends the admin's sessions.
#[utoipa::path(post, path = "/admin/v1/admins/{id}/password", tag = "Admins", operation_id = "resetAdminPassword", params(("id" = String, Path, description = "Admin id or e-mail")),
    request_body(content = Object, example = json!({})),
    responses((status = 200, description = "Reset", body = ResetPassword), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn reset_password(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<ResetPassword>, Problem> {
    need(&admin, Role::Owner)?;
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["password"], &mut e);
    let password = input.string("password", Need::Optional, 12, 1024, &mut e);
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    let generated = password.is_none().then(|| random_base62(20));
    let password = password.or_else(|| generated.clone()).unwrap_or_default();
    let now = state.clock.now_ms();
    let reset = manage::reset_password(
        &state.db,
        &state.settings.admin,
        &admin.tenant,
        &id,
        &password,
        &admin.email,
        now,
    )
    .await
    .map_err(problem)?;
    Ok(Json(ResetPassword { admin: reset, generated_password: generated }))
}

fn problem(e: AdminError) -> Problem {
    let message = e.to_string();
    let field = |field: &str| invalid(vec![FieldError { field: field.into(), message: message.clone() }]);
    match e {
        AdminError::BadEmail(_) => field("email"),
        AdminError::WeakPassword => field("password"),
        AdminError::Exists(_) => Problem::new(StatusCode::CONFLICT, "admin_exists", message),
        AdminError::NotFound(id) => Problem::not_found(format!("Admin {} not found", shown_name(&id))),
        AdminError::LastOwner => Problem::new(StatusCode::CONFLICT, "last_owner", message),
        AdminError::Db(db) => Problem::from(ResourceError::Db(db)),
        AdminError::Hash(_) => {
            tracing::error!(error = %message, "password hashing");
            Problem::internal()
        }
    }
}

/// Admin tokens of the tenant
#[utoipa::path(get, path = "/admin/v1/tokens", tag = "Admins", operation_id = "listTokens",
    responses((status = 200, description = "Tokens; never their secrets", body = Vec<TokenView>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<Vec<TokenView>>, Problem> {
    Ok(Json(tokens::list(&state.db, &admin.tenant).await.map_err(ResourceError::Db)?))
}

/// Mint an admin token
///
/// For the calling admin, acting as `role` (default and at most their own) for
/// `expires_in_days` (default 90, at most 365). The secret is shown once.
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "Admins", operation_id = "createToken",
    request_body(content = Object, example = json!({"name": "CI deploy", "role": "viewer", "expires_in_days": 30})),
    responses((status = 201, description = "Minted", body = IssuedToken), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["name", "role", "expires_in_days"], &mut e);
    let name = input.string("name", Need::Required, 1, 100, &mut e);
    let role = input.choice("role", Need::Optional, &Role::NAMES, &mut e).and_then(|r| Role::parse(&r));
    let days = input.int("expires_in_days", Need::Optional, 1, tokens::MAX_DAYS, &mut e);
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    let role = role.unwrap_or(admin.role);
    need(&admin, role)?;
    let now = state.clock.now_ms();
    let days = days.unwrap_or(tokens::DEFAULT_DAYS);
    let issued =
        tokens::create(&state.db, state.keys.pepper(), &admin, &name.unwrap_or_default(), role, days, now)
            .await
            .map_err(ResourceError::Db)?;
    let mut conn = state.db.conn().await.map_err(ResourceError::Db)?;
    let changes = json!({"name": issued.view.name, "role": role, "expires_at": issued.view.expires_at});
    audit::record(
        &mut conn,
        &admin.tenant,
        &admin.email,
        "admin_token.created",
        ("admin_token", &issued.view.id),
        &changes,
        now,
    )
    .await
    .map_err(ResourceError::Db)?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// Revoke an admin token
///
/// An owner revokes any of the tenant's tokens; an admin only their own.
#[utoipa::path(delete, path = "/admin/v1/tokens/{id}", tag = "Admins", operation_id = "revokeToken", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let now = state.clock.now_ms();
    let owned_by = (admin.role < Role::Owner).then_some(admin.admin_id.as_str());
    if !tokens::revoke(&state.db, &admin.tenant, &id, owned_by, now).await.map_err(ResourceError::Db)? {
        return Err(Problem::not_found(format!("Admin token {} not found", shown_name(&id))));
    }
    let mut conn = state.db.conn().await.map_err(ResourceError::Db)?;
    audit::record(
        &mut conn,
        &admin.tenant,
        &admin.email,
        "admin_token.revoked",
        ("admin_token", &id),
        &json!({}),
        now,
    )
    .await
    .map_err(ResourceError::Db)?;
    Ok(StatusCode::NO_CONTENT)
}
