//! `/admin/v1/usage*` and `/admin/v1/errors*`: the dashboard's numbers for the admin's tenant.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Admin;
use crate::v1::extract::QueryMap;
use crate::{AppState, Problem, ProblemBody};
use angage_store::resources::store::Page;
use angage_store::usage::query::{
    self, EndpointUsage, Errors, KeyUsage, Latency, Period, RecentError, Summary,
};

fn period(state: &AppState, q: &QueryMap) -> Result<Period, Problem> {
    let spec = q.get("period").unwrap_or_else(|| "30d".into());
    Period::parse(&spec, state.clock.now_ms()).ok_or_else(|| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_query", "period must be 7d, 30d, 90d or month")
    })
}

fn only_period(q: &QueryMap) -> Result<(), Problem> {
    match q.0.keys().find(|k| *k != "period") {
        Some(k) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("unknown query parameter `{k}`"),
        )),
        None => Ok(()),
    }
}

/// Usage summary
///
/// Totals, success and failure shares, rate-limit hits, requests per day with average and peak,
/// active keys by environment, and events lost to a full buffer.
#[utoipa::path(get, path = "/admin/v1/usage", tag = "Usage", operation_id = "usageSummary",
    params(("period" = Option<String>, Query, description = "7d, 30d (default), 90d or month")),
    responses((status = 200, description = "Summary", body = Summary), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn summary(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Json<Summary>, Problem> {
    only_period(&q)?;
    let p = period(&state, &q)?;
    Ok(Json(query::summary(&state.db, &admin.tenant, p, state.clock.now_ms(), state.usage.dropped()).await?))
}

/// Requests by endpoint
#[utoipa::path(get, path = "/admin/v1/usage/endpoints", tag = "Usage", operation_id = "usageByEndpoint",
    params(("period" = Option<String>, Query, description = "7d, 30d (default), 90d or month")),
    responses((status = 200, description = "Endpoints, busiest first", body = Vec<EndpointUsage>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn endpoints(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Json<Vec<EndpointUsage>>, Problem> {
    only_period(&q)?;
    Ok(Json(query::endpoints(&state.db, &admin.tenant, period(&state, &q)?).await?))
}

/// Requests by key
#[utoipa::path(get, path = "/admin/v1/usage/keys", tag = "Usage", operation_id = "usageByKey",
    params(("period" = Option<String>, Query, description = "7d, 30d (default), 90d or month")),
    responses((status = 200, description = "Keys, busiest first", body = Vec<KeyUsage>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Json<Vec<KeyUsage>>, Problem> {
    only_period(&q)?;
    Ok(Json(query::keys(&state.db, &admin.tenant, period(&state, &q)?).await?))
}

/// Response times
#[utoipa::path(get, path = "/admin/v1/usage/latency", tag = "Usage", operation_id = "usageLatency",
    params(("period" = Option<String>, Query, description = "7d, 30d (default), 90d or month")),
    responses((status = 200, description = "Average, p95, p99 and the slowest endpoint", body = Latency), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn latency(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Json<Latency>, Problem> {
    only_period(&q)?;
    Ok(Json(query::latency(&state.db, &admin.tenant, period(&state, &q)?).await?))
}

/// Error analysis
#[utoipa::path(get, path = "/admin/v1/errors", tag = "Usage", operation_id = "errorAnalysis",
    params(("period" = Option<String>, Query, description = "7d, 30d (default), 90d or month")),
    responses((status = 200, description = "Totals, most common error, breakdown by status with trend", body = Errors), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn errors(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Json<Errors>, Problem> {
    only_period(&q)?;
    Ok(Json(query::errors(&state.db, &admin.tenant, period(&state, &q)?).await?))
}

/// Recent errors
#[utoipa::path(get, path = "/admin/v1/errors/recent", tag = "Usage", operation_id = "recentErrors",
    params(("limit" = Option<i64>, Query), ("starting_after" = Option<String>, Query)),
    responses((status = 200, description = "Newest first", body = Page<RecentError>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn recent(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Response, Problem> {
    let params = q.list_params(&[])?;
    Ok(Json(query::recent_errors(&state.db, &admin.tenant, &params).await?).into_response())
}

/// Usage as CSV
#[utoipa::path(get, path = "/admin/v1/usage/export.csv", tag = "Usage", operation_id = "usageCsv",
    params(("period" = Option<String>, Query, description = "7d, 30d (default), 90d or month")),
    responses((status = 200, description = "One row per day, endpoint, key, status and error code", content_type = "text/csv", body = String), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn export(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Response, Problem> {
    only_period(&q)?;
    let p = period(&state, &q)?;
    let csv = query::export_csv(&state.db, &admin.tenant, p).await?;
    let name =
        format!("attachment; filename=\"usage-{}.csv\"", q.get("period").unwrap_or_else(|| "30d".into()));
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, name)],
        csv,
    )
        .into_response())
}

/// Requests per day as an SVG chart
#[utoipa::path(get, path = "/admin/v1/usage/chart.svg", tag = "Usage", operation_id = "usageChart",
    params(("period" = Option<String>, Query, description = "7d, 30d (default), 90d or month")),
    responses((status = 200, description = "A bar chart with the average", content_type = "image/svg+xml", body = String), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn chart(
    State(state): State<AppState>,
    Admin(admin): Admin,
    q: QueryMap,
) -> Result<Response, Problem> {
    only_period(&q)?;
    let p = period(&state, &q)?;
    let s = query::summary(&state.db, &admin.tenant, p, state.clock.now_ms(), 0).await?;
    let svg = crate::chart::daily_svg(&s.daily, s.average_per_day);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response())
}
