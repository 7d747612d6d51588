//! `/v1/payments`.

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;
use angage_store::db::Db;
use angage_store::resources::store::{ListParams, Page, ResourceError};
use axum::routing::{self, MethodRouter};
use serde_json::Value;

use super::extract::QueryMap;
use super::resource::{self, Create, Read, Resource};
use crate::{AppState, ProblemBody};
use angage_store::resources::payments::{self, NewPayment, Payment};

/// Payments as the generic handlers see them.
pub(crate) struct Payments;

impl Resource for Payments {
    type Item = Payment;
    const PATH: &'static str = "/v1/payments";
    fn version(item: &Payment) -> i64 {
        item.version
    }
}

impl Create for Payments {
    type New = NewPayment;
    fn parse_new(body: &Value) -> Result<NewPayment, Vec<FieldError>> {
        NewPayment::parse(body)
    }
    fn id(item: &Payment) -> &str {
        &item.id
    }
    async fn create(db: &Db, tenant: &TenantId, new: NewPayment, now: i64) -> Result<Payment, ResourceError> {
        payments::create(db, tenant, new, now).await
    }
}

impl Read for Payments {
    const FILTERS: &'static [&'static str] = &["invoice"];
    async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Payment, ResourceError> {
        payments::get(db, tenant, reference).await
    }
    async fn list(
        db: &Db,
        tenant: &TenantId,
        query: &QueryMap,
        params: &ListParams,
    ) -> Result<Page<Payment>, ResourceError> {
        payments::list(db, tenant, query.get("invoice").as_deref(), params).await
    }
}

/// Record a payment
///
/// Applies the amount to the invoice, which becomes `partially_paid` or `paid`. A payment larger
/// than what is still due is refused with 409 `overpayment`.
#[utoipa::path(post, path = "/v1/payments", tag = "Payments", operation_id = "createPayment",
    request_body = NewPayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = Payment, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn create() -> MethodRouter<AppState> {
    routing::post(resource::create::<Payments>)
}

/// List payments
#[utoipa::path(get, path = "/v1/payments", tag = "Payments", operation_id = "listPayments",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("invoice" = Option<String>, Query, description = "Invoice id or code"),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of payments", body = Page<Payment>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn list() -> MethodRouter<AppState> {
    routing::get(resource::list::<Payments>)
}

/// Retrieve a payment
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "Payments", operation_id = "getPayment",
    params(("id" = String, Path, description = "Payment id or code")),
    responses(
        (status = 200, description = "The payment", body = Payment, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn get() -> MethodRouter<AppState> {
    routing::get(resource::get::<Payments>)
}
