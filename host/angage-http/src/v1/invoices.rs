//! `/v1/invoices`.

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;
use angage_store::db::Db;
use angage_store::resources::store::{ListParams, Page, ResourceError};
use axum::routing::{self, MethodRouter};
use serde_json::Value;

use super::extract::QueryMap;
use super::resource::{self, Create, Read, Resource};
use crate::{AppState, ProblemBody};
use angage_store::resources::invoices::{self, Invoice, InvoiceFilter, NewInvoice};

/// Invoices as the generic handlers see them.
pub(crate) struct Invoices;

impl Resource for Invoices {
    type Item = Invoice;
    const PATH: &'static str = "/v1/invoices";
    fn version(item: &Invoice) -> i64 {
        item.version
    }
}

impl Create for Invoices {
    type New = NewInvoice;
    fn parse_new(body: &Value) -> Result<NewInvoice, Vec<FieldError>> {
        NewInvoice::parse(body)
    }
    fn id(item: &Invoice) -> &str {
        &item.id
    }
    async fn create(db: &Db, tenant: &TenantId, new: NewInvoice, now: i64) -> Result<Invoice, ResourceError> {
        invoices::create(db, tenant, new, now).await
    }
}

impl Read for Invoices {
    const FILTERS: &'static [&'static str] = &["status", "customer"];
    async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Invoice, ResourceError> {
        invoices::get(db, tenant, reference).await
    }
    async fn list(
        db: &Db,
        tenant: &TenantId,
        query: &QueryMap,
        params: &ListParams,
    ) -> Result<Page<Invoice>, ResourceError> {
        let filter = InvoiceFilter { status: query.get("status"), customer: query.get("customer") };
        invoices::list(db, tenant, &filter, params).await
    }
}

/// Create an invoice
///
/// For an `order` (confirmed or fulfilled; once per order), or for a `customer` with `amount`
/// and `currency`.
#[utoipa::path(post, path = "/v1/invoices", tag = "Invoices", operation_id = "createInvoice",
    request_body = NewInvoice,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = Invoice, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn create() -> MethodRouter<AppState> {
    routing::post(resource::create::<Invoices>)
}

/// List invoices
#[utoipa::path(get, path = "/v1/invoices", tag = "Invoices", operation_id = "listInvoices",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("status" = Option<String>, Query, description = "open, partially_paid or paid"),
        ("customer" = Option<String>, Query, description = "Customer id or code"),
        ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of invoices", body = Page<Invoice>),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn list() -> MethodRouter<AppState> {
    routing::get(resource::list::<Invoices>)
}

/// Retrieve an invoice
#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "Invoices", operation_id = "getInvoice",
    params(("id" = String, Path, description = "Invoice id or code")),
    responses(
        (status = 200, description = "The invoice", body = Invoice, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) fn get() -> MethodRouter<AppState> {
    routing::get(resource::get::<Invoices>)
}
