//! Orders: a customer's lines of products. Confirming an order reserves its stock; fulfilling
//! ships it; cancelling gives it back. Every change is one transaction.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::inventory;
use super::store::{
    Arg, ListParams, Listing, Page, ResourceError, Result, changed_meanwhile, from_json_text, is_code,
    next_code, page, to_json_text,
};
use super::{customers, products};
use crate::db::{Db, WriteTx};
use crate::webhooks::outbox;
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need};

const WHAT: &str = "Order";
pub const STATUSES: &[&str] = &["draft", "confirmed", "fulfilled", "cancelled"];

/// An order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    #[schema(example = "ord_abc123def456")]
    pub id: String,
    #[schema(example = "order")]
    pub object: &'static str,
    #[schema(example = "ORD-10001")]
    pub code: String,
    #[schema(example = "cust_abc123def456")]
    pub customer_id: String,
    /// `draft` (no stock held), `confirmed` (stock reserved), `fulfilled` (shipped) or `cancelled`.
    #[schema(example = "confirmed")]
    pub status: String,
    #[schema(example = "USD")]
    pub currency: String,
    /// Sum of the lines' amounts, in minor units; computed by the server.
    #[schema(example = 3998)]
    pub total: i64,
    pub lines: Vec<OrderLine>,
    pub notes: Option<String>,
    #[schema(value_type = Object, additional_properties = true)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub version: i64,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct OrderLine {
    #[schema(example = "prod_abc123def456")]
    pub product_id: String,
    pub quantity: i64,
    /// Minor units.
    pub unit_price: i64,
    /// `quantity * unit_price`.
    pub amount: i64,
}

/// A line as sent by the client: the product by id or SKU; the price defaults to the product's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewOrderLine {
    #[schema(example = "WIDGET-BLUE")]
    pub product: String,
    #[schema(example = 2)]
    pub quantity: i64,
    pub unit_price: Option<i64>,
}

/// Body of `POST /v1/orders`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"customer":"CUST-10001","lines":[{"product":"WIDGET-BLUE","quantity":2}]}))]
pub struct NewOrder {
    /// Customer id or code.
    pub customer: String,
    pub lines: Vec<NewOrderLine>,
    /// `confirmed` (default: reserves stock) or `draft`.
    pub status: Option<String>,
    /// Defaults to the first product's currency; every product must be priced in it.
    pub currency: Option<String>,
    pub notes: Option<String>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

/// Body of `PUT /v1/orders/{id}`: move the status (`confirmed`, `fulfilled`, `cancelled`), edit
/// notes and metadata.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({"status":"fulfilled"}))]
pub struct OrderUpdate {
    pub status: Option<String>,
    pub notes: Option<String>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

impl NewOrder {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(&["customer", "lines", "status", "currency", "notes", "metadata"], &mut e);
        let customer = input.string("customer", Need::Required, 1, 64, &mut e);
        let lines = input.objects("lines", Need::Required, (1, 100), &mut e, |line, e| {
            line.known(&["product", "quantity", "unit_price"], e);
            NewOrderLine {
                product: line.string("product", Need::Required, 1, 64, e).unwrap_or_default(),
                quantity: line
                    .int("quantity", Need::Required, 1, products::MAX_AMOUNT, e)
                    .unwrap_or_default(),
                unit_price: line.int("unit_price", Need::Optional, 0, products::MAX_AMOUNT, e),
            }
        });
        let status = input.choice("status", Need::Optional, &["draft", "confirmed"], &mut e);
        let currency = input.string_with(
            "currency",
            Need::Optional,
            3,
            "an ISO 4217 currency code",
            angage_core::validate::is_currency,
            &mut e,
        );
        let notes = input.string("notes", Need::Optional, 0, 2000, &mut e);
        let metadata = input.metadata("metadata", &mut e);
        e.finish(|| Self {
            customer: customer.unwrap_or_default(),
            lines: lines.unwrap_or_default(),
            status,
            currency,
            notes,
            metadata,
        })
    }
}

impl OrderUpdate {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(&["status", "notes", "metadata"], &mut e);
        let status = input.choice("status", Need::Optional, STATUSES, &mut e);
        let notes = input.string("notes", Need::Optional, 0, 2000, &mut e);
        let metadata = input.metadata("metadata", &mut e);
        e.finish(|| Self { status, notes, metadata })
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    code: String,
    customer_id: String,
    status: String,
    currency: String,
    total: i64,
    notes: Option<String>,
    metadata: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_order(self, lines: Vec<OrderLine>) -> Order {
        Order {
            id: self.id,
            object: "order",
            code: self.code,
            customer_id: self.customer_id,
            status: self.status,
            currency: self.currency,
            total: self.total,
            lines,
            notes: self.notes,
            metadata: from_json_text(Some(&self.metadata)),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            version: self.version,
        }
    }
}

const SELECT: &str = "SELECT id, code, customer_id, status, currency, total, notes, metadata, version, created_at, updated_at FROM orders";

fn by_reference(reference: &str) -> &'static str {
    if is_code(reference, "ORD") { "code" } else { "id" }
}

