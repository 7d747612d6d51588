//! `/v1/customers`.

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;
use angage_store::db::Db;
use angage_store::resources::store::{ListParams, Page, ResourceError};
use axum::routing::{self, MethodRouter};
use serde_json::Value;

use super::extract::QueryMap;
use super::resource::{self, Create, Delete, Read, Resource, Update};
use crate::{AppState, ProblemBody};
use angage_store::resources::customers::{self, Customer, CustomerFilter, CustomerUpdate, NewCustomer};

/// Customers as the generic handlers see them.
pub(crate) struct Customers;

impl Resource for Customers {
    type Item = Customer;
    const PATH: &'static str = "/v1/customers";
    fn version(item: &Customer) -> i64 {
        item.version
    }
}

impl Create for Customers {
    type New = NewCustomer;
    fn parse_new(body: &Value) -> Result<NewCustomer, Vec<FieldError>> {
        NewCustomer::parse(body)
    }
    fn id(item: &Customer) -> &str {
        &item.id
    }
    async fn create(
        db: &Db,
        tenant: &TenantId,
        new: NewCustomer,
        now: i64,
    ) -> Result<Customer, ResourceError> {
        customers::create(db, tenant, new, now).await
    }
}

impl Read for Customers {
    const FILTERS: &'static [&'static str] = &["email", "name"];
    async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Customer, ResourceError> {
        customers::get(db, tenant, reference).await
    }
    async fn list(
        db: &Db,
        tenant: &TenantId,
        query: &QueryMap,
        params: &ListParams,
    ) -> Result<Page<Customer>, ResourceError> {
        let filter = CustomerFilter { email: query.get("email"), name: query.get("name") };
        customers::list(db, tenant, &filter, params).await
    }
}

impl Update for Customers {
    type Change = CustomerUpdate;
    fn parse_change(body: &Value) -> Result<CustomerUpdate, Vec<FieldError>> {
        CustomerUpdate::parse(body)
    }
    async fn update(
        db: &Db,
        tenant: &TenantId,
        reference: &str,
        change: CustomerUpdate,
        if_match: Option<i64>,
        now: i64,
    ) -> Result<Customer, ResourceError> {
        customers::update(db, tenant, reference, change, if_match, now).await
    }
}

impl Delete for Customers {
    async fn delete(
        db: &Db,
        tenant: &TenantId,
        reference: &str,
        if_match: Option<i64>,
        now: i64,
    ) -> Result<(), ResourceError> {
        customers::delete(db, tenant, reference, if_match, now).await
    }
}

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
pub(crate) fn create() -> MethodRouter<AppState> {
    routing::post(resource::create::<Customers>)
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
pub(crate) fn list() -> MethodRouter<AppState> {
    routing::get(resource::list::<Customers>)
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
pub(crate) fn get() -> MethodRouter<AppState> {
    routing::get(resource::get::<Customers>)
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
pub(crate) fn update() -> MethodRouter<AppState> {
    routing::put(resource::update::<Customers>)
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
pub(crate) fn delete() -> MethodRouter<AppState> {
    routing::delete(resource::delete::<Customers>)
}
