//! Payments: money applied to an invoice. Overpayment is refused; the invoice's status follows.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::invoices;
use super::store::{
    ListParams, Listing, Page, ResourceError, Result, fetch_by, from_json_text, is_code, next_code, page,
    to_json_text,
};
use crate::db::Db;
use crate::webhooks::outbox;
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need, is_currency};

const WHAT: &str = "Payment";
pub const METHODS: &[&str] = &["card", "bank_transfer", "cash", "check", "other"];

/// A payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    #[schema(example = "pay_abc123def456")]
    pub id: String,
    #[schema(example = "payment")]
    pub object: &'static str,
    #[schema(example = "PAY-10001")]
    pub code: String,
    pub invoice_id: String,
    /// Minor units.
    #[schema(example = 1000)]
    pub amount: i64,
    #[schema(example = "USD")]
    pub currency: String,
    /// `card`, `bank_transfer`, `cash`, `check` or `other`.
    pub method: String,
    /// Your reference (bank transaction id, cheque number).
    pub reference: Option<String>,
    #[schema(value_type = Object, additional_properties = true)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
    #[serde(skip)]
    pub version: i64,
}

/// Body of `POST /v1/payments`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"invoice":"INV-10001","amount":1000,"method":"bank_transfer","reference":"TX-889"}))]
pub struct NewPayment {
    /// Invoice id or code.
    pub invoice: String,
    pub amount: i64,
    /// Must equal the invoice's currency; defaults to it.
    pub currency: Option<String>,
    pub method: Option<String>,
    pub reference: Option<String>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

impl NewPayment {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(&["invoice", "amount", "currency", "method", "reference", "metadata"], &mut e);
        let invoice = input.string("invoice", Need::Required, 1, 64, &mut e);
        let amount = input.int("amount", Need::Required, 1, super::products::MAX_AMOUNT, &mut e);
        let currency = input.string_with(
            "currency",
            Need::Optional,
            3,
            "an ISO 4217 currency code",
            is_currency,
            &mut e,
        );
        let method = input.choice("method", Need::Optional, METHODS, &mut e);
        let reference = input.string("reference", Need::Optional, 1, 200, &mut e);
        let metadata = input.metadata("metadata", &mut e);
        e.finish(|| Self {
            invoice: invoice.unwrap_or_default(),
            amount: amount.unwrap_or_default(),
            currency,
            method,
            reference,
            metadata,
        })
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    code: String,
    invoice_id: String,
    amount: i64,
    currency: String,
    method: String,
    reference: Option<String>,
    metadata: String,
    version: i64,
    created_at: i64,
}

impl From<Row> for Payment {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            object: "payment",
            code: r.code,
            invoice_id: r.invoice_id,
            amount: r.amount,
            currency: r.currency,
            method: r.method,
            reference: r.reference,
            metadata: from_json_text(Some(&r.metadata)),
            created_at: rfc3339(r.created_at),
            version: r.version,
        }
    }
}

const SELECT: &str = "SELECT id, code, invoice_id, amount, currency, method, reference, metadata, version, created_at FROM payments";

/// Applies a payment to its invoice in one transaction.
pub async fn create(db: &Db, tenant: &TenantId, new: NewPayment, now: i64) -> Result<Payment> {
    let mut tx = db.write_tx().await?;
    let code = next_code(&mut tx, tenant, "PAY").await?;
    let sql = format!(
        "SELECT id, code, currency, amount_due, amount_paid FROM invoices WHERE tenant_id = $1 AND {} = $2",
        invoices::by_reference(&new.invoice)
    );
    let (invoice_id, invoice_code, currency, due, paid): (String, String, String, i64, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&tenant.0)
            .bind(&new.invoice)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ResourceError::invalid("invoice", format!("no invoice {}", new.invoice)))?;
    if let Some(c) = &new.currency
        && *c != currency
    {
        return Err(ResourceError::invalid("currency", format!("invoice {invoice_code} is in {currency}")));
    }
    let remaining = due - paid;
    if remaining == 0 {
        return Err(ResourceError::Conflict {
            code: "invoice_paid",
            detail: format!("Invoice {invoice_code} is already paid"),
        });
    }
    // The guard in the WHERE clause makes the check and the update one atomic step.
    let applied = sqlx::query(
        "UPDATE invoices SET amount_paid = amount_paid + $1, \
         status = CASE WHEN amount_paid + $1 = amount_due THEN 'paid' ELSE 'partially_paid' END, \
         version = version + 1, updated_at = $2 WHERE tenant_id = $3 AND id = $4 AND amount_paid + $1 <= amount_due",
    )
    .bind(new.amount)
    .bind(now)
    .bind(&tenant.0)
    .bind(&invoice_id)
    .execute(&mut *tx)
    .await?;
    if applied.rows_affected() == 0 {
        return Err(ResourceError::Conflict {
            code: "overpayment",
            detail: format!(
                "Payment of {} {currency} exceeds the {remaining} {currency} still due on invoice {invoice_code}",
                new.amount
            ),
        });
    }
    let id = new_id("pay");
    sqlx::query(
        "INSERT INTO payments (id, tenant_id, code, invoice_id, amount, currency, method, reference, metadata, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(&code)
    .bind(&invoice_id)
    .bind(new.amount)
    .bind(&currency)
    .bind(new.method.unwrap_or_else(|| "other".into()))
    .bind(&new.reference)
    .bind(to_json_text(&new.metadata.unwrap_or_default()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let payment = read(&mut tx, tenant, &id).await?;
    let invoice = invoices::read(&mut tx, tenant, &invoice_id).await?;
    outbox::emit(&mut tx, tenant, "payment.created", &payment, now).await?;
    let kind = if invoice.status == "paid" { "invoice.paid" } else { "invoice.partially_paid" };
    outbox::emit(&mut tx, tenant, kind, &invoice, now).await?;
    tx.commit().await?;
    Ok(payment)
}

async fn read(conn: &mut sqlx::AnyConnection, tenant: &TenantId, reference: &str) -> Result<Payment> {
    let column = if is_code(reference, "PAY") { "code" } else { "id" };
    let row: Option<Row> = fetch_by(conn, SELECT, column, tenant, reference).await?;
    row.map(Payment::from).ok_or_else(|| ResourceError::not_found(WHAT, reference))
}

pub async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Payment> {
    read(&mut *db.conn().await?, tenant, reference).await
}

pub async fn list(
    db: &Db,
    tenant: &TenantId,
    invoice: Option<&str>,
    params: &ListParams,
) -> Result<Page<Payment>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "payments", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing
        .rows(&mut conn, SELECT, tenant, params, |q| {
            if let Some(invoice) = invoice {
                q.refers_to("invoice_id", "invoices", invoices::by_reference(invoice), invoice);
            }
        })
        .await?;
    Ok(page(rows.into_iter().map(Payment::from).collect(), params.limit, |p| p.id.clone()))
}
