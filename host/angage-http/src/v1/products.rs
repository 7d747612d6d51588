//! `/v1/products`.

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;
use angage_store::db::Db;
use angage_store::resources::store::{ListParams, Page, ResourceError};
use axum::routing::{self, MethodRouter};
use serde_json::Value;

use super::extract::QueryMap;
use super::resource::{self, Create, Delete, Read, Resource, Update};
use crate::{AppState, ProblemBody};
use angage_store::resources::products::{self, NewProduct, Product, ProductUpdate};

/// Products as the generic handlers see them.
pub(crate) struct Products;

impl Resource for Products {
    type Item = Product;
    const PATH: &'static str = "/v1/products";
    fn version(item: &Product) -> i64 {
        item.version
    }
}

impl Create for Products {
    type New = NewProduct;
    fn parse_new(body: &Value) -> Result<NewProduct, Vec<FieldError>> {
        NewProduct::parse(body)
    }
    fn id(item: &Product) -> &str {
        &item.id
    }
    async fn create(db: &Db, tenant: &TenantId, new: NewProduct, now: i64) -> Result<Product, ResourceError> {
        products::create(db, tenant, new, now).await
    }
}

impl Read for Products {
    const FILTERS: &'static [&'static str] = &["name"];
    async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Product, ResourceError> {
        products::get(db, tenant, reference).await
    }
    async fn list(
        db: &Db,
        tenant: &TenantId,
        query: &QueryMap,
        params: &ListParams,
    ) -> Result<Page<Product>, ResourceError> {
        products::list(db, tenant, query.get("name").as_deref(), params).await
    }
}

impl Update for Products {
    type Change = ProductUpdate;
    fn parse_change(body: &Value) -> Result<ProductUpdate, Vec<FieldError>> {
        ProductUpdate::parse(body)
    }
    async fn update(
        db: &Db,
        tenant: &TenantId,
        reference: &str,
        change: ProductUpdate,
        if_match: Option<i64>,
        now: i64,
    ) -> Result<Product, ResourceError> {
        products::update(db, tenant, reference, change, if_match, now).await
    }
}

impl Delete for Products {
    async fn delete(
        db: &Db,
        tenant: &TenantId,
        reference: &str,
        if_match: Option<i64>,
        now: i64,
    ) -> Result<(), ResourceError> {
        products::delete(db, tenant, reference, if_match, now).await
    }
}

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
pub(crate) fn create() -> MethodRouter<AppState> {
    routing::post(resource::create::<Products>)
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
pub(crate) fn list() -> MethodRouter<AppState> {
    routing::get(resource::list::<Products>)
}

/// Retrieve a product
#[utoipa::path(get, path = "/v1/products/{id}", tag = "Products", operation_id = "getProduct",
    params(("id" = String, Path, description = "Product id or SKU")),
    responses(
        (status = 200, description = "The product", body = Product, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn get() -> MethodRouter<AppState> {
    routing::get(resource::get::<Products>)
}

/// Update a product
#[utoipa::path(put, path = "/v1/products/{id}", tag = "Products", operation_id = "updateProduct",
    params(("id" = String, Path, description = "Product id or SKU"), ("If-Match" = Option<String>, Header)),
    request_body = ProductUpdate,
    responses(
        (status = 200, description = "The updated product", body = Product, headers(("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn update() -> MethodRouter<AppState> {
    routing::put(resource::update::<Products>)
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
pub(crate) fn delete() -> MethodRouter<AppState> {
    routing::delete(resource::delete::<Products>)
}
