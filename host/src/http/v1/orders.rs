//! `/v1/orders`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, QueryMap, Tenant, created, expected_version, invalid, single, updated};
use crate::http::{AppState, Problem, ProblemBody};
use crate::resources::orders::{self, NewOrder, Order, OrderFilter, OrderUpdate};
use crate::resources::store::Page;

/// Create an order
///
/// Prices the lines (the product's price unless `unit_price` is given), computes the total and,
/// unless `status` is `draft`, reserves the stock; a product short of stock is refused with 409
/// `insufficient_stock` naming it, and nothing is reserved.
#[utoipa::path(post, path = "/v1/orders", tag = "Orders", operation_id = "createOrder",
    request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = Order, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let new = NewOrder::parse(&body).map_err(invalid)?;
    let o = orders::create(&state.db, &tenant, new, state.clock.now_ms()).await?;
    Ok(created(&format!("/v1/orders/{}", o.id), o.version, &o))
}

/// List orders
#[utoipa::path(get, path = "/v1/orders", tag = "Orders", operation_id = "listOrders",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("customer" = Option<String>, Query, description = "Customer id or code"),
        ("status" = Option<String>, Query, description = "draft, confirmed, fulfilled or cancelled"),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of orders", body = Page<Order>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&["customer", "status"])?;
    let filter = OrderFilter { customer: query.get("customer"), status: query.get("status") };
    let page = orders::list(&state.db, &tenant, &filter, &params).await?;
    Ok(axum::Json(page).into_response())
}

/// Retrieve an order
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "Orders", operation_id = "getOrder",
    params(("id" = String, Path, description = "Order id or code")),
    responses(
        (status = 200, description = "The order", body = Order, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let o = orders::get(&state.db, &tenant, &id).await?;
    Ok(single(&headers, o.version, &o))
}

/// Update an order
///
/// `draft` → `confirmed` reserves stock; `confirmed` → `fulfilled` ships it; `confirmed` →
/// `cancelled` releases it. Other moves answer 409 `invalid_transition`.
#[utoipa::path(put, path = "/v1/orders/{id}", tag = "Orders", operation_id = "updateOrder",
    params(("id" = String, Path, description = "Order id or code"), ("If-Match" = Option<String>, Header)),
    request_body = OrderUpdate,
    responses(
        (status = 200, description = "The updated order", body = Order, headers(("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let change = OrderUpdate::parse(&body).map_err(invalid)?;
    let o = orders::update(&state.db, &tenant, &id, change, expected_version(&headers), state.clock.now_ms())
        .await?;
    Ok(updated(o.version, &o))
}
