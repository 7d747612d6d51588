//! Owners' changes to admins: a role, disabling (which ends every session at once and stops
//! every token), removal, and a password reset. A tenant always keeps an active owner.

use serde_json::json;

use super::{Admin, AdminError, Role, get, new_hash};
use crate::db::{Db, WriteTx};
use crate::tenants::audit;
use angage_core::config::AdminSettings;
use angage_core::tenant::TenantId;

/// What an owner changes about an admin; `None` keeps it.
#[derive(Debug, Default)]
pub struct AdminChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub name: Option<Option<String>>,
}

/// Applies `change` to the tenant's admin `id`; `actor` is audited.
pub async fn update(
    db: &Db,
    tenant: &TenantId,
    id: &str,
    change: &AdminChange,
    actor: &str,
    now: i64,
) -> Result<Admin, AdminError> {
    let before = get(db, tenant, id).await?;
    let mut tx = db.write_tx().await?;
    let role = change.role.unwrap_or(before.role);
    let disabled = change.disabled.unwrap_or(before.disabled_at.is_some());
    if before.role == Role::Owner && before.disabled_at.is_none() && (role != Role::Owner || disabled) {
        keep_an_owner(&mut tx, tenant, &before.id).await?;
    }
    let name = change.name.clone().unwrap_or_else(|| before.name.clone());
    // A disable keeps its first time; an enable clears it.
    let done = sqlx::query(
        "UPDATE admin_users SET role = $1, name = $2, \
         disabled_at = CASE WHEN $3 = 1 THEN COALESCE(disabled_at, $4) ELSE NULL END \
         WHERE tenant_id = $5 AND id = $6",
    )
    .bind(role.as_str())
    .bind(&name)
    .bind(i64::from(disabled))
    .bind(now)
    .bind(&tenant.0)
    .bind(&before.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AdminError::NotFound(id.to_owned()));
    }
    if disabled {
        end_sessions(&mut tx, &before.id).await?;
    }
    let changes = json!({
        "from": {"role": before.role, "disabled": before.disabled_at.is_some(), "name": before.name},
        "to": {"role": role, "disabled": disabled, "name": name},
    });
    audit::record(&mut tx, tenant, actor, "admin.updated", ("admin", &before.id), &changes, now).await?;
    tx.commit().await?;
    get(db, tenant, &before.id).await
}

/// Removes the tenant's admin `id` with their sessions and tokens.
pub async fn delete(db: &Db, tenant: &TenantId, id: &str, actor: &str, now: i64) -> Result<(), AdminError> {
    let before = get(db, tenant, id).await?;
    let mut tx = db.write_tx().await?;
    if before.role == Role::Owner && before.disabled_at.is_none() {
        keep_an_owner(&mut tx, tenant, &before.id).await?;
    }
    end_sessions(&mut tx, &before.id).await?;
    sqlx::query("DELETE FROM admin_tokens WHERE admin_id = $1").bind(&before.id).execute(&mut *tx).await?;
    let done = sqlx::query("DELETE FROM admin_users WHERE tenant_id = $1 AND id = $2")
        .bind(&tenant.0)
        .bind(&before.id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(AdminError::NotFound(id.to_owned()));
    }
    let changes = json!({"email": before.email, "role": before.role});
    audit::record(&mut tx, tenant, actor, "admin.deleted", ("admin", &before.id), &changes, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a new password for the tenant's admin `id` and ends their sessions.
pub async fn reset_password(
    db: &Db,
    cfg: &AdminSettings,
    tenant: &TenantId,
    id: &str,
    password: &str,
    actor: &str,
    now: i64,
) -> Result<Admin, AdminError> {
    let admin = get(db, tenant, id).await?;
    let hash = new_hash(cfg, password).await?;
    let mut tx = db.write_tx().await?;
    sqlx::query("UPDATE admin_users SET password_hash = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(&hash)
        .bind(&tenant.0)
        .bind(&admin.id)
        .execute(&mut *tx)
        .await?;
    end_sessions(&mut tx, &admin.id).await?;
    audit::record(&mut tx, tenant, actor, "admin.password_reset", ("admin", &admin.id), &json!({}), now)
        .await?;
    tx.commit().await?;
    Ok(admin)
}

/// Refuses when `leaving` is the tenant's only active owner. Inside the change's transaction,
/// so two owners demoting each other at once cannot both pass on PostgreSQL: the second
/// update's row lock waits for the first, then this count sees it.
async fn keep_an_owner(tx: &mut WriteTx, tenant: &TenantId, leaving: &str) -> Result<(), AdminError> {
    // Lock the tenant's owner rows so concurrent owner changes are serialized.
    sqlx::query("UPDATE admin_users SET role = role WHERE tenant_id = $1 AND role = 'owner'")
        .bind(&tenant.0)
        .execute(&mut **tx)
        .await?;
    let (others,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM admin_users WHERE tenant_id = $1 AND role = 'owner' AND disabled_at IS NULL AND id <> $2",
    )
    .bind(&tenant.0)
    .bind(leaving)
    .fetch_one(&mut **tx)
    .await?;
    if others == 0 { Err(AdminError::LastOwner) } else { Ok(()) }
}

async fn end_sessions(tx: &mut WriteTx, admin_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE admin_id = $1").bind(admin_id).execute(&mut **tx).await?;
    Ok(())
}
