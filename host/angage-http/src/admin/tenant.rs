//! `/admin/v1/settings`, `/admin/v1/audit`, `/admin/v1/plugins`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Admin;
use crate::v1::extract::{JsonBody, QueryMap, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_core::settings::TenantSettings;
use angage_store::changes::{self, Kind};
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
    changes::record(&mut tx, Some(&admin.tenant), Kind::TenantSettings, &admin.tenant.0, now)
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
#[utoipa::path(get, path = "/admin/v1/plugins", tag = "Plugins", operation_id = "listPlugins",
    responses((status = 200, description = "One entry per stage", body = Vec<angage_core::policy::StageStatus>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn plugins(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Json<Vec<angage_core::policy::StageStatus>> {
    Json(state.policy.status())
}
