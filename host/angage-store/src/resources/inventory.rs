//! Inventory: units on hand and reserved by confirmed orders, one record per product.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::products::{self, MAX_AMOUNT};
use super::store::{ListParams, Listing, Page, ResourceError, Result, page};
use crate::db::{Db, WriteTx};
use crate::webhooks::outbox;
use angage_core::clock::rfc3339;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need};

const WHAT: &str = "Inventory for product";

/// The stock of one product.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InventoryItem {
    #[schema(example = "inventory_item")]
    pub object: &'static str,
    #[schema(example = "prod_abc123def456")]
    pub product_id: String,
    #[schema(example = "WIDGET-BLUE")]
    pub sku: String,
    /// Units in stock.
    pub on_hand: i64,
    /// Units promised to confirmed orders.
    pub reserved: i64,
    /// `on_hand - reserved`: what a new order can take.
    pub available: i64,
    /// `inventory.low` fires when `available` falls below it; absent: never.
    pub low_stock_threshold: Option<i64>,
    pub updated_at: String,
    #[serde(skip)]
    pub version: i64,
}

/// Body of `PUT /v1/inventory/{product}`: set `on_hand`, or move it by `adjustment`, and/or set
/// the `low_stock_threshold`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"on_hand": 250, "low_stock_threshold": 20}))]
pub struct InventoryUpdate {
    /// The counted stock.
    pub on_hand: Option<i64>,
    /// A relative change (received goods, write-offs); may be negative.
    pub adjustment: Option<i64>,
    /// Available stock below this raises `inventory.low`; `null` turns it off.
    #[schema(value_type = Option<i64>)]
    pub low_stock_threshold: Option<Option<i64>>,
}

impl InventoryUpdate {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(&["on_hand", "adjustment", "low_stock_threshold"], &mut e);
        let on_hand = input.int("on_hand", Need::Optional, 0, MAX_AMOUNT, &mut e);
        let adjustment = input.int("adjustment", Need::Optional, -MAX_AMOUNT, MAX_AMOUNT, &mut e);
        let low_stock_threshold = match body.get("low_stock_threshold") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => input.int("low_stock_threshold", Need::Optional, 0, MAX_AMOUNT, &mut e).map(Some),
        };
        if e.is_empty() && on_hand.is_some() && adjustment.is_some() {
            e.push("on_hand", "give exactly one of `on_hand` or `adjustment`");
        }
        if e.is_empty() && on_hand.is_none() && adjustment.is_none() && low_stock_threshold.is_none() {
            e.push("on_hand", "give `on_hand` or `adjustment`, or `low_stock_threshold`");
        }
        e.finish(|| Self { on_hand, adjustment, low_stock_threshold })
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    product_id: String,
    sku: String,
    on_hand: i64,
    reserved: i64,
    low_stock_threshold: Option<i64>,
    version: i64,
    updated_at: i64,
}

impl From<Row> for InventoryItem {
    fn from(r: Row) -> Self {
        Self {
            object: "inventory_item",
            available: r.on_hand - r.reserved,
            product_id: r.product_id,
            sku: r.sku,
            on_hand: r.on_hand,
            reserved: r.reserved,
            low_stock_threshold: r.low_stock_threshold,
            updated_at: rfc3339(r.updated_at),
            version: r.version,
        }
    }
}

const SELECT: &str = "SELECT i.product_id, p.sku, i.on_hand, i.reserved, i.low_stock_threshold, i.version, i.updated_at \
                      FROM inventory i JOIN products p ON p.id = i.product_id";

pub async fn get(db: &Db, tenant: &TenantId, product: &str) -> Result<InventoryItem> {
    let column = if products::by_reference(product) == "id" { "i.product_id" } else { "p.sku" };
    let sql = format!("{SELECT} WHERE i.tenant_id = $1 AND {column} = $2");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(product)
        .fetch_optional(&mut *db.conn().await?)
        .await?;
    row.map(InventoryItem::from).ok_or_else(|| ResourceError::not_found(WHAT, product))
}

pub async fn list(db: &Db, tenant: &TenantId, params: &ListParams) -> Result<Page<InventoryItem>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "inventory", alias: "i.", id_col: "product_id" };
    let rows: Vec<Row> = listing.rows(&mut conn, SELECT, tenant, params, |_| {}).await?;
    Ok(page(rows.into_iter().map(InventoryItem::from).collect(), params.limit, |i| i.product_id.clone()))
}

