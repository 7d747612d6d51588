//! Customers: the people and companies an ERP sells to.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::store::{
    Arg, ListParams, Listing, Located, Page, ResourceError, Result, changed_meanwhile, contains_pattern,
    delete_located, fetch_by, from_json_text, is_code, locate, next_code, page, to_json_text,
};
use crate::db::Db;
use crate::webhooks::outbox;
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need, is_country, is_email};

const WHAT: &str = "Customer";

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    #[schema(example = "123 Main St")]
    pub street: String,
    #[schema(example = "New York")]
    pub city: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "NY")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "10001")]
    pub zip: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[schema(example = "US")]
    pub country: String,
}

/// A customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    #[schema(example = "cust_abc123def456")]
    pub id: String,
    #[schema(example = "customer")]
    pub object: &'static str,
    /// Human reference, sequential per tenant.
    #[schema(example = "CUST-10001")]
    pub code: String,
    #[schema(example = "Acme Corporation")]
    pub name: String,
    #[schema(example = "contact@acmecorp.com")]
    pub email: String,
    pub phone: Option<String>,
    pub billing_address: Option<Address>,
    /// Up to 20 string values of your own.
    #[schema(value_type = Object, additional_properties = true)]
    pub metadata: Map<String, Value>,
    #[schema(example = "2026-11-26T09:17:48.123Z")]
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub version: i64,
}

/// Body of `POST /v1/customers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"name":"Acme Corporation","email":"contact@acmecorp.com","phone":"555-123-4567","billing_address":{"street":"123 Main St","city":"New York","state":"NY","zip":"10001","country":"US"}}))]
pub struct NewCustomer {
    /// 1 to 200 characters.
    pub name: String,
    pub email: String,
    /// Up to 40 characters.
    pub phone: Option<String>,
    pub billing_address: Option<Address>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

/// Body of `PUT /v1/customers/{id}`: the fields given are replaced; absent fields are kept.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CustomerUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub billing_address: Option<Address>,
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub metadata: Option<Map<String, Value>>,
}

/// Filters of `GET /v1/customers`.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub email: Option<String>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
}

const FIELDS: &[&str] = &["name", "email", "phone", "billing_address", "metadata"];

fn address(input: Input<'_>, e: &mut Errors) -> Address {
    input.known(&["street", "city", "state", "zip", "country"], e);
    Address {
        street: input.string("street", Need::Required, 1, 200, e).unwrap_or_default(),
        city: input.string("city", Need::Required, 1, 100, e).unwrap_or_default(),
        state: input.string("state", Need::Optional, 1, 100, e),
        zip: input.string("zip", Need::Optional, 1, 20, e),
        country: input
            .string_with(
                "country",
                Need::Required,
                2,
                "an ISO 3166-1 alpha-2 country code such as US",
                is_country,
                e,
            )
            .unwrap_or_default(),
    }
}

fn fields(input: Input<'_>, need: Need, e: &mut Errors) -> CustomerUpdate {
    input.known(FIELDS, e);
    CustomerUpdate {
        name: input.string("name", need, 1, 200, e),
        email: input.string_with("email", need, 254, "a valid e-mail address", is_email, e),
        phone: input.string("phone", Need::Optional, 1, 40, e),
        billing_address: input.object("billing_address", Need::Optional, e, address),
        metadata: input.metadata("metadata", e),
    }
}

impl NewCustomer {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        let f = fields(input, Need::Required, &mut e);
        e.finish(|| Self {
            name: f.name.unwrap_or_default(),
            email: f.email.unwrap_or_default(),
            phone: f.phone,
            billing_address: f.billing_address,
            metadata: f.metadata,
        })
    }
}

impl CustomerUpdate {
    pub fn parse(body: &Value) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        let f = fields(input, Need::Optional, &mut e);
        e.finish(|| f)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    code: String,
    name: String,
    email: String,
    phone: Option<String>,
    billing_address: Option<String>,
    metadata: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Customer {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            object: "customer",
            code: r.code,
            name: r.name,
            email: r.email,
            phone: r.phone,
            billing_address: r.billing_address.as_deref().and_then(|t| serde_json::from_str(t).ok()),
            metadata: from_json_text(Some(&r.metadata)),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            version: r.version,
        }
    }
}

const COLUMNS: &str =
    "id, code, name, email, phone, billing_address, metadata, version, created_at, updated_at";
const SELECT: &str = "SELECT id, code, name, email, phone, billing_address, metadata, version, created_at, updated_at FROM customers";

/// The clause that finds a customer by id or by code.
pub fn by_reference(reference: &str) -> &'static str {
    if is_code(reference, "CUST") { "code" } else { "id" }
}

