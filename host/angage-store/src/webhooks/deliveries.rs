//! Deliveries: one per event and endpoint. Workers claim due ones under a lease (on PostgreSQL
//! with `FOR UPDATE SKIP LOCKED`, so two nodes never take the same one; on SQLite inside the
//! single writer), send them, and record every attempt with its outcome.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::TEST_EVENT;
use super::outbox::{self, marks};
use crate::db::{Backend, Db};
use crate::resources::store::{Arg, ListParams, Listing, Page, ResourceError, Result, page};
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;

const WHAT: &str = "Webhook delivery";
/// An endpoint whose attempts have all failed for this long is disabled.
pub const FAILING_DISABLES_AFTER_MS: i64 = 3 * 24 * 3_600_000;
/// Candidates one claim looks at; it takes what the caller has room for.
const CANDIDATES: usize = 256;

/// A delivery as admins see it in the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    #[schema(example = "wdl_abc123def456")]
    pub id: String,
    #[schema(example = "webhook_delivery")]
    pub object: &'static str,
    pub endpoint_id: String,
    /// Also the `webhook-id` header: the same on every attempt and redelivery.
    #[schema(example = "evt_abc123def456")]
    pub event_id: String,
    #[schema(example = "order.created")]
    pub event_type: String,
    /// `pending` (due at `next_attempt_at`), `delivered`, or `failed` (no more attempts).
    #[schema(example = "delivered")]
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    /// The HTTP status of the last attempt; absent when it got no answer.
    #[schema(example = 200)]
    pub last_status: Option<i64>,
    /// Why the last attempt failed: no connection, a timeout, a refused address, a status.
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    /// The start of the receiver's last answer (at most 1 KB).
    pub response_excerpt: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: String,
    pub latency_ms: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// A delivery with every attempt, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempts_log: Vec<Attempt>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    endpoint_id: String,
    event_id: String,
    event_type: String,
    state: String,
    attempts: i64,
    due_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    last_latency_ms: Option<i64>,
    response_excerpt: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Delivery {
    fn from(r: Row) -> Self {
        Self {
            next_attempt_at: (r.state == "pending").then(|| rfc3339(r.due_at)),
            id: r.id,
            object: "webhook_delivery",
            endpoint_id: r.endpoint_id,
            event_id: r.event_id,
            event_type: r.event_type,
            state: r.state,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            last_latency_ms: r.last_latency_ms,
            response_excerpt: r.response_excerpt,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

const SELECT: &str = "SELECT id, endpoint_id, event_id, event_type, state, attempts, due_at, last_status, last_error, \
                      last_latency_ms, response_excerpt, created_at, updated_at FROM webhook_deliveries";

/// The states a list may be filtered by.
pub const STATES: &[&str] = &["pending", "delivered", "failed"];

pub async fn list(
    db: &Db,
    tenant: &TenantId,
    endpoint: &str,
    state: Option<&str>,
    params: &ListParams,
) -> Result<Page<Delivery>> {
    let mut conn = db.conn().await?;
    exists(&mut conn, tenant, endpoint).await?;
    let listing = Listing { table: "webhook_deliveries", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing
        .rows(&mut conn, SELECT, tenant, params, |q| {
            q.and("endpoint_id = ?", [Arg::Text(endpoint.to_owned())]);
            if let Some(state) = state {
                q.and("state = ?", [Arg::Text(state.to_owned())]);
            }
        })
        .await?;
    Ok(page(rows.into_iter().map(Delivery::from).collect(), params.limit, |d| d.id.clone()))
}

async fn exists(conn: &mut sqlx::AnyConnection, tenant: &TenantId, endpoint: &str) -> Result<()> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
            .bind(&tenant.0)
            .bind(endpoint)
            .fetch_optional(&mut *conn)
            .await?;
    found.map(|_| ()).ok_or_else(|| ResourceError::not_found("Webhook endpoint", endpoint))
}

async fn one(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    endpoint: &str,
    id: &str,
) -> Result<Delivery> {
    let sql = format!("{SELECT} WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(endpoint)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(Delivery::from).ok_or_else(|| ResourceError::not_found(WHAT, id))
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i64,
    started_at: i64,
    latency_ms: i64,
    status: Option<i64>,
    error: Option<String>,
    response_excerpt: Option<String>,
}

pub async fn get(db: &Db, tenant: &TenantId, endpoint: &str, id: &str) -> Result<DeliveryDetail> {
    let mut conn = db.conn().await?;
    let delivery = one(&mut conn, tenant, endpoint, id).await?;
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt, started_at, latency_ms, status, error, response_excerpt FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let attempts_log = rows
        .into_iter()
        .map(|r| Attempt {
            attempt: r.attempt,
            started_at: rfc3339(r.started_at),
            latency_ms: r.latency_ms,
            status: r.status,
            error: r.error,
            response_excerpt: r.response_excerpt,
        })
        .collect();
    Ok(DeliveryDetail { delivery, attempts_log })
}

/// Sends a `webhook.test` event to one endpoint (enabled or not: the admin asked for it).
pub async fn send_test(db: &Db, tenant: &TenantId, endpoint: &str, now: i64) -> Result<Delivery> {
    let mut tx = db.write_tx().await?;
    exists(&mut tx, tenant, endpoint).await?;
    let object = json!({
        "object": "webhook_test",
        "endpoint_id": endpoint,
        "message": "A test event: this endpoint receives and verifies Angage webhooks.",
    });
    let id = new_id("wdl");
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, object, event_created_at, \
         state, attempts, due_at, lease_until, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $7, 0, $7, $7)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(endpoint)
    .bind(new_id("evt"))
    .bind(TEST_EVENT)
    .bind(object.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    outbox::announce(&mut tx).await?;
    let delivery = one(&mut tx, tenant, endpoint, &id).await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Delivers an event again, as a new delivery (the old one keeps its history).
pub async fn redeliver(db: &Db, tenant: &TenantId, endpoint: &str, id: &str, now: i64) -> Result<Delivery> {
    let mut tx = db.write_tx().await?;
    one(&mut tx, tenant, endpoint, id).await?;
    let new = new_id("wdl");
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, object, event_created_at, \
         state, attempts, due_at, lease_until, created_at, updated_at) \
         SELECT $1, tenant_id, endpoint_id, event_id, event_type, object, event_created_at, 'pending', 0, $2, 0, $2, $2 \
         FROM webhook_deliveries WHERE id = $3",
    )
    .bind(&new)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    outbox::announce(&mut tx).await?;
    let delivery = one(&mut tx, tenant, endpoint, &new).await?;
    tx.commit().await?;
    Ok(delivery)
}

/// A delivery a worker holds until `lease_until`, with what it needs to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub event_created_at: i64,
    /// The event's object, JSON.
    pub object: String,
    pub tenant_slug: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub lease_until: i64,
}

/// Claims up to `room` due deliveries of enabled endpoints (and test sends to any endpoint), at most `room_for(endpoint)` of
/// each endpoint (`busy`: endpoints with no room, left out of the search), leased until
/// `now + lease_ms`.
///
/// On PostgreSQL the candidates are locked as they are read (`FOR UPDATE SKIP LOCKED`): two
/// nodes claiming at once take different deliveries. On SQLite they are read outside the single
/// writer, which then takes only those still unclaimed: a search that finds nothing never
/// holds up a write.
pub async fn claim(
    db: &Db,
    now: i64,
    lease_ms: i64,
    room: usize,
    busy: &[String],
    mut room_for: impl FnMut(&str) -> usize + Send,
) -> std::result::Result<Vec<Claimed>, sqlx::Error> {
    if room == 0 {
        return Ok(Vec::new());
    }
    let postgres = db.backend == Backend::Postgres;
    let lock = if postgres { " FOR UPDATE OF d SKIP LOCKED" } else { "" };
    let skip = if busy.is_empty() {
        String::new()
    } else {
        format!(" AND d.endpoint_id NOT IN ({})", marks(2, busy.len()))
    };
    let limit = (room * 4).min(CANDIDATES);
    let sql = format!(
        "SELECT d.id, d.endpoint_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.state = 'pending' AND d.due_at <= $1 AND d.lease_until <= $1 \
         AND (e.enabled = 1 OR d.event_type = '{TEST_EVENT}'){skip} \
         ORDER BY d.due_at LIMIT {limit}{lock}"
    );
    let candidates = async |conn: &mut sqlx::AnyConnection| {
        let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql.clone())).bind(now);
        for endpoint in busy {
            q = q.bind(endpoint);
        }
        q.fetch_all(&mut *conn).await
    };
    let mut tx = None;
    let found = if postgres {
        let t = tx.insert(db.write_tx().await?);
        candidates(t).await?
    } else {
        candidates(&mut *db.conn().await?).await?
    };
    let mut taken: Vec<String> = Vec::new();
    let mut per_endpoint: std::collections::HashMap<String, usize> = Default::default();
    for (id, endpoint) in found {
        if taken.len() >= room {
            break;
        }
        let used = per_endpoint.entry(endpoint.clone()).or_default();
        if *used < room_for(&endpoint) {
            *used += 1;
            taken.push(id);
        }
    }
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = match tx {
        Some(tx) => tx,
        None => db.write_tx().await?,
    };
    let lease_until = now + lease_ms;
    // Still due and unleased: on SQLite another worker may have taken one since it was read.
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = $1, updated_at = $2 WHERE id IN ({}) \
         AND state = 'pending' AND lease_until <= $2 RETURNING id",
        marks(3, taken.len())
    );
    let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql)).bind(lease_until).bind(now);
    for id in &taken {
        q = q.bind(id);
    }
    let leased: Vec<String> = q.fetch_all(&mut *tx).await?.into_iter().map(|(id,)| id).collect();
    if leased.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.event_created_at, d.object, t.slug AS tenant_slug, \
         d.attempts, e.url, e.secret, e.previous_secret, e.previous_until, d.lease_until FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN tenants t ON t.id = d.tenant_id WHERE d.id IN ({})",
        marks(1, leased.len())
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in &leased {
        q = q.bind(id);
    }
    let claimed: Vec<Claimed> = q.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub started_at: i64,
    pub latency_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    /// What happens next.
    pub next: Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered: the receiver answered 2xx.
    Done,
    /// Failed; try again at this time.
    RetryAt(i64),
    /// Failed for the last time.
    GiveUp,
    /// The receiver answered 410 Gone: the endpoint is disabled at once.
    Gone,
}

