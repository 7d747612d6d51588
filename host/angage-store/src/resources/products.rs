//! Products: what the ERP sells, each with a stock record in `inventory`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::store::{
    Arg, ListParams, Listing, Located, Page, ResourceError, Result, changed_meanwhile, contains_pattern,
    delete_located, fetch_by, from_json_text, locate, page, to_json_text,
};
use crate::db::{Db, is_unique_violation};
use crate::webhooks::outbox;
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need, is_currency};

const WHAT: &str = "Product";
/// Largest unit price or quantity accepted, so totals cannot overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// A product.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Product {
    #[schema(example = "prod_abc123def456")]
    pub id: String,
    #[schema(example = "product")]
    pub object: &'static str,
    /// Your stock-keeping unit, unique per tenant; usable wherever a product id is.
    #[schema(example = "WIDGET-BLUE")]
    pub sku: String,
    #[schema(example = "Blue widget")]
    pub name: String,
    pub description: Option<String>,
    /// Price in minor units of `currency` (cents for USD).
    #[schema(example = 1999)]
    pub unit_price: i64,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    #[schema(value_type = Object, additional_properties = true)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub version: i64,
}

/// Body of `POST /v1/products`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"sku":"WIDGET-BLUE","name":"Blue widget","unit_price":1999,"currency":"USD","initial_stock":100}))]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub unit_price: i64,
    pub currency: String,
    /// Units on hand to start with (default 0).
    pub initial_stock: Option<i64>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

/// Body of `PUT /v1/products/{id}`: the fields given are replaced.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ProductUpdate {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub unit_price: Option<i64>,
    pub currency: Option<String>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

fn is_sku(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn fields(input: Input<'_>, need: Need, allowed: &[&str], e: &mut Errors) -> (ProductUpdate, Option<i64>) {
    input.known(allowed, e);
    let update = ProductUpdate {
        sku: input.string_with("sku", need, 64, "letters, digits, '-', '_' or '.' (at most 64)", is_sku, e),
        name: input.string("name", need, 1, 200, e),
        description: input.string("description", Need::Optional, 0, 2000, e),
        unit_price: input.int("unit_price", need, 0, MAX_AMOUNT, e),
        currency: input.string_with(
            "currency",
            need,
            3,
            "an ISO 4217 currency code such as USD",
            is_currency,
            e,
        ),
        metadata: input.metadata("metadata", e),
    };
    let stock = if allowed.contains(&"initial_stock") {
        input.int("initial_stock", Need::Optional, 0, MAX_AMOUNT, e)
    } else {
        None
    };
    (update, stock)
}

const CREATE_FIELDS: &[&str] =
    &["sku", "name", "description", "unit_price", "currency", "initial_stock", "metadata"];
const UPDATE_FIELDS: &[&str] = &["sku", "name", "description", "unit_price", "currency", "metadata"];

impl NewProduct {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        let (f, initial_stock) = fields(input, Need::Required, CREATE_FIELDS, &mut e);
        e.finish(|| Self {
            sku: f.sku.unwrap_or_default(),
            name: f.name.unwrap_or_default(),
            description: f.description,
            unit_price: f.unit_price.unwrap_or_default(),
            currency: f.currency.unwrap_or_default(),
            initial_stock,
            metadata: f.metadata,
        })
    }
}

impl ProductUpdate {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        let (f, _) = fields(input, Need::Optional, UPDATE_FIELDS, &mut e);
        e.finish(|| f)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    sku: String,
    name: String,
    description: Option<String>,
    unit_price: i64,
    currency: String,
    metadata: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Product {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            object: "product",
            sku: r.sku,
            name: r.name,
            description: r.description,
            unit_price: r.unit_price,
            currency: r.currency,
            metadata: from_json_text(Some(&r.metadata)),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            version: r.version,
        }
    }
}

const SELECT: &str = "SELECT id, sku, name, description, unit_price, currency, metadata, version, created_at, updated_at FROM products";

/// Products are found by id (`prod_...`) or by SKU.
pub fn by_reference(reference: &str) -> &'static str {
    if reference.starts_with("prod_") { "id" } else { "sku" }
}

fn sku_taken(sku: &str) -> ResourceError {
    ResourceError::Conflict { code: "sku_taken", detail: format!("Another product already has SKU {sku}") }
}

async fn sku_exists(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    sku: &str,
    except: &str,
) -> Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM products WHERE tenant_id = $1 AND sku = $2 AND id <> $3")
            .bind(&tenant.0)
            .bind(sku)
            .bind(except)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.is_some())
}

