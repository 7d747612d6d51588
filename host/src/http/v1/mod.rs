//! The public `/v1` API.

pub mod customers;
pub mod extract;
mod idempotency;
pub mod inventory;
pub mod invoices;
pub mod openapi;
pub mod orders;
pub mod payments;
pub mod products;

use axum::Router;
use axum::middleware;
use axum::routing::get;

use super::AppState;

/// The `/v1` routes with exactly the product's verbs; the caller adds the policy stages in front.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/customers", get(customers::list).post(customers::create))
        .route("/v1/customers/{id}", get(customers::get).put(customers::update).delete(customers::delete))
        .route("/v1/products", get(products::list).post(products::create))
        .route("/v1/products/{id}", get(products::get).put(products::update).delete(products::delete))
        .route("/v1/orders", get(orders::list).post(orders::create))
        .route("/v1/orders/{id}", get(orders::get).put(orders::update))
        .route("/v1/invoices", get(invoices::list).post(invoices::create))
        .route("/v1/invoices/{id}", get(invoices::get))
        .route("/v1/inventory", get(inventory::list))
        .route("/v1/inventory/{product}", get(inventory::get).put(inventory::update))
        .route("/v1/payments", get(payments::list).post(payments::create))
        .route("/v1/payments/{id}", get(payments::get))
        .route_layer(middleware::from_fn_with_state(state.clone(), idempotency::layer))
        .route_layer(middleware::from_fn_with_state(state, super::oversize::refuse))
}
