//! `/v1/products`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, QueryMap, Tenant, created, expected_version, invalid, single, updated};
use crate::http::{AppState, Problem, ProblemBody};
use crate::resources::products::{self, NewProduct, Product, ProductUpdate};
use crate::resources::store::Page;

/// Create a product
///
/// Creates the product and its inventory record (`initial_stock` units on hand).
#[utoipa::path(post, path = "/v1/products", tag = "Products", operation_id = "createProduct",
    request_body = NewProduct,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = Product, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let new = NewProduct::parse(&body).map_err(invalid)?;
    let p = products::create(&state.db, &tenant, new, state.clock.now_ms()).await?;
    Ok(created(&format!("/v1/products/{}", p.id), p.version, &p))
}

/// List products
#[utoipa::path(get, path = "/v1/products", tag = "Products", operation_id = "listProducts",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("name" = Option<String>, Query, description = "Case-insensitive substring"),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&["name"])?;
    let page = products::list(&state.db, &tenant, query.get("name").as_deref(), &params).await?;
    Ok(axum::Json(page).into_response())
}

/// Retrieve a product
#[utoipa::path(get, path = "/v1/products/{id}", tag = "Products", operation_id = "getProduct",
    params(("id" = String, Path, description = "Product id or SKU")),
    responses(
        (status = 200, description = "The product", body = Product, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let p = products::get(&state.db, &tenant, &id).await?;
    Ok(single(&headers, p.version, &p))
}

/// Update a product
#[utoipa::path(put, path = "/v1/products/{id}", tag = "Products", operation_id = "updateProduct",
    params(("id" = String, Path, description = "Product id or SKU"), ("If-Match" = Option<String>, Header)),
    request_body = ProductUpdate,
    responses(
        (status = 200, description = "The updated product", body = Product, headers(("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let change = ProductUpdate::parse(&body).map_err(invalid)?;
    let p =
        products::update(&state.db, &tenant, &id, change, expected_version(&headers), state.clock.now_ms())
            .await?;
    Ok(updated(p.version, &p))
}

/// Delete a product
///
/// Refused with 409 while order lines refer to the product.
#[utoipa::path(delete, path = "/v1/products/{id}", tag = "Products", operation_id = "deleteProduct",
    params(("id" = String, Path, description = "Product id or SKU"), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 204, description = "Deleted"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    products::delete(&state.db, &tenant, &id, expected_version(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}
