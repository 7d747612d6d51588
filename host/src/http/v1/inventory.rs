//! `/v1/inventory`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, QueryMap, Tenant, expected_version, invalid, single, updated};
use crate::http::{AppState, Problem, ProblemBody};
use crate::resources::inventory::{self, InventoryItem, InventoryUpdate};
use crate::resources::store::Page;

/// List stock
#[utoipa::path(get, path = "/v1/inventory", tag = "Inventory", operation_id = "listInventory",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page (a product id)"),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of stock records", body = Page<InventoryItem>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&[])?;
    let page = inventory::list(&state.db, &tenant, &params).await?;
    Ok(axum::Json(page).into_response())
}

/// Retrieve a product's stock
#[utoipa::path(get, path = "/v1/inventory/{product}", tag = "Inventory", operation_id = "getInventory",
    params(("product" = String, Path, description = "Product id or SKU")),
    responses(
        (status = 200, description = "The stock record", body = InventoryItem, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(product): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let item = inventory::get(&state.db, &tenant, &product).await?;
    Ok(single(&headers, item.version, &item))
}

/// Set or adjust a product's stock
///
/// Send `on_hand` (a count) or `adjustment` (a change). Stock never goes below what confirmed
/// orders have reserved (409).
#[utoipa::path(put, path = "/v1/inventory/{product}", tag = "Inventory", operation_id = "updateInventory",
    params(("product" = String, Path, description = "Product id or SKU"), ("If-Match" = Option<String>, Header)),
    request_body = InventoryUpdate,
    responses(
        (status = 200, description = "The updated stock record", body = InventoryItem, headers(("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(product): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let change = InventoryUpdate::parse(&body).map_err(invalid)?;
    let item = inventory::update(
        &state.db,
        &tenant,
        &product,
        change,
        expected_version(&headers),
        state.clock.now_ms(),
    )
    .await?;
    Ok(updated(item.version, &item))
}
