//! `/v1/invoices`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, QueryMap, Tenant, created, invalid, single};
use crate::http::{AppState, Problem, ProblemBody};
use crate::resources::invoices::{self, Invoice, InvoiceFilter, NewInvoice};
use crate::resources::store::Page;

/// Create an invoice
///
/// For an `order` (confirmed or fulfilled; once per order), or for a `customer` with `amount`
/// and `currency`.
#[utoipa::path(post, path = "/v1/invoices", tag = "Invoices", operation_id = "createInvoice",
    request_body = NewInvoice,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = Invoice, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let new = NewInvoice::parse(&body).map_err(invalid)?;
    let i = invoices::create(&state.db, &tenant, new, state.clock.now_ms()).await?;
    Ok(created(&format!("/v1/invoices/{}", i.id), i.version, &i))
}

/// List invoices
#[utoipa::path(get, path = "/v1/invoices", tag = "Invoices", operation_id = "listInvoices",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("status" = Option<String>, Query, description = "open, partially_paid or paid"),
        ("customer" = Option<String>, Query, description = "Customer id or code"),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of invoices", body = Page<Invoice>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&["status", "customer"])?;
    let filter = InvoiceFilter { status: query.get("status"), customer: query.get("customer") };
    let page = invoices::list(&state.db, &tenant, &filter, &params).await?;
    Ok(axum::Json(page).into_response())
}

/// Retrieve an invoice
#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "Invoices", operation_id = "getInvoice",
    params(("id" = String, Path, description = "Invoice id or code")),
    responses(
        (status = 200, description = "The invoice", body = Invoice, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let i = invoices::get(&state.db, &tenant, &id).await?;
    Ok(single(&headers, i.version, &i))
}
