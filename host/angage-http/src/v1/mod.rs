//! The public `/v1` API.

pub(crate) mod customers;
pub(crate) mod extract;
mod idempotency;
pub(crate) mod inventory;
pub(crate) mod invoices;
pub mod openapi;
pub(crate) mod orders;
pub(crate) mod payments;
pub(crate) mod products;
mod resource;
mod webhooks_doc;

use axum::Router;
use axum::middleware;

use super::AppState;

/// The `/v1` routes with exactly the product's verbs; the caller adds the policy stages in front.
/// Each resource's route functions carry its OpenAPI description, so a documented operation is
/// a routed one.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/customers", customers::list().merge(customers::create()))
        .route("/v1/customers/{id}", customers::get().merge(customers::update()).merge(customers::delete()))
        .route("/v1/products", products::list().merge(products::create()))
        .route("/v1/products/{id}", products::get().merge(products::update()).merge(products::delete()))
        .route("/v1/orders", orders::list().merge(orders::create()))
        .route("/v1/orders/{id}", orders::get().merge(orders::update()))
        .route("/v1/invoices", invoices::list().merge(invoices::create()))
        .route("/v1/invoices/{id}", invoices::get())
        .route("/v1/inventory", inventory::list())
        .route("/v1/inventory/{product}", inventory::get().merge(inventory::update()))
        .route("/v1/payments", payments::list().merge(payments::create()))
        .route("/v1/payments/{id}", payments::get())
        .route_layer(middleware::from_fn_with_state(state.clone(), idempotency::layer))
        .route_layer(middleware::from_fn_with_state(state, super::oversize::refuse))
}
