//! Invoices: raised for an order (its total) or directly for a customer; payments move them to
//! `partially_paid` and `paid`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::customers;
use super::store::{
    Arg, ListParams, Listing, Page, ResourceError, Result, fetch_by, from_json_text, is_code, next_code,
    page, to_json_text,
};
use crate::db::{Db, is_unique_violation};
use crate::webhooks::outbox;
use angage_core::clock::{parse_rfc3339, rfc3339};
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need, is_currency};

const WHAT: &str = "Invoice";
pub const STATUSES: &[&str] = &["open", "partially_paid", "paid"];

/// An invoice.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invoice {
    #[schema(example = "inv_abc123def456")]
    pub id: String,
    #[schema(example = "invoice")]
    pub object: &'static str,
    #[schema(example = "INV-10001")]
    pub code: String,
    pub customer_id: String,
    /// The order this invoice bills, if any.
    pub order_id: Option<String>,
    #[schema(example = "USD")]
    pub currency: String,
    /// Minor units.
    #[schema(example = 3998)]
    pub amount_due: i64,
    pub amount_paid: i64,
    /// `amount_due - amount_paid`.
    pub amount_remaining: i64,
    /// `open`, `partially_paid` or `paid`.
    #[schema(example = "open")]
    pub status: String,
    pub description: Option<String>,
    pub due_at: Option<String>,
    #[schema(value_type = Object, additional_properties = true)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub version: i64,
}

/// Body of `POST /v1/invoices`: give `order`, or `customer` with `amount` and `currency`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"order":"ORD-10001","description":"Order ORD-10001","due_at":"2026-12-31T00:00:00Z"}))]
pub struct NewInvoice {
    /// Order id or code; the invoice bills its total to its customer.
    pub order: Option<String>,
    /// Customer id or code, for an invoice without an order.
    pub customer: Option<String>,
    /// Minor units; required with `customer`.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub description: Option<String>,
    /// RFC 3339.
    pub due_at: Option<String>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

impl NewInvoice {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input
            .known(&["order", "customer", "amount", "currency", "description", "due_at", "metadata"], &mut e);
        let order = input.string("order", Need::Optional, 1, 64, &mut e);
        let direct = if input.has("order") { Need::Optional } else { Need::Required };
        if input.has("order") {
            for field in ["customer", "amount", "currency"] {
                if input.has(field) {
                    e.push(field, "comes from the order; do not send it with `order`");
                }
            }
        }
        let customer = input.string("customer", direct, 1, 64, &mut e);
        let amount = input.int("amount", direct, 1, super::products::MAX_AMOUNT, &mut e);
        let currency = input.string_with(
            "currency",
            direct,
            3,
            "an ISO 4217 currency code such as USD",
            is_currency,
            &mut e,
        );
        let description = input.string("description", Need::Optional, 0, 2000, &mut e);
        let due_at = input.string_with(
            "due_at",
            Need::Optional,
            40,
            "an RFC 3339 timestamp",
            |s| parse_rfc3339(s).is_some(),
            &mut e,
        );
        let metadata = input.metadata("metadata", &mut e);
        e.finish(|| Self { order, customer, amount, currency, description, due_at, metadata })
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    code: String,
    customer_id: String,
    order_id: Option<String>,
    currency: String,
    amount_due: i64,
    amount_paid: i64,
    status: String,
    description: Option<String>,
    due_at: Option<i64>,
    metadata: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Invoice {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            object: "invoice",
            code: r.code,
            customer_id: r.customer_id,
            order_id: r.order_id,
            currency: r.currency,
            amount_due: r.amount_due,
            amount_paid: r.amount_paid,
            amount_remaining: r.amount_due - r.amount_paid,
            status: r.status,
            description: r.description,
            due_at: r.due_at.map(rfc3339),
            metadata: from_json_text(Some(&r.metadata)),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            version: r.version,
        }
    }
}

const SELECT: &str = "SELECT id, code, customer_id, order_id, currency, amount_due, amount_paid, status, description, \
                      due_at, metadata, version, created_at, updated_at FROM invoices";

/// Invoices are found by id (`inv_...`) or code (`INV-10001`).
pub fn by_reference(reference: &str) -> &'static str {
    if is_code(reference, "INV") { "code" } else { "id" }
}

