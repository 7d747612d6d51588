//! `/v1/orders`.

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;
use angage_store::db::Db;
use angage_store::resources::store::{ListParams, Page, ResourceError};
use axum::routing::{self, MethodRouter};
use serde_json::Value;

use super::extract::QueryMap;
use super::resource::{self, Create, Read, Resource, Update};
use crate::{AppState, ProblemBody};
use angage_store::resources::orders::{self, NewOrder, Order, OrderFilter, OrderUpdate};

/// Orders as the generic handlers see them.
pub(crate) struct Orders;

impl Resource for Orders {
    type Item = Order;
    const PATH: &'static str = "/v1/orders";
    fn version(item: &Order) -> i64 {
        item.version
    }
}

impl Create for Orders {
    type New = NewOrder;
    fn parse_new(body: &Value) -> Result<NewOrder, Vec<FieldError>> {
        NewOrder::parse(body)
    }
    fn id(item: &Order) -> &str {
        &item.id
    }
    async fn create(db: &Db, tenant: &TenantId, new: NewOrder, now: i64) -> Result<Order, ResourceError> {
        orders::create(db, tenant, new, now).await
    }
}

impl Read for Orders {
    const FILTERS: &'static [&'static str] = &["customer", "status"];
    async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Order, ResourceError> {
        orders::get(db, tenant, reference).await
    }
    async fn list(
        db: &Db,
        tenant: &TenantId,
        query: &QueryMap,
        params: &ListParams,
    ) -> Result<Page<Order>, ResourceError> {
        let filter = OrderFilter { customer: query.get("customer"), status: query.get("status") };
        orders::list(db, tenant, &filter, params).await
    }
}

impl Update for Orders {
    type Change = OrderUpdate;
    fn parse_change(body: &Value) -> Result<OrderUpdate, Vec<FieldError>> {
        OrderUpdate::parse(body)
    }
    async fn update(
        db: &Db,
        tenant: &TenantId,
        reference: &str,
        change: OrderUpdate,
        if_match: Option<i64>,
        now: i64,
    ) -> Result<Order, ResourceError> {
        orders::update(db, tenant, reference, change, if_match, now).await
    }
}

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
pub(crate) fn create() -> MethodRouter<AppState> {
    routing::post(resource::create::<Orders>)
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
pub(crate) fn list() -> MethodRouter<AppState> {
    routing::get(resource::list::<Orders>)
}

/// Retrieve an order
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "Orders", operation_id = "getOrder",
    params(("id" = String, Path, description = "Order id or code")),
    responses(
        (status = 200, description = "The order", body = Order, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn get() -> MethodRouter<AppState> {
    routing::get(resource::get::<Orders>)
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
pub(crate) fn update() -> MethodRouter<AppState> {
    routing::put(resource::update::<Orders>)
}