pub async fn create(db: &Db, tenant: &TenantId, new: NewProduct, now: i64) -> Result<Product> {
    let mut tx = db.write_tx().await?;
    if sku_exists(&mut tx, tenant, &new.sku, "").await? {
        return Err(sku_taken(&new.sku));
    }
    let id = new_id("prod");
    sqlx::query(
        "INSERT INTO products (id, tenant_id, sku, name, description, unit_price, currency, metadata, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(&new.sku)
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.unit_price)
    .bind(&new.currency)
    .bind(to_json_text(&new.metadata.unwrap_or_default()))
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| if is_unique_violation(&e) { sku_taken(&new.sku) } else { e.into() })?;
    sqlx::query(
        "INSERT INTO inventory (product_id, tenant_id, on_hand, reserved, version, created_at, updated_at) VALUES ($1, $2, $3, 0, 1, $4, $4)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(new.initial_stock.unwrap_or(0))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let product = read(&mut tx, tenant, &id).await?;
    outbox::emit(&mut tx, tenant, "product.created", &product, now).await?;
    tx.commit().await?;
    Ok(product)
}

async fn read(conn: &mut sqlx::AnyConnection, tenant: &TenantId, reference: &str) -> Result<Product> {
    let row: Option<Row> = fetch_by(conn, SELECT, by_reference(reference), tenant, reference).await?;
    row.map(Product::from).ok_or_else(|| ResourceError::not_found(WHAT, reference))
}

pub async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Product> {
    read(&mut *db.conn().await?, tenant, reference).await
}

pub async fn list(
    db: &Db,
    tenant: &TenantId,
    name: Option<&str>,
    params: &ListParams,
) -> Result<Page<Product>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "products", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing
        .rows(&mut conn, SELECT, tenant, params, |q| {
            if let Some(name) = name {
                q.and("LOWER(name) LIKE ? ESCAPE '\\'", [Arg::Text(contains_pattern(name))]);
            }
        })
        .await?;
    Ok(page(rows.into_iter().map(Product::from).collect(), params.limit, |p| p.id.clone()))
}

pub async fn update(
    db: &Db,
    tenant: &TenantId,
    reference: &str,
    change: ProductUpdate,
    if_match: Option<i64>,
    now: i64,
) -> Result<Product> {
    let mut tx = db.write_tx().await?;
    let sql = format!("{SELECT} WHERE tenant_id = $1 AND {} = $2", by_reference(reference));
    let current: Product = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
        .map(Product::from)
        .ok_or_else(|| ResourceError::not_found(WHAT, reference))?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(ResourceError::Stale { what: WHAT, reference: reference.to_owned() });
    }
    if let Some(sku) = &change.sku
        && sku_exists(&mut tx, tenant, sku, &current.id).await?
    {
        return Err(sku_taken(sku));
    }
    let sku = change.sku.unwrap_or(current.sku);
    // The fields not sent are kept as read: the write holds only if nobody changed the product
    // since (version in the statement), and the SKU is unique by constraint.
    let done = sqlx::query(
        "UPDATE products SET sku = $1, name = $2, description = $3, unit_price = $4, currency = $5, metadata = $6, \
         version = version + 1, updated_at = $7 WHERE tenant_id = $8 AND id = $9 AND version = $10",
    )
    .bind(&sku)
    .bind(change.name.unwrap_or(current.name))
    .bind(change.description.or(current.description))
    .bind(change.unit_price.unwrap_or(current.unit_price))
    .bind(change.currency.unwrap_or(current.currency))
    .bind(to_json_text(&change.metadata.unwrap_or(current.metadata)))
    .bind(now)
    .bind(&tenant.0)
    .bind(&current.id)
    .bind(current.version)
    .execute(&mut *tx)
    .await
    .map_err(|e| if is_unique_violation(&e) { sku_taken(&sku) } else { e.into() })?;
    if done.rows_affected() == 0 {
        return Err(changed_meanwhile(WHAT, reference, if_match));
    }
    let product = read(&mut tx, tenant, &current.id).await?;
    outbox::emit(&mut tx, tenant, "product.updated", &product, now).await?;
    tx.commit().await?;
    Ok(product)
}

/// Deletes a product no order line refers to, with its stock record.
pub async fn delete(
    db: &Db,
    tenant: &TenantId,
    reference: &str,
    if_match: Option<i64>,
    now: i64,
) -> Result<()> {
    let mut tx = db.write_tx().await?;
    let row =
        locate(&mut tx, ("products", "sku", WHAT), by_reference(reference), tenant, reference, if_match)
            .await?;
    let Located { id, code: sku, .. } = &row;
    let (lines,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM order_lines WHERE product_id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if lines > 0 {
        return Err(ResourceError::Conflict {
            code: "product_in_use",
            detail: format!("Product {sku} is on {lines} order line(s) and cannot be deleted"),
        });
    }
    let product = read(&mut tx, tenant, id).await?;
    sqlx::query("DELETE FROM inventory WHERE tenant_id = $1 AND product_id = $2")
        .bind(&tenant.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    delete_located(&mut tx, ("products", WHAT), tenant, &row, if_match).await?;
    outbox::emit(&mut tx, tenant, "product.deleted", &product, now).await?;
    tx.commit().await?;
    Ok(())
}
