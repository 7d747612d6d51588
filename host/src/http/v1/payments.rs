//! `/v1/payments`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, QueryMap, Tenant, created, invalid, single};
use crate::http::{AppState, Problem, ProblemBody};
use crate::resources::payments::{self, NewPayment, Payment};
use crate::resources::store::Page;

/// Record a payment
///
/// Applies the amount to the invoice, which becomes `partially_paid` or `paid`. A payment larger
/// than what is still due is refused with 409 `overpayment`.
#[utoipa::path(post, path = "/v1/payments", tag = "Payments", operation_id = "createPayment",
    request_body = NewPayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = Payment, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let new = NewPayment::parse(&body).map_err(invalid)?;
    let p = payments::create(&state.db, &tenant, new, state.clock.now_ms()).await?;
    Ok(created(&format!("/v1/payments/{}", p.id), p.version, &p))
}

/// List payments
#[utoipa::path(get, path = "/v1/payments", tag = "Payments", operation_id = "listPayments",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("invoice" = Option<String>, Query, description = "Invoice id or code"),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of payments", body = Page<Payment>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&["invoice"])?;
    let page = payments::list(&state.db, &tenant, query.get("invoice").as_deref(), &params).await?;
    Ok(axum::Json(page).into_response())
}

/// Retrieve a payment
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "Payments", operation_id = "getPayment",
    params(("id" = String, Path, description = "Payment id or code")),
    responses(
        (status = 200, description = "The payment", body = Payment, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let p = payments::get(&state.db, &tenant, &id).await?;
    Ok(single(&headers, p.version, &p))
}