/// What recording an attempt did to its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The lease had passed to another worker; nothing was written.
    LeaseLost,
    Saved,
    /// Saved, and the endpoint was disabled for this reason.
    Disabled(String),
}

/// Records an attempt and its consequence, if this worker still holds the delivery.
pub async fn record(
    db: &Db,
    claimed: &Claimed,
    outcome: &Outcome,
    now: i64,
) -> std::result::Result<Recorded, sqlx::Error> {
    let mut tx = db.write_tx().await?;
    let (state, due_at) = match outcome.next {
        Next::Done => ("delivered", now),
        Next::RetryAt(at) => ("pending", at),
        Next::GiveUp | Next::Gone => ("failed", now),
    };
    let status = outcome.status.map(i64::from);
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, due_at = $2, lease_until = 0, \
         last_status = $3, last_error = $4, last_latency_ms = $5, response_excerpt = $6, updated_at = $7 \
         WHERE id = $8 AND lease_until = $9",
    )
    .bind(state)
    .bind(due_at)
    .bind(status)
    .bind(&outcome.error)
    .bind(outcome.latency_ms)
    .bind(&outcome.excerpt)
    .bind(now)
    .bind(&claimed.id)
    .bind(claimed.lease_until)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(Recorded::LeaseLost);
    }
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, latency_ms, status, error, response_excerpt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&claimed.id)
    .bind(claimed.attempts + 1)
    .bind(outcome.started_at)
    .bind(outcome.latency_ms)
    .bind(status)
    .bind(&outcome.error)
    .bind(&outcome.excerpt)
    .execute(&mut *tx)
    .await?;
    let recorded = match outcome.next {
        Next::Done => {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                .bind(&claimed.endpoint_id)
                .execute(&mut *tx)
                .await?;
            Recorded::Saved
        }
        Next::Gone => {
            let reason = format!(
                "The receiver answered 410 Gone on {}; deliveries stopped",
                rfc3339(outcome.started_at)
            );
            disable(&mut tx, &claimed.endpoint_id, &reason, None, now).await?
        }
        Next::RetryAt(_) | Next::GiveUp => {
            let (since,): (i64,) = sqlx::query_as(
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1) WHERE id = $2 \
                 RETURNING failing_since",
            )
            .bind(outcome.started_at)
            .bind(&claimed.endpoint_id)
            .fetch_one(&mut *tx)
            .await?;
            if now - since >= FAILING_DISABLES_AFTER_MS {
                let last = outcome.error.as_deref().unwrap_or("no answer");
                let reason = format!(
                    "Every attempt failed for three days (since {}); the last: {last}",
                    rfc3339(since)
                );
                disable(&mut tx, &claimed.endpoint_id, &reason, Some(since), now).await?
            } else {
                Recorded::Saved
            }
        }
    };
    tx.commit().await?;
    Ok(recorded)
}