async fn lines_of(conn: &mut sqlx::AnyConnection, order_id: &str) -> Result<Vec<OrderLine>> {
    Ok(sqlx::query_as("SELECT product_id, quantity, unit_price, amount FROM order_lines WHERE order_id = $1 ORDER BY line_no")
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await?)
}

async fn load(conn: &mut sqlx::AnyConnection, tenant: &TenantId, reference: &str) -> Result<Order> {
    let sql = format!("{SELECT} WHERE tenant_id = $1 AND {} = $2", by_reference(reference));
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ResourceError::not_found(WHAT, reference))?;
    let lines = lines_of(conn, &row.id).await?;
    Ok(row.into_order(lines))
}

/// A resolved product of a line.
struct Priced {
    product_id: String,
    sku: String,
    quantity: i64,
    unit_price: i64,
    amount: i64,
}

pub async fn create(db: &Db, tenant: &TenantId, new: NewOrder, now: i64) -> Result<Order> {
    let mut tx = db.write_tx().await?;
    let code = next_code(&mut tx, tenant, "ORD").await?;
    let customer_sql = format!(
        "SELECT id FROM customers WHERE tenant_id = $1 AND {} = $2",
        customers::by_reference(&new.customer)
    );
    let (customer_id,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(customer_sql))
        .bind(&tenant.0)
        .bind(&new.customer)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ResourceError::invalid("customer", format!("no customer {}", new.customer)))?;

    let mut priced = Vec::with_capacity(new.lines.len());
    let mut errors = Vec::new();
    let mut currency = new.currency.clone();
    for (i, line) in new.lines.iter().enumerate() {
        let sql = format!(
            "SELECT id, sku, unit_price, currency FROM products WHERE tenant_id = $1 AND {} = $2",
            products::by_reference(&line.product)
        );
        let row: Option<(String, String, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&tenant.0)
            .bind(&line.product)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((product_id, sku, list_price, product_currency)) = row else {
            errors.push(FieldError {
                field: format!("lines[{i}].product"),
                message: format!("no product {}", line.product),
            });
            continue;
        };
        let order_currency = currency.get_or_insert_with(|| product_currency.clone());
        if *order_currency != product_currency {
            errors.push(FieldError {
                field: format!("lines[{i}].product"),
                message: format!(
                    "product {sku} is priced in {product_currency}, the order in {order_currency}"
                ),
            });
            continue;
        }
        let unit_price = line.unit_price.unwrap_or(list_price);
        let Some(amount) = line.quantity.checked_mul(unit_price) else {
            errors.push(FieldError {
                field: format!("lines[{i}].quantity"),
                message: "line amount is too large".into(),
            });
            continue;
        };
        priced.push(Priced { product_id, sku, quantity: line.quantity, unit_price, amount });
    }
    let total = priced.iter().try_fold(0i64, |acc, p| acc.checked_add(p.amount));
    if total.is_none() {
        errors.push(FieldError { field: "lines".into(), message: "order total is too large".into() });
    }
    if !errors.is_empty() {
        return Err(ResourceError::Invalid(errors));
    }
    let status = new.status.unwrap_or_else(|| "confirmed".into());
    if status == "confirmed" {
        for p in &priced {
            inventory::reserve(&mut tx, tenant, &p.product_id, &p.sku, p.quantity, now).await?;
        }
    }
    let id = new_id("ord");
    sqlx::query(
        "INSERT INTO orders (id, tenant_id, code, customer_id, status, currency, total, notes, metadata, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(&code)
    .bind(&customer_id)
    .bind(&status)
    .bind(currency.unwrap_or_default())
    .bind(total.unwrap_or_default())
    .bind(&new.notes)
    .bind(to_json_text(&new.metadata.unwrap_or_default()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (i, p) in priced.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price, amount) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(i as i64 + 1)
        .bind(&p.product_id)
        .bind(p.quantity)
        .bind(p.unit_price)
        .bind(p.amount)
        .execute(&mut *tx)
        .await?;
    }
    let order = load(&mut tx, tenant, &id).await?;
    outbox::emit(&mut tx, tenant, "order.created", &order, now).await?;
    tx.commit().await?;
    Ok(order)
}

