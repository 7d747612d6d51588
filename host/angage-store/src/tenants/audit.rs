//! The audit log: who changed what, when. Written in the same transaction as the change.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::Db;
use crate::resources::store::{ListParams, Listing, Page, Result, page};
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;

/// One audit entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    /// The admin's e-mail, `cli`, or `system`.
    #[schema(example = "admin@demo.local")]
    pub actor: String,
    #[schema(example = "api_key.revoked")]
    pub action: String,
    #[schema(example = "api_key")]
    pub target_type: String,
    pub target_id: String,
    /// What changed, field by field; secrets never appear.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub created_at: String,
}

/// Records one change.
pub async fn record(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    actor: &str,
    action: &str,
    target: (&str, &str),
    changes: &Value,
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, actor, action, target_type, target_id, changes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("aud"))
    .bind(&tenant.0)
    .bind(actor)
    .bind(action)
    .bind(target.0)
    .bind(target.1)
    .bind(changes.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    actor: String,
    action: String,
    target_type: String,
    target_id: String,
    changes: String,
    created_at: i64,
}

pub async fn list(db: &Db, tenant: &TenantId, params: &ListParams) -> Result<Page<AuditEntry>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "audit_log", alias: "", id_col: "id" };
    let select = "SELECT id, actor, action, target_type, target_id, changes, created_at FROM audit_log";
    let rows: Vec<Row> = listing.rows(&mut conn, select, tenant, params, |_| {}).await?;
    let entries = rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            changes: serde_json::from_str(&r.changes).unwrap_or(Value::Null),
            created_at: rfc3339(r.created_at),
        })
        .collect();
    Ok(page(entries, params.limit, |e| e.id.clone()))
}