/// Disables an endpoint that is still enabled (and, when `failing_since` is given, still in that
/// run of failures); an endpoint an admin or another worker changed meanwhile is left as it is.
async fn disable(
    conn: &mut sqlx::AnyConnection,
    endpoint: &str,
    reason: &str,
    failing_since: Option<i64>,
    now: i64,
) -> std::result::Result<Recorded, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2 \
         WHERE id = $3 AND enabled = 1 AND ($4 IS NULL OR failing_since = $4)",
    )
    .bind(reason)
    .bind(now)
    .bind(endpoint)
    .bind(failing_since)
    .execute(&mut *conn)
    .await?;
    Ok(if done.rows_affected() == 1 { Recorded::Disabled(reason.to_owned()) } else { Recorded::Saved })
}

/// The queue as the metrics report it: deliveries pending for enabled endpoints, and how long
/// the oldest due one has waited (0 when none is due).
pub async fn queue(db: &Db, now: i64) -> std::result::Result<(i64, i64), sqlx::Error> {
    let (depth, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(d.due_at) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.state = 'pending' AND e.enabled = 1",
    )
    .fetch_one(&mut *db.conn().await?)
    .await?;
    Ok((depth, oldest.map_or(0, |t| (now - t).max(0))))
}

/// Forgets finished deliveries and their attempts older than the retention.
pub async fn purge(db: &Db, now: i64, retention_days: u64) -> std::result::Result<u64, sqlx::Error> {
    let before =
        now - i64::try_from(retention_days).unwrap_or(i64::MAX / 86_400_000).saturating_mul(86_400_000);
    let mut tx = db.write_tx().await?;
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries \
         WHERE state <> 'pending' AND updated_at < $1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    let done = sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < $1")
        .bind(before)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
