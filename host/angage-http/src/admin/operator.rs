//! `/admin/v1/operator/...`: what the cluster's operator governs, not a tenant's admins: the
//! plugins stored for every node (the same as `angage plugins`). Off unless
//! `server.operator_token` is set; a request presents it as `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AppState, Problem, ProblemBody};
use angage_store::plugins::{self, Listing, PluginStoreError, StoredPlugin};
use angage_store::resources::store::ResourceError;

/// The largest component an install takes (built plugins are a few hundred KiB).
const MAX_COMPONENT_BYTES: usize = 32 << 20;

pub(super) async fn require_operator(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = &state.settings.server.operator_token;
    if token.is_empty() {
        let detail = "The operator endpoints are off: set server.operator_token to use them";
        let refused = Problem::new(StatusCode::FORBIDDEN, "operator_disabled", detail).into_response();
        return crate::oversize::after_body(req, MAX_COMPONENT_BYTES as u64, refused).await;
    }
    if !crate::bearer::presents(req.headers(), token) {
        let detail = "Send the operator token as `Authorization: Bearer ...`";
        let refused = Problem::new(StatusCode::UNAUTHORIZED, "operator_token_required", detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
            .into_response();
        return crate::oversize::after_body(req, MAX_COMPONENT_BYTES as u64, refused).await;
    }
    next.run(req).await
}

/// The cluster's plugins
///
/// What is stored, and what each node serves (a node whose hash differs did not follow).
#[utoipa::path(get, path = "/admin/v1/operator/plugins", tag = "Operator", operation_id = "listClusterPlugins", security(("operator_token" = [])),
    responses((status = 200, description = "Stored versions and each node's loaded plugins", body = Listing), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Listing>, Problem> {
    Ok(Json(plugins::listing(&state.db).await.map_err(stored)?))
}

/// Install a plugin for the cluster
///
/// The body is the component (`application/wasm`): checked the way every node would load it as
/// `name`, stored as its next version, served by every node within a few seconds.
#[utoipa::path(put, path = "/admin/v1/operator/plugins/{name}", tag = "Operator", operation_id = "installClusterPlugin", security(("operator_token" = [])),
    params(("name" = String, Path, description = "The plugin name stages use, e.g. rate-limit")),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, description = "Stored and serving", body = StoredPlugin), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn install(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<StoredPlugin>), Problem> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !matches!(media, "application/wasm" | "application/octet-stream") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the component as application/wasm",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_COMPONENT_BYTES).await.map_err(|_| Problem::too_large())?;
    if bytes.is_empty() {
        return Err(rejected("the body is empty: send the component".into()));
    }
    let version =
        state.policy.check_plugin(name.clone(), Arc::from(bytes.as_ref())).await.map_err(rejected)?;
    let now = state.clock.now_ms();
    let stored =
        plugins::install(&state.db, &name, &bytes, &version, "operator", now).await.map_err(stored)?;
    tracing::info!(plugin = %stored.name, version = stored.version, "plugin installed for the cluster");
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Roll a cluster plugin back
///
/// The version before the serving one serves again, on every node.
#[utoipa::path(post, path = "/admin/v1/operator/plugins/{name}/rollback", tag = "Operator", operation_id = "rollbackClusterPlugin", security(("operator_token" = [])),
    params(("name" = String, Path)),
    responses((status = 200, description = "The version now serving", body = StoredPlugin), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StoredPlugin>, Problem> {
    let serving = plugins::rollback(&state.db, &name, state.clock.now_ms()).await.map_err(stored)?;
    tracing::info!(plugin = %serving.name, version = serving.version, "plugin rolled back for the cluster");
    Ok(Json(serving))
}

fn rejected(why: String) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "plugin_rejected", why)
}

fn stored(e: PluginStoreError) -> Problem {
    match e {
        PluginStoreError::Unknown(_) => Problem::not_found(e.to_string()),
        PluginStoreError::NoEarlier(_) => {
            Problem::new(StatusCode::CONFLICT, "no_earlier_version", e.to_string())
        }
        PluginStoreError::Changed(_) => {
            Problem::new(StatusCode::CONFLICT, "changed_meanwhile", e.to_string())
        }
        PluginStoreError::Corrupt(_) => {
            tracing::error!(error = %e, "a stored plugin cannot be read");
            Problem::internal()
        }
        PluginStoreError::Db(e) => ResourceError::Db(e).into(),
    }
}