pub async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Order> {
    let mut conn = db.conn().await?;
    load(&mut conn, tenant, reference).await
}

/// Filters of `GET /v1/orders`.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Customer id or code.
    pub customer: Option<String>,
    pub status: Option<String>,
}

pub async fn list(
    db: &Db,
    tenant: &TenantId,
    filter: &OrderFilter,
    params: &ListParams,
) -> Result<Page<Order>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "orders", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing
        .rows(&mut conn, SELECT, tenant, params, |q| {
            if let Some(customer) = &filter.customer {
                q.refers_to("customer_id", "customers", customers::by_reference(customer), customer);
            }
            if let Some(status) = &filter.status {
                q.and("status = ?", [Arg::Text(status.clone())]);
            }
        })
        .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows {
        let lines = lines_of(&mut conn, &row.id).await?;
        orders.push(row.into_order(lines));
    }
    Ok(page(orders, params.limit, |o| o.id.clone()))
}

pub async fn update(
    db: &Db,
    tenant: &TenantId,
    reference: &str,
    change: OrderUpdate,
    if_match: Option<i64>,
    now: i64,
) -> Result<Order> {
    let mut tx = db.write_tx().await?;
    let current = load(&mut tx, tenant, reference).await?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(ResourceError::Stale { what: WHAT, reference: reference.to_owned() });
    }
    let status = change.status.clone().unwrap_or_else(|| current.status.clone());
    if change.status.is_some() {
        allowed(&current, &status)?;
    }
    // The write holds only if the order is still as it was read: of two requests moving the
    // same order, the second finds it moved and answers as if it had read it so.
    let done = sqlx::query(
        "UPDATE orders SET status = $1, notes = $2, metadata = $3, version = version + 1, updated_at = $4 \
         WHERE tenant_id = $5 AND id = $6 AND version = $7",
    )
    .bind(&status)
    .bind(change.notes.or(current.notes.clone()))
    .bind(to_json_text(&change.metadata.unwrap_or(current.metadata.clone())))
    .bind(now)
    .bind(&tenant.0)
    .bind(&current.id)
    .bind(current.version)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        drop(tx);
        let now_is = get(db, tenant, &current.id).await?;
        if change.status.is_some() {
            allowed(&now_is, &status)?;
        }
        return Err(changed_meanwhile(WHAT, reference, if_match));
    }
    if status != current.status {
        transition(&mut tx, tenant, &current, &status, now).await?;
    }
    let order = load(&mut tx, tenant, &current.id).await?;
    let kind = match (current.status.as_str(), status.as_str()) {
        (from, "cancelled") if from != "cancelled" => "order.cancelled",
        (from, "fulfilled") if from != "fulfilled" => "order.fulfilled",
        _ => "order.updated",
    };
    outbox::emit(&mut tx, tenant, kind, &order, now).await?;
    tx.commit().await?;
    Ok(order)
}

/// Refuses a status change that makes no sense. Asking for the status an order has is fine,
/// except for a final one: an order is fulfilled or cancelled once.
fn allowed(order: &Order, to: &str) -> Result<()> {
    match (order.status.as_str(), to) {
        ("draft", "draft" | "confirmed" | "cancelled")
        | ("confirmed", "confirmed" | "fulfilled" | "cancelled") => Ok(()),
        (from, to) => Err(ResourceError::Conflict {
            code: "invalid_transition",
            detail: format!("Order {} is {from} and cannot become {to}", order.code),
        }),
    }
}

/// Applies the stock effect of an allowed status change.
async fn transition(conn: &mut WriteTx, tenant: &TenantId, order: &Order, to: &str, now: i64) -> Result<()> {
    match (order.status.as_str(), to) {
        ("draft", "confirmed") => {
            for line in &order.lines {
                let (sku,): (String,) = sqlx::query_as("SELECT sku FROM products WHERE id = $1")
                    .bind(&line.product_id)
                    .fetch_one(&mut **conn)
                    .await?;
                inventory::reserve(conn, tenant, &line.product_id, &sku, line.quantity, now).await?;
            }
            Ok(())
        }
        ("confirmed", "fulfilled" | "cancelled") => {
            for line in &order.lines {
                inventory::settle(conn, tenant, &line.product_id, line.quantity, to == "fulfilled", now)
                    .await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
