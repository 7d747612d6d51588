//! `/v1/customers`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, QueryMap, Tenant, created, expected_version, invalid, single, updated};
use crate::http::{AppState, Problem, ProblemBody};
use crate::resources::customers::{self, Customer, CustomerFilter, CustomerUpdate, NewCustomer};
use crate::resources::store::Page;

/// Create a customer
///
/// Creates a customer and returns it with its id and its human code (`CUST-10001`).
#[utoipa::path(post, path = "/v1/customers", tag = "Customers", operation_id = "createCustomer",
    request_body = NewCustomer,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = Customer, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let new = NewCustomer::parse(&body).map_err(invalid)?;
    let c = customers::create(&state.db, &tenant, new, state.clock.now_ms()).await?;
    Ok(created(&format!("/v1/customers/{}", c.id), c.version, &c))
}

/// List customers
///
/// Newest first. Filter by exact `email` or by a case-insensitive substring of `name`.
#[utoipa::path(get, path = "/v1/customers", tag = "Customers", operation_id = "listCustomers",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("email" = Option<String>, Query), ("name" = Option<String>, Query),
        ("created_after" = Option<String>, Query, description = "RFC 3339"),
        ("created_before" = Option<String>, Query, description = "RFC 3339"),
    ),
    responses(
        (status = 200, description = "A page of customers", body = Page<Customer>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: QueryMap,
) -> Result<Response, Problem> {
    let params = query.list_params(&["email", "name"])?;
    let filter = CustomerFilter { email: query.get("email"), name: query.get("name") };
    let page: Page<Customer> = customers::list(&state.db, &tenant, &filter, &params).await?;
    Ok(axum::Json(page).into_response())
}

/// Retrieve a customer
///
/// By id (`cust_...`) or code (`CUST-10001`). Sends an `ETag`; `If-None-Match` answers 304.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "Customers", operation_id = "getCustomer",
    params(("id" = String, Path, description = "Customer id or code")),
    responses(
        (status = 200, description = "The customer", body = Customer, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let c = customers::get(&state.db, &tenant, &id).await?;
    Ok(single(&headers, c.version, &c))
}

/// Update a customer
///
/// Replaces the fields given; keeps the others. With `If-Match`, answers 412 when the customer
/// changed since that ETag.
#[utoipa::path(put, path = "/v1/customers/{id}", tag = "Customers", operation_id = "updateCustomer",
    params(("id" = String, Path, description = "Customer id or code"), ("If-Match" = Option<String>, Header)),
    request_body = CustomerUpdate,
    responses(
        (status = 200, description = "The updated customer", body = Customer, headers(("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let change = CustomerUpdate::parse(&body).map_err(invalid)?;
    let c =
        customers::update(&state.db, &tenant, &id, change, expected_version(&headers), state.clock.now_ms())
            .await?;
    Ok(updated(c.version, &c))
}

/// Delete a customer
///
/// Refused with 409 while orders or invoices refer to the customer.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "Customers", operation_id = "deleteCustomer",
    params(("id" = String, Path, description = "Customer id or code"), ("If-Match" = Option<String>, Header)),
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
    customers::delete(&state.db, &tenant, &id, expected_version(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}