pub async fn create(db: &Db, tenant: &TenantId, new: NewInvoice, now: i64) -> Result<Invoice> {
    let mut tx = db.write_tx().await?;
    let code = next_code(&mut tx, tenant, "INV").await?;
    let (customer_id, order_id, amount, currency) = match &new.order {
        Some(order) => {
            let column = if is_code(order, "ORD") { "code" } else { "id" };
            let sql = format!(
                "SELECT id, code, customer_id, status, total, currency FROM orders WHERE tenant_id = $1 AND {column} = $2"
            );
            let (id, order_code, customer_id, status, total, currency): (
                String,
                String,
                String,
                String,
                i64,
                String,
            ) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&tenant.0)
                .bind(order)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| ResourceError::invalid("order", format!("no order {order}")))?;
            if status == "draft" || status == "cancelled" {
                return Err(ResourceError::Conflict {
                    code: "order_not_invoiceable",
                    detail: format!(
                        "Order {order_code} is {status}; only confirmed or fulfilled orders are invoiced"
                    ),
                });
            }
            let (existing,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM invoices WHERE tenant_id = $1 AND order_id = $2")
                    .bind(&tenant.0)
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
            if existing > 0 {
                return Err(ResourceError::Conflict {
                    code: "already_invoiced",
                    detail: format!("Order {order_code} already has an invoice"),
                });
            }
            (customer_id, Some(id), total, currency)
        }
        None => {
            let reference = new.customer.clone().unwrap_or_default();
            let sql = format!(
                "SELECT id FROM customers WHERE tenant_id = $1 AND {} = $2",
                customers::by_reference(&reference)
            );
            let (customer_id,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&tenant.0)
                .bind(&reference)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| ResourceError::invalid("customer", format!("no customer {reference}")))?;
            (customer_id, None, new.amount.unwrap_or_default(), new.currency.clone().unwrap_or_default())
        }
    };
    let id = new_id("inv");
    let status = if amount == 0 { "paid" } else { "open" };
    sqlx::query(
        "INSERT INTO invoices (id, tenant_id, code, customer_id, order_id, currency, amount_due, amount_paid, status, description, \
         due_at, metadata, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, 1, $12, $12)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(&code)
    .bind(&customer_id)
    .bind(&order_id)
    .bind(&currency)
    .bind(amount)
    .bind(status)
    .bind(&new.description)
    .bind(new.due_at.as_deref().and_then(parse_rfc3339))
    .bind(to_json_text(&new.metadata.unwrap_or_default()))
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        // Two requests invoicing one order: the unique index lets one through.
        if is_unique_violation(&e) && order_id.is_some() {
            ResourceError::Conflict { code: "already_invoiced", detail: "The order already has an invoice".into() }
        } else {
            e.into()
        }
    })?;
    let invoice = read(&mut tx, tenant, &id).await?;
    outbox::emit(&mut tx, tenant, "invoice.created", &invoice, now).await?;
    tx.commit().await?;
    Ok(invoice)
}

pub(crate) async fn read(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    reference: &str,
) -> Result<Invoice> {
    let row: Option<Row> = fetch_by(conn, SELECT, by_reference(reference), tenant, reference).await?;
    row.map(Invoice::from).ok_or_else(|| ResourceError::not_found(WHAT, reference))
}

pub async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Invoice> {
    read(&mut *db.conn().await?, tenant, reference).await
}

/// Filters of `GET /v1/invoices`.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    pub status: Option<String>,
    /// Customer id or code.
    pub customer: Option<String>,
}

pub async fn list(
    db: &Db,
    tenant: &TenantId,
    filter: &InvoiceFilter,
    params: &ListParams,
) -> Result<Page<Invoice>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "invoices", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing
        .rows(&mut conn, SELECT, tenant, params, |q| {
            if let Some(status) = &filter.status {
                q.and("status = ?", [Arg::Text(status.clone())]);
            }
            if let Some(customer) = &filter.customer {
                q.refers_to("customer_id", "customers", customers::by_reference(customer), customer);
            }
        })
        .await?;
    Ok(page(rows.into_iter().map(Invoice::from).collect(), params.limit, |i| i.id.clone()))
}