pub async fn create(db: &Db, tenant: &TenantId, new: NewCustomer, now: i64) -> Result<Customer> {
    let mut tx = db.write_tx().await?;
    let code = next_code(&mut tx, tenant, "CUST").await?;
    let id = new_id("cust");
    // The row comes back from the insert itself: a SQLite writer holds its slot one statement less.
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO customers (id, tenant_id, code, name, email, phone, billing_address, metadata, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9) RETURNING {COLUMNS}"
    )))
    .bind(&id)
    .bind(&tenant.0)
    .bind(&code)
    .bind(&new.name)
    .bind(&new.email)
    .bind(&new.phone)
    .bind(new.billing_address.as_ref().map(to_json_text))
    .bind(to_json_text(&new.metadata.unwrap_or_default()))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let customer = Customer::from(row);
    outbox::emit(&mut tx, tenant, "customer.created", &customer, now).await?;
    tx.commit().await?;
    Ok(customer)
}

async fn read(conn: &mut sqlx::AnyConnection, tenant: &TenantId, reference: &str) -> Result<Customer> {
    let row: Option<Row> = fetch_by(conn, SELECT, by_reference(reference), tenant, reference).await?;
    row.map(Customer::from).ok_or_else(|| ResourceError::not_found(WHAT, reference))
}

pub async fn get(db: &Db, tenant: &TenantId, reference: &str) -> Result<Customer> {
    read(&mut *db.conn().await?, tenant, reference).await
}

pub async fn list(
    db: &Db,
    tenant: &TenantId,
    filter: &CustomerFilter,
    params: &ListParams,
) -> Result<Page<Customer>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "customers", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing
        .rows(&mut conn, SELECT, tenant, params, |q| {
            if let Some(email) = &filter.email {
                q.and("LOWER(email) = ?", [Arg::Text(email.to_lowercase())]);
            }
            if let Some(name) = &filter.name {
                q.and("LOWER(name) LIKE ? ESCAPE '\\'", [Arg::Text(contains_pattern(name))]);
            }
        })
        .await?;
    Ok(page(rows.into_iter().map(Customer::from).collect(), params.limit, |c| c.id.clone()))
}

pub async fn update(
    db: &Db,
    tenant: &TenantId,
    reference: &str,
    change: CustomerUpdate,
    if_match: Option<i64>,
    now: i64,
) -> Result<Customer> {
    let current = get(db, tenant, reference).await?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(ResourceError::Stale { what: WHAT, reference: reference.to_owned() });
    }
    // The fields not sent are kept as read: the write holds only if nobody changed the
    // customer since.
    let version = current.version;
    let address = change.billing_address.or(current.billing_address);
    let mut tx = db.write_tx().await?;
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE customers SET name = $1, email = $2, phone = $3, billing_address = $4, metadata = $5, \
         version = version + 1, updated_at = $6 WHERE tenant_id = $7 AND id = $8 AND version = $9 RETURNING {COLUMNS}"
    )))
    .bind(change.name.unwrap_or(current.name))
    .bind(change.email.unwrap_or(current.email))
    .bind(change.phone.or(current.phone))
    .bind(address.as_ref().map(to_json_text))
    .bind(to_json_text(&change.metadata.unwrap_or(current.metadata)))
    .bind(now)
    .bind(&tenant.0)
    .bind(&current.id)
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(changed_meanwhile(WHAT, reference, if_match));
    };
    let customer = Customer::from(row);
    outbox::emit(&mut tx, tenant, "customer.updated", &customer, now).await?;
    tx.commit().await?;
    Ok(customer)
}

/// Deletes a customer no order or invoice refers to.
pub async fn delete(
    db: &Db,
    tenant: &TenantId,
    reference: &str,
    if_match: Option<i64>,
    now: i64,
) -> Result<()> {
    let mut tx = db.write_tx().await?;
    let row =
        locate(&mut tx, ("customers", "code", WHAT), by_reference(reference), tenant, reference, if_match)
            .await?;
    let Located { id, code, .. } = &row;
    let (orders,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders WHERE tenant_id = $1 AND customer_id = $2")
            .bind(&tenant.0)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let (invoices,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM invoices WHERE tenant_id = $1 AND customer_id = $2")
            .bind(&tenant.0)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if orders + invoices > 0 {
        return Err(ResourceError::Conflict {
            code: "customer_in_use",
            detail: format!(
                "Customer {code} is referenced by {orders} order(s) and {invoices} invoice(s) and cannot be deleted"
            ),
        });
    }
    let customer = read(&mut tx, tenant, id).await?;
    delete_located(&mut tx, ("customers", WHAT), tenant, &row, if_match).await?;
    outbox::emit(&mut tx, tenant, "customer.deleted", &customer, now).await?;
    tx.commit().await?;
    Ok(())
}
