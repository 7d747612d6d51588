//! `/admin/v1/settings`, `/admin/v1/audit`, `/admin/v1/admins`, `/admin/v1/tokens`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Admin;
use crate::v1::extract::{JsonBody, QueryMap, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_core::ids::random_base62;
use angage_core::settings::TenantSettings;
use angage_core::validate::{Errors, Input, Need};
use angage_store::admins::tokens::{self, IssuedToken, TokenView};
use angage_store::admins::{self, AdminError};
use angage_store::resources::store::{Page, ResourceError};
use angage_store::tenants::audit::{self, AuditEntry};
use angage_store::tenants::settings;

/// Tenant settings
#[utoipa::path(get, path = "/admin/v1/settings", tag = "Settings", operation_id = "getSettings",
    responses((status = 200, description = "Default rate limits and security settings", body = TenantSettings), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get_settings(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<TenantSettings>, Problem> {
    let mut conn = state.db.conn().await.map_err(ResourceError::Db)?;
    Ok(Json(settings::get(&mut conn, &admin.tenant).await.map_err(ResourceError::Db)?))
}

/// Change tenant settings
///
/// Any subset of the fields. Takes effect on the next request.
#[utoipa::path(put, path = "/admin/v1/settings", tag = "Settings", operation_id = "putSettings", request_body = TenantSettings,
    responses((status = 200, description = "The new settings", body = TenantSettings), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn put_settings(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Json<TenantSettings>, Problem> {
    let now = state.clock.now_ms();
    let mut tx = state.db.write_tx().await.map_err(ResourceError::Db)?;
    let current = settings::get(&mut tx, &admin.tenant).await.map_err(ResourceError::Db)?;
    let next = current.parse_update(&body).map_err(invalid)?;
    settings::write(&mut tx, &admin.tenant, &next, now, false).await.map_err(ResourceError::Db)?;
    let changes = json!({"from": current, "to": next});
    audit::record(
        &mut tx,
        &admin.tenant,
        &admin.email,
        "settings.updated",
        ("tenant", &admin.tenant.0),
        &changes,
        now,
    )
    .await
    .map_err(ResourceError::Db)?;
    tx.commit().await.map_err(ResourceError::Db)?;
    state.tenant_settings.invalidate(&admin.tenant.0);
    Ok(Json(next))
}

/// Audit log
#[utoipa::path(get, path = "/admin/v1/audit", tag = "Settings", operation_id = "listAudit",
    params(("limit" = Option<i64>, Query), ("starting_after" = Option<String>, Query)),
    responses((status = 200, description = "Changes, newest first", body = Page<AuditEntry>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn audit(
    State(state): State<AppState>,
    Admin(admin): Admin,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&[])?;
    Ok(Json(audit::list(&state.db, &admin.tenant, &params).await?).into_response())
}

/// Admins of this tenant
#[utoipa::path(get, path = "/admin/v1/admins", tag = "Admins", operation_id = "listAdmins",
    responses((status = 200, description = "Admins", body = Vec<admins::Admin>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list_admins(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<Vec<admins::Admin>>, Problem> {
    admins::list(&state.db, &admin.tenant).await.map(Json).map_err(admin_problem)
}

/// The new admin and, when none was given, the generated password (shown once).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct CreatedAdmin {
    #[serde(flatten)]
    pub admin: admins::Admin,
    pub generated_password: Option<String>,
}

/// Add an admin
///
/// With `password` (12 characters or more), or without one to have it generated and shown once.
#[utoipa::path(post, path = "/admin/v1/admins", tag = "Admins", operation_id = "createAdmin",
    responses((status = 201, description = "Created", body = CreatedAdmin), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn create_admin(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["email", "password"], &mut e);
    let email = input.string("email", Need::Required, 3, 254, &mut e);
    let password = input.string("password", Need::Optional, 12, 1024, &mut e);
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    let generated = password.is_none().then(|| random_base62(20));
    let password = password.or_else(|| generated.clone()).unwrap_or_default();
    let created = admins::create(
        &state.db,
        &state.settings.admin,
        &admin.tenant,
        &email.unwrap_or_default(),
        &password,
        state.clock.now_ms(),
    )
    .await
    .map_err(admin_problem)?;
    Ok((StatusCode::CREATED, Json(CreatedAdmin { admin: created, generated_password: generated }))
        .into_response())
}

fn admin_problem(e: AdminError) -> Problem {
    match e {
        AdminError::BadEmail(_) => {
            invalid(vec![angage_core::validate::FieldError { field: "email".into(), message: e.to_string() }])
        }
        AdminError::WeakPassword => invalid(vec![angage_core::validate::FieldError {
            field: "password".into(),
            message: e.to_string(),
        }]),
        AdminError::Exists(_) => Problem::new(StatusCode::CONFLICT, "admin_exists", e.to_string()),
        AdminError::Db(db) => Problem::from(ResourceError::Db(db)),
        AdminError::Hash(_) => {
            tracing::error!(error = %e, "password hashing");
            Problem::internal()
        }
    }
}

/// Admin tokens of this tenant
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
/// For automation: send it as `Authorization: Bearer aat_...`. Shown once.
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "Admins", operation_id = "createToken",
    responses((status = 201, description = "Minted", body = IssuedToken), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["name", "expires_in_days"], &mut e);
    let name = input.string("name", Need::Required, 1, 100, &mut e);
    let days = input.int("expires_in_days", Need::Optional, 1, 3650, &mut e);
    if !e.is_empty() {
        return Err(invalid(e.0));
    }
    let now = state.clock.now_ms();
    let issued = tokens::create(&state.db, state.keys.pepper(), &admin, &name.unwrap_or_default(), days, now)
        .await
        .map_err(ResourceError::Db)?;
    let mut conn = state.db.conn().await.map_err(ResourceError::Db)?;
    audit::record(
        &mut conn,
        &admin.tenant,
        &admin.email,
        "admin_token.created",
        ("admin_token", &issued.view.id),
        &json!({"name": issued.view.name}),
        now,
    )
    .await
    .map_err(ResourceError::Db)?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// Revoke an admin token
#[utoipa::path(delete, path = "/admin/v1/tokens/{id}", tag = "Admins", operation_id = "revokeToken", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let now = state.clock.now_ms();
    if !tokens::revoke(&state.db, &admin.tenant, &id, now).await.map_err(ResourceError::Db)? {
        return Err(Problem::not_found(format!("Admin token {id} not found")));
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

/// Plugins serving each stage
///
/// Each stage's active plugin, where it came from, its version and content hash, when it was
/// loaded, and the last failed load (while the previous version keeps serving).
#[utoipa::path(get, path = "/admin/v1/plugins", tag = "Plugins", operation_id = "listPlugins",
    responses((status = 200, description = "One entry per stage", body = Vec<angage_core::policy::StageStatus>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn plugins(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Json<Vec<angage_core::policy::StageStatus>> {
    Json(state.policy.status())
}
