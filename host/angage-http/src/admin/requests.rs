//! `/admin/v1/requests*`: the tenant's request log, searched and exported.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Admin;
use crate::v1::extract::QueryMap;
use crate::{AppState, Problem, ProblemBody};
use angage_store::resources::store::{ListParams, Page};
use angage_store::usage::requests::{self, LoggedRequest, RequestFilter, StatusFilter};

const FILTERS: &[&str] = &["key_id", "client_id", "status", "path", "request_id"];

fn filter(q: &QueryMap) -> Result<(ListParams, RequestFilter), Problem> {
    let params = q.list_params(FILTERS)?;
    let status = match q.get("status") {
        Some(s) => Some(StatusFilter::parse(&s).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "status must be a status code (404) or a class (4xx)",
            )
        })?),
        None => None,
    };
    Ok((
        params,
        RequestFilter {
            key_id: q.get("key_id"),
            client_id: q.get("client_id"),
            status,
            path: q.get("path"),
            request_id: q.get("request_id"),
        },
    ))
}

/// The request log
///
/// Newest first. With "Log all API requests" on, every `/v1` request of the tenant is here;
/// off, every error (status 400 and above) and a sample of successes (`usage.success_sample_rate`).
/// The dashboard's counts come from every request either way. Query values that carry secrets
/// are shown as `[redacted]`.
#[utoipa::path(get, path = "/admin/v1/requests", tag = "Usage", operation_id = "requestLog",
    params(
        ("key_id" = Option<String>, Query, description = "Requests made with this key"),
        ("client_id" = Option<String>, Query, description = "Requests made with this OAuth client's tokens"),
        ("status" = Option<String>, Query, description = "A status code (`404`) or a class (`4xx`)"),
        ("path" = Option<String>, Query, description = "Paths that start with this, e.g. `/v1/orders`"),
        ("request_id" = Option<String>, Query, description = "The request with this `X-Request-Id`"),
        ("created_after" = Option<String>, Query, description = "RFC 3339"),
        ("created_before" = Option<String>, Query, description = "RFC 3339"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page of requests", body = Page<LoggedRequest>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Json<Page<LoggedRequest>>, Problem> {
    let (params, filter) = filter(&q)?;
    Ok(Json(requests::list(&state.db, &admin.tenant, &params, &filter).await?))
}

/// The request log as CSV
///
/// The same filters as the list; newest first, at most 100,000 rows.
#[utoipa::path(get, path = "/admin/v1/requests/export.csv", tag = "Usage", operation_id = "requestLogCsv",
    params(
        ("key_id" = Option<String>, Query), ("client_id" = Option<String>, Query), ("status" = Option<String>, Query),
        ("path" = Option<String>, Query), ("request_id" = Option<String>, Query),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses((status = 200, description = "One row per request", content_type = "text/csv", body = String), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn export(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Response, Problem> {
    let (params, filter) = filter(&q)?;
    let csv = requests::export_csv(&state.db, &admin.tenant, &params, &filter).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"requests.csv\""),
        ],
        csv,
    )
        .into_response())
}
