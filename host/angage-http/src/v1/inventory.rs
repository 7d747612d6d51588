//! `/v1/inventory`.

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;
use angage_store::db::Db;
use angage_store::resources::store::{ListParams, Page, ResourceError};
use axum::routing::{self, MethodRouter};
use serde_json::Value;

use super::extract::QueryMap;
use super::resource::{self, Read, Resource, Update};
use crate::{AppState, ProblemBody};
use angage_store::resources::inventory::{self, InventoryItem, InventoryUpdate};

/// Stock records as the generic handlers see them.
pub(crate) struct Inventory;

impl Resource for Inventory {
    type Item = InventoryItem;
    const PATH: &'static str = "/v1/inventory";
    fn version(item: &InventoryItem) -> i64 {
        item.version
    }
}

impl Read for Inventory {
    const FILTERS: &'static [&'static str] = &[];
    async fn get(db: &Db, tenant: &TenantId, product: &str) -> Result<InventoryItem, ResourceError> {
        inventory::get(db, tenant, product).await
    }
    async fn list(
        db: &Db,
        tenant: &TenantId,
        _query: &QueryMap,
        params: &ListParams,
    ) -> Result<Page<InventoryItem>, ResourceError> {
        inventory::list(db, tenant, params).await
    }
}

impl Update for Inventory {
    type Change = InventoryUpdate;
    fn parse_change(body: &Value) -> Result<InventoryUpdate, Vec<FieldError>> {
        InventoryUpdate::parse(body)
    }
    async fn update(
        db: &Db,
        tenant: &TenantId,
        product: &str,
        change: InventoryUpdate,
        if_match: Option<i64>,
        now: i64,
    ) -> Result<InventoryItem, ResourceError> {
        inventory::update(db, tenant, product, change, if_match, now).await
    }
}

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
pub(crate) fn list() -> MethodRouter<AppState> {
    routing::get(resource::list::<Inventory>)
}

/// Retrieve a product's stock
#[utoipa::path(get, path = "/v1/inventory/{product}", tag = "Inventory", operation_id = "getInventory",
    params(("product" = String, Path, description = "Product id or SKU")),
    responses(
        (status = 200, description = "The stock record", body = InventoryItem, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn get() -> MethodRouter<AppState> {
    routing::get(resource::get::<Inventory>)
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
pub(crate) fn update() -> MethodRouter<AppState> {
    routing::put(resource::update::<Inventory>)
}