/// Sets or adjusts the stock; never below what confirmed orders have reserved.
pub async fn update(
    db: &Db,
    tenant: &TenantId,
    product: &str,
    change: InventoryUpdate,
    if_match: Option<i64>,
    now: i64,
) -> Result<InventoryItem> {
    let mut tx = db.write_tx().await?;
    let column = if products::by_reference(product) == "id" { "i.product_id" } else { "p.sku" };
    let sql = format!("{SELECT} WHERE i.tenant_id = $1 AND {column} = $2");
    let current: InventoryItem = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(product)
        .fetch_optional(&mut *tx)
        .await?
        .map(InventoryItem::from)
        .ok_or_else(|| ResourceError::not_found(WHAT, product))?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(ResourceError::Stale { what: WHAT, reference: product.to_owned() });
    }
    // The arithmetic and the floor are in the statement: concurrent adjustments all count, and
    // stock can never drop below what confirmed orders hold, whoever wrote last.
    let (set, target) = match change.on_hand {
        Some(n) => ("$1", n),
        None => ("on_hand + $1", change.adjustment.unwrap_or(0)),
    };
    let threshold = if change.low_stock_threshold.is_some() { "$5" } else { "low_stock_threshold" };
    let mut sql = format!(
        "UPDATE inventory SET on_hand = {set}, low_stock_threshold = {threshold}, version = version + 1, \
         updated_at = $2 WHERE tenant_id = $3 AND product_id = $4 AND {set} >= reserved"
    );
    if if_match.is_some() {
        sql.push_str(if change.low_stock_threshold.is_some() {
            " AND version = $6"
        } else {
            " AND version = $5"
        });
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(target)
        .bind(now)
        .bind(&tenant.0)
        .bind(&current.product_id);
    if let Some(threshold) = change.low_stock_threshold {
        q = q.bind(threshold);
    }
    if let Some(v) = if_match {
        q = q.bind(v);
    }
    if q.execute(&mut *tx).await?.rows_affected() == 0 {
        let row = row_of(&mut tx, tenant, &current.product_id).await?;
        if if_match.is_some_and(|v| v != row.version) {
            return Err(ResourceError::Stale { what: WHAT, reference: product.to_owned() });
        }
        let wanted = if change.on_hand.is_some() { target } else { row.on_hand.saturating_add(target) };
        return Err(ResourceError::Conflict {
            code: "below_reserved",
            detail: format!(
                "Product {} has {} units reserved by confirmed orders; on hand cannot go to {wanted}",
                row.sku, row.reserved
            ),
        });
    }
    let item = stock_changed(&mut tx, tenant, &current.product_id, |_| current.available, now).await?;
    tx.commit().await?;
    Ok(item)
}

/// Raises `inventory.updated`, and `inventory.low` when available stock has just fallen below
/// the product's threshold (from `available_before`, given what is available now); returns the
/// item as it is now.
async fn stock_changed(
    tx: &mut WriteTx,
    tenant: &TenantId,
    product_id: &str,
    available_before: impl FnOnce(i64) -> i64 + Send,
    now: i64,
) -> Result<InventoryItem> {
    let item = row_of(tx, tenant, product_id).await?;
    let available_before = available_before(item.available);
    outbox::emit(tx, tenant, "inventory.updated", &item, now).await?;
    if let Some(threshold) = item.low_stock_threshold
        && item.available < threshold
        && available_before >= threshold
    {
        outbox::emit(tx, tenant, "inventory.low", &item, now).await?;
    }
    Ok(item)
}

async fn row_of(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    product_id: &str,
) -> Result<InventoryItem> {
    let sql = format!("{SELECT} WHERE i.tenant_id = $1 AND i.product_id = $2");
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(product_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(InventoryItem::from)
        .ok_or_else(|| ResourceError::not_found(WHAT, product_id))
}

/// Reserves `quantity` units inside an order's transaction; refuses what is not in stock.
pub async fn reserve(
    conn: &mut WriteTx,
    tenant: &TenantId,
    product_id: &str,
    sku: &str,
    quantity: i64,
    now: i64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE inventory SET reserved = reserved + $1, version = version + 1, updated_at = $2 \
         WHERE tenant_id = $3 AND product_id = $4 AND on_hand - reserved >= $1",
    )
    .bind(quantity)
    .bind(now)
    .bind(&tenant.0)
    .bind(product_id)
    .execute(&mut **conn)
    .await?;
    if done.rows_affected() == 1 {
        stock_changed(conn, tenant, product_id, |after| after + quantity, now).await?;
        return Ok(());
    }
    let (available,): (i64,) =
        sqlx::query_as("SELECT on_hand - reserved FROM inventory WHERE tenant_id = $1 AND product_id = $2")
            .bind(&tenant.0)
            .bind(product_id)
            .fetch_one(&mut **conn)
            .await?;
    Err(ResourceError::Conflict {
        code: "insufficient_stock",
        detail: format!("Product {sku} has {available} units available; {quantity} requested"),
    })
}

/// Moves stock for a confirmed order: `release` gives reserved units back; `ship` takes them out
/// of stock.
pub async fn settle(
    conn: &mut WriteTx,
    tenant: &TenantId,
    product_id: &str,
    quantity: i64,
    ship: bool,
    now: i64,
) -> Result<()> {
    // Guarded like every stock movement: the units must still be reserved (and on hand).
    let sql = if ship {
        "UPDATE inventory SET reserved = reserved - $1, on_hand = on_hand - $1, version = version + 1, updated_at = $2 \
         WHERE tenant_id = $3 AND product_id = $4 AND reserved >= $1 AND on_hand >= $1"
    } else {
        "UPDATE inventory SET reserved = reserved - $1, version = version + 1, updated_at = $2 \
         WHERE tenant_id = $3 AND product_id = $4 AND reserved >= $1"
    };
    let done = sqlx::query(sql)
        .bind(quantity)
        .bind(now)
        .bind(&tenant.0)
        .bind(product_id)
        .execute(&mut **conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ResourceError::Conflict {
            code: "stock_mismatch",
            detail: format!("Product {product_id} no longer holds the {quantity} units this order reserved"),
        });
    }
    // Shipping takes units out of both on hand and reserved: available stays as it was.
    stock_changed(conn, tenant, product_id, |after| if ship { after } else { after - quantity }, now).await?;
    Ok(())
}
