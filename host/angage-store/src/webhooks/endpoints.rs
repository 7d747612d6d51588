//! Webhook endpoints: where a tenant's events go, which ones, and the secret that signs them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{EVENT_TYPES, Sealer, is_event_type, target};
use crate::db::{Backend, Db};
use crate::resources::store::{ListParams, Listing, Page, ResourceError, Result, page};
use angage_core::clock::rfc3339;
use angage_core::config::WebhookSettings;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need};

const WHAT: &str = "Webhook endpoint";
/// Endpoints one tenant may have.
pub const MAX_PER_TENANT: i64 = 50;

/// An endpoint as admins see it: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    #[schema(example = "we_abc123def456")]
    pub id: String,
    #[schema(example = "webhook_endpoint")]
    pub object: &'static str,
    #[schema(example = "https://erp.example.com/hooks/angage")]
    pub url: String,
    pub description: String,
    /// Event types delivered; empty: every type.
    #[schema(example = json!(["order.created", "invoice.paid"]))]
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why the endpoint stopped receiving deliveries, when the platform disabled it.
    pub disabled_reason: Option<String>,
    /// The end of the signing secret, to tell secrets apart.
    #[schema(example = "whsec_…Xy9Q")]
    pub secret_hint: String,
    /// Until then the previous secret (before a rotation) signs too.
    pub previous_secret_expires_at: Option<String>,
    /// Start of the current run of failed attempts; after three days the endpoint is disabled.
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An endpoint just created or rotated: the only time its signing secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` + base64 of 32 random bytes: verify deliveries with it. Shown once.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5rYb3M1xYU0=")]
    pub secret: String,
}

/// Body of `POST /admin/v1/webhooks`.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({"url": "https://erp.example.com/hooks/angage", "description": "Warehouse", "events": ["order.created"]}))]
pub struct NewEndpoint {
    pub url: String,
    pub description: Option<String>,
    /// Event types to receive; absent or empty: every type.
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Body of `PUT /admin/v1/webhooks/{id}`: the fields given are replaced.
#[derive(Debug, Clone, Default, ToSchema)]
pub struct EndpointUpdate {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    /// `true` also clears why the platform disabled it.
    pub enabled: Option<bool>,
}

fn fields(input: Input<'_>, need: Need, settings: &WebhookSettings, e: &mut Errors) -> EndpointUpdate {
    input.known(&["url", "description", "events", "enabled"], e);
    let url = input.string("url", need, 1, target::MAX_URL, e).and_then(|u| {
        match target::check_url(&u, settings) {
            Ok(parsed) => Some(parsed.to_string()),
            Err(why) => {
                e.push("url", why);
                None
            }
        }
    });
    let events = input.strings("events", EVENT_TYPES.len(), 64, e).and_then(|list| {
        let unknown: Vec<&String> = list.iter().filter(|t| !is_event_type(t)).collect();
        if let Some(first) = unknown.first() {
            e.push(
                "events",
                format!("unknown event type {first:?}; GET /admin/v1/webhooks/event-types lists them"),
            );
            return None;
        }
        let mut list = list;
        list.sort();
        list.dedup();
        Some(list)
    });
    EndpointUpdate {
        url,
        description: input.string("description", Need::Optional, 0, 500, e),
        events,
        enabled: input.boolean("enabled", Need::Optional, e),
    }
}

impl NewEndpoint {
    pub fn parse(body: &Value, settings: &WebhookSettings) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        let f = fields(input, Need::Required, settings, &mut e);
        e.finish(|| Self {
            url: f.url.unwrap_or_default(),
            description: f.description,
            events: f.events,
            enabled: f.enabled,
        })
    }
}

impl EndpointUpdate {
    pub fn parse(body: &Value, settings: &WebhookSettings) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        let f = fields(input, Need::Optional, settings, &mut e);
        e.finish(|| f)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    url: String,
    description: String,
    events: String,
    enabled: i64,
    disabled_reason: Option<String>,
    secret_hint: String,
    previous_until: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const SELECT: &str = "SELECT id, url, description, events, enabled, disabled_reason, secret_hint, previous_until, \
                      failing_since, created_at, updated_at FROM webhook_endpoints";

impl Row {
    fn view(self, now: i64) -> Endpoint {
        Endpoint {
            id: self.id,
            object: "webhook_endpoint",
            url: self.url,
            description: self.description,
            events: serde_json::from_str(&self.events).unwrap_or_default(),
            enabled: self.enabled != 0,
            disabled_reason: self.disabled_reason,
            secret_hint: self.secret_hint,
            previous_secret_expires_at: self.previous_until.filter(|t| *t > now).map(rfc3339),
            failing_since: self.failing_since.map(rfc3339),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

fn hint(secret: &str) -> String {
    let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("whsec_…{tail}")
}

pub async fn create(
    db: &Db,
    sealer: &Sealer,
    tenant: &TenantId,
    new: NewEndpoint,
    now: i64,
) -> Result<EndpointWithSecret> {
    let mut tx = db.write_tx().await?;
    // Creations for one tenant take turns (SQLite's writer does that already), so the count
    // below holds until this one commits.
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(&tenant.0)
            .execute(&mut *tx)
            .await?;
    }
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $1")
        .bind(&tenant.0)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_PER_TENANT {
        return Err(ResourceError::Conflict {
            code: "too_many_endpoints",
            detail: format!("A tenant has at most {MAX_PER_TENANT} webhook endpoints; delete one first"),
        });
    }
    let id = new_id("we");
    let secret = new_secret();
    let events = serde_json::to_string(&new.events.unwrap_or_default()).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, enabled, secret, secret_hint, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(&new.url)
    .bind(new.description.unwrap_or_default())
    .bind(events)
    .bind(i64::from(new.enabled.unwrap_or(true)))
    .bind(sealer.seal(&secret))
    .bind(hint(&secret))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let endpoint = read(&mut tx, tenant, &id, now).await?;
    tx.commit().await?;
    Ok(EndpointWithSecret { endpoint, secret })
}

async fn row(conn: &mut sqlx::AnyConnection, tenant: &TenantId, id: &str) -> Result<Row> {
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE tenant_id = $1 AND id = $2")))
            .bind(&tenant.0)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.ok_or_else(|| ResourceError::not_found(WHAT, id))
}

async fn read(conn: &mut sqlx::AnyConnection, tenant: &TenantId, id: &str, now: i64) -> Result<Endpoint> {
    Ok(row(conn, tenant, id).await?.view(now))
}

pub async fn get(db: &Db, tenant: &TenantId, id: &str, now: i64) -> Result<Endpoint> {
    read(&mut *db.conn().await?, tenant, id, now).await
}

pub async fn list(db: &Db, tenant: &TenantId, params: &ListParams, now: i64) -> Result<Page<Endpoint>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "webhook_endpoints", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing.rows(&mut conn, SELECT, tenant, params, |_| {}).await?;
    Ok(page(rows.into_iter().map(|r| r.view(now)).collect(), params.limit, |e| e.id.clone()))
}

pub async fn update(
    db: &Db,
    tenant: &TenantId,
    id: &str,
    change: EndpointUpdate,
    now: i64,
) -> Result<Endpoint> {
    let mut tx = db.write_tx().await?;
    let events = change.events.map(|list| serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()));
    // Decided in the statement, on the row as it is: a worker disabling the endpoint meanwhile
    // is never undone by an edit that does not name `enabled`. An admin's choice clears the
    // platform's reason; turning it on again also starts a clean failing record.
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET url = COALESCE($1, url), description = COALESCE($2, description), \
         events = COALESCE($3, events), \
         failing_since = CASE WHEN $4 = 1 AND enabled = 0 THEN NULL ELSE failing_since END, \
         disabled_reason = CASE WHEN $4 IS NULL THEN disabled_reason ELSE NULL END, \
         enabled = COALESCE($4, enabled), updated_at = $5 WHERE tenant_id = $6 AND id = $7",
    )
    .bind(change.url)
    .bind(change.description)
    .bind(events)
    .bind(change.enabled.map(i64::from))
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ResourceError::not_found(WHAT, id));
    }
    let endpoint = read(&mut tx, tenant, id, now).await?;
    tx.commit().await?;
    Ok(endpoint)
}

/// Deletes an endpoint with its deliveries and their attempts.
pub async fn delete(db: &Db, tenant: &TenantId, id: &str) -> Result<()> {
    let mut tx = db.write_tx().await?;
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2)",
    )
    .bind(&tenant.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2")
        .bind(&tenant.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(&tenant.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ResourceError::not_found(WHAT, id));
    }
    tx.commit().await?;
    Ok(())
}

/// A new signing secret; the current one keeps signing for `grace_ms` (both signatures are sent
/// meanwhile), then only the new one signs.
pub async fn rotate(
    db: &Db,
    sealer: &Sealer,
    tenant: &TenantId,
    id: &str,
    grace_ms: i64,
    now: i64,
) -> Result<EndpointWithSecret> {
    let mut tx = db.write_tx().await?;
    let secret = new_secret();
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = CASE WHEN $1 > 0 THEN secret ELSE NULL END, \
         previous_until = CASE WHEN $1 > 0 THEN $2 ELSE NULL END, secret = $3, secret_hint = $4, updated_at = $5 \
         WHERE tenant_id = $6 AND id = $7",
    )
    .bind(grace_ms)
    .bind(now + grace_ms)
    .bind(sealer.seal(&secret))
    .bind(hint(&secret))
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ResourceError::not_found(WHAT, id));
    }
    let endpoint = read(&mut tx, tenant, id, now).await?;
    tx.commit().await?;
    Ok(EndpointWithSecret { endpoint, secret })
}

/// The secrets that sign a delivery now: the current one, and the previous one in its grace.
pub fn signing_secrets(
    sealer: &Sealer,
    secret: &str,
    previous: Option<&str>,
    previous_until: Option<i64>,
    now: i64,
) -> std::result::Result<Vec<String>, super::Unsealable> {
    let mut out = vec![sealer.open(secret)?];
    if let (Some(previous), Some(until)) = (previous, previous_until)
        && until > now
    {
        out.push(sealer.open(previous)?);
    }
    Ok(out)
}
