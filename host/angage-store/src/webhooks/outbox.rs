//! The outbox: a change that others must hear about appends its event, in the change's own
//! transaction and in one statement, when the tenant has an enabled endpoint subscribed to it.
//! The commit wakes this node's worker (and, on PostgreSQL, every node's, through `NOTIFY`),
//! which [`dispatch`]es outbox rows into deliveries, one per subscribed endpoint, in batches.
//! The change and its event exist together or not at all; an event becomes its deliveries
//! exactly once.

use serde::Serialize;
use serde_json::Value;

use crate::db::{Backend, Db, WriteTx};
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;

/// The PostgreSQL channel a commit with new events notifies.
pub const CHANNEL: &str = "angage_webhooks";
/// Events one dispatch moves into deliveries.
const DISPATCH_BATCH: usize = 500;

/// Records `kind` about `object` (the resource as `/v1` returns it) when an enabled endpoint of
/// the tenant subscribes to it; otherwise the statement writes nothing.
pub async fn emit(
    tx: &mut WriteTx,
    tenant: &TenantId,
    kind: &str,
    object: &impl Serialize,
    now: i64,
) -> Result<(), sqlx::Error> {
    let object = serde_json::to_string(object).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let done = sqlx::query(
        "INSERT INTO webhook_outbox (event_id, tenant_id, event_type, object, created_at) \
         SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM webhook_endpoints \
         WHERE tenant_id = $2 AND enabled = 1 AND (events = '[]' OR events LIKE $6 ESCAPE '\\'))",
    )
    .bind(new_id("evt"))
    .bind(&tenant.0)
    .bind(kind)
    .bind(&object)
    .bind(now)
    .bind(subscription_pattern(kind))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() > 0 {
        announce(tx).await?;
    }
    Ok(())
}

/// What an endpoint's `events` (a JSON array of names) contains when it takes `kind`. Event
/// types are plain names, but `_` is a LIKE wildcard: escaped, the match is exact.
fn subscription_pattern(kind: &str) -> String {
    format!("%\"{}\"%", kind.replace('_', "\\_"))
}

/// Whether an endpoint's stored subscription (a JSON array; empty = all) takes `kind`.
pub fn subscribes(events: &str, kind: &str) -> bool {
    match serde_json::from_str::<Vec<String>>(events) {
        Ok(list) => list.is_empty() || list.iter().any(|e| e == kind),
        Err(_) => false,
    }
}

#[derive(sqlx::FromRow)]
struct Event {
    event_id: String,
    tenant_id: String,
    event_type: String,
    object: String,
    created_at: i64,
}

/// Moves up to a batch of outbox events into deliveries, one per endpoint subscribed to each
/// (as the endpoints are now); returns the events moved. On PostgreSQL the events are locked as
/// they are read (`FOR UPDATE SKIP LOCKED`), so two nodes never move the same one; on SQLite
/// the single writer takes them, after a look outside it that finds whether there are any.
pub async fn dispatch(db: &Db, now: i64) -> Result<usize, sqlx::Error> {
    let select = format!(
        "SELECT event_id, tenant_id, event_type, object, created_at FROM webhook_outbox LIMIT {DISPATCH_BATCH}"
    );
    if db.backend == Backend::Sqlite {
        let any: Option<(String,)> = sqlx::query_as("SELECT event_id FROM webhook_outbox LIMIT 1")
            .fetch_optional(&mut *db.conn().await?)
            .await?;
        if any.is_none() {
            return Ok(0);
        }
    }
    let mut tx = db.write_tx().await?;
    let lock = if db.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let events: Vec<Event> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{select}{lock}"))).fetch_all(&mut *tx).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let sql = format!(
        "SELECT id, tenant_id, events FROM webhook_endpoints WHERE enabled = 1 AND tenant_id IN ({})",
        marks(1, tenants.len())
    );
    let mut q = sqlx::query_as::<_, (String, String, String)>(sqlx::AssertSqlSafe(sql));
    for t in &tenants {
        q = q.bind(*t);
    }
    let endpoints = q.fetch_all(&mut *tx).await?;
    let deliveries: Vec<(&Event, &str)> = events
        .iter()
        .flat_map(|e| {
            endpoints
                .iter()
                .filter(move |(_, tenant, events)| {
                    *tenant == e.tenant_id && subscribes(events, &e.event_type)
                })
                .map(move |(id, ..)| (e, id.as_str()))
        })
        .collect();
    const COLUMNS: usize = 8;
    for chunk in deliveries.chunks(200) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let m: Vec<String> = (1..=COLUMNS).map(|c| format!("${}", i * COLUMNS + c)).collect();
                format!("({}, 'pending', 0, {}, 0, {}, {})", m[..7].join(", "), m[7], m[7], m[7])
            })
            .collect();
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, object, event_created_at, \
             state, attempts, due_at, lease_until, created_at, updated_at) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (event, endpoint) in chunk {
            q = q
                .bind(new_id("wdl"))
                .bind(&event.tenant_id)
                .bind(*endpoint)
                .bind(&event.event_id)
                .bind(&event.event_type)
                .bind(&event.object)
                .bind(event.created_at)
                .bind(now);
        }
        q.execute(&mut *tx).await?;
    }
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    for chunk in ids.chunks(500) {
        let sql = format!("DELETE FROM webhook_outbox WHERE event_id IN ({})", marks(1, chunk.len()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(events.len())
}

pub(super) fn marks(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The body every delivery of an event carries: `{id, type, created_at, tenant, data: {object}}`.
pub fn body(event_id: &str, kind: &str, created_at: i64, tenant_slug: &str, object: &str) -> String {
    let text = |s: &str| Value::String(s.to_owned()).to_string();
    format!(
        "{{\"id\":{},\"type\":{},\"created_at\":{},\"tenant\":{},\"data\":{{\"object\":{object}}}}}",
        text(event_id),
        text(kind),
        text(&rfc3339(created_at)),
        text(tenant_slug)
    )
}

/// Marks the transaction as one that leaves deliveries due: its commit wakes the workers.
pub(super) async fn announce(tx: &mut WriteTx) -> Result<(), sqlx::Error> {
    tx.wake_webhooks();
    if tx.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_subscription_takes_every_event() {
        assert!(subscribes("[]", "order.created"));
        assert!(subscribes(r#"["order.created","invoice.paid"]"#, "invoice.paid"));
        assert!(!subscribes(r#"["order.created"]"#, "order.updated"));
        assert!(!subscribes("not json", "order.created"));
        assert_eq!(subscription_pattern("api_key.created"), r#"%"api\_key.created"%"#);
    }

    #[test]
    fn the_body_is_json_around_the_object_as_stored() {
        let body = body("evt_1", "order.created", 0, "demo", r#"{"id":"ord_1","total":5}"#);
        let parsed: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(parsed["type"], "order.created");
        assert_eq!(parsed["tenant"], "demo");
        assert_eq!(parsed["created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(parsed["data"]["object"]["total"], 5);
    }
}
