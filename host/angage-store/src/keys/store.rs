//! The key store: create, list, update, revoke, rotate, and lookup by digest. Secrets are never
//! stored; digests never leave this module except into the lookup cache.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use angage_core::key::{Access, Cidr, Environment, Grants, KeyRecord, Scope, grants_for};
use angage_core::limits::Limits;

use super::{ApiKey, Grace, KeyUpdate, NewKey, Pepper};
use crate::changes::{self, Kind};
use crate::db::{Db, WriteTx};
use crate::resources::store::{Arg, ListParams, Listing, Page, ResourceError, Result, page};
use crate::tenants::{audit, settings};
use crate::webhooks::outbox;
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;

const WHAT: &str = "API key";
const DAY_MS: i64 = 86_400_000;

/// A key as admins see it (never its secret or digest).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    #[schema(example = "key_abc123def456")]
    pub id: String,
    #[schema(example = "api_key")]
    pub object: &'static str,
    #[schema(example = "Warehouse sync")]
    pub name: String,
    pub description: Option<String>,
    pub environment: Environment,
    /// The first characters of the secret, for recognising it.
    #[schema(example = "ak_live_8x7y...")]
    pub prefix: String,
    pub scope: Scope,
    #[schema(value_type = std::collections::BTreeMap<String, Access>)]
    pub grants: Grants,
    /// The key's own limits; null fields use the tenant's defaults.
    pub rate_limits: Limits,
    pub ip_allowlist: Vec<String>,
    pub expires_at: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// `active`, `rotating` (replaced, still valid until `expires_at`), `expired` or `revoked`.
    #[schema(example = "active")]
    pub status: &'static str,
    pub revoked_at: Option<String>,
    /// The key that replaced this one.
    pub rotated_to: Option<String>,
    /// The Ed25519 public key the owner signs requests with (base64 of its 32 bytes).
    pub signing_public_key: Option<String>,
    /// Whether this key's requests must be signed whatever the tenant's switch says.
    pub require_signature: bool,
}

/// A key just created or rotated: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The secret. Shown once; store it now.
    #[schema(example = "ak_live_7Hq2...")]
    pub key: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    description: Option<String>,
    environment: String,
    display_prefix: String,
    scope: String,
    grants: String,
    per_second: Option<i64>,
    per_minute: Option<i64>,
    per_hour: Option<i64>,
    per_day: Option<i64>,
    burst: Option<i64>,
    ip_allowlist: String,
    expires_at: Option<i64>,
    created_by: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    rotated_to: Option<String>,
    signing_public_key: Option<String>,
    require_signature: i64,
}

const COLUMNS: &str = "id, name, description, environment, display_prefix, scope, grants, per_second, per_minute, \
    per_hour, per_day, burst, ip_allowlist, expires_at, created_by, created_at, last_used_at, revoked_at, rotated_to, \
    signing_public_key, require_signature";

impl Row {
    fn limits(&self) -> Limits {
        limits_of([self.per_second, self.per_minute, self.per_hour, self.per_day, self.burst])
    }

    fn view(self, now: i64) -> KeyView {
        let status = status(self.revoked_at, self.expires_at, self.rotated_to.is_some(), now);
        KeyView {
            object: "api_key",
            environment: Environment::parse(&self.environment).unwrap_or(Environment::Test),
            scope: Scope::parse(&self.scope).unwrap_or(Scope::Custom),
            grants: serde_json::from_str(&self.grants).unwrap_or_default(),
            rate_limits: self.limits(),
            ip_allowlist: serde_json::from_str(&self.ip_allowlist).unwrap_or_default(),
            expires_at: self.expires_at.map(rfc3339),
            created_at: rfc3339(self.created_at),
            last_used_at: self.last_used_at.map(rfc3339),
            revoked_at: self.revoked_at.map(rfc3339),
            status,
            id: self.id,
            name: self.name,
            description: self.description,
            prefix: self.display_prefix,
            created_by: self.created_by,
            rotated_to: self.rotated_to,
            signing_public_key: self.signing_public_key,
            require_signature: self.require_signature != 0,
        }
    }
}

/// A key's status at `now`.
pub fn status(revoked_at: Option<i64>, expires_at: Option<i64>, rotated: bool, now: i64) -> &'static str {
    if revoked_at.is_some() {
        "revoked"
    } else if expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else if rotated {
        "rotating"
    } else {
        "active"
    }
}

/// Who made a change, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// Issues a new key; the secret is returned here and nowhere else.
pub async fn create(
    db: &Db,
    pepper: &Pepper,
    tenant: &TenantId,
    actor: &Actor,
    new: NewKey,
    now: i64,
) -> Result<IssuedKey> {
    let mut tx = db.write_tx().await?;
    let defaults = settings::get(&mut tx, tenant).await?;
    let days = match new.expires_in_days {
        Some(0) => None,
        Some(d) => Some(d),
        None => defaults.security.default_key_expiration_days,
    };
    let expires_at = days.map(|d| now + d * DAY_MS);
    let id = new_id("key");
    let grants = grants_for(new.scope, &new.grants);
    let secret = insert(&mut tx, pepper, tenant, &id, &new, &grants, expires_at, &actor.0, now).await?;
    audit::record(
        &mut tx,
        tenant,
        &actor.0,
        "api_key.created",
        ("api_key", &id),
        &json!({"name": new.name, "environment": new.environment, "scope": new.scope, "grants": grants,
                "rate_limits": new.rate_limits, "ip_allowlist": new.ip_allowlist, "expires_at": expires_at.map(rfc3339)}),
        now,
    )
    .await?;
    issued(tx, tenant, &id, secret, "api_key.created", now).await
}

/// Inserts a key under `id` with a fresh secret, which it returns: the secret exists only in
/// memory, the store keeps its digest.
#[allow(clippy::too_many_arguments)]
async fn insert(
    conn: &mut sqlx::AnyConnection,
    pepper: &Pepper,
    tenant: &TenantId,
    id: &str,
    new: &NewKey,
    grants: &Grants,
    expires_at: Option<i64>,
    created_by: &str,
    now: i64,
) -> std::result::Result<ApiKey, sqlx::Error> {
    let secret = ApiKey::generate(new.environment);
    let [per_second, per_minute, per_hour, per_day, burst] = columns_of(&new.rate_limits);
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, digest, version, updated_at, name, description, environment, display_prefix, scope, grants, \
         per_second, per_minute, per_hour, per_day, burst, ip_allowlist, expires_at, created_by, created_at, \
         signing_public_key, require_signature) \
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $4, $19, $20)",
    )
        .bind(id)
        .bind(&tenant.0)
        .bind(pepper.digest(&secret))
        .bind(now)
        .bind(&new.name)
        .bind(&new.description)
        .bind(new.environment.as_str())
        .bind(secret.display_prefix())
        .bind(new.scope.as_str())
        .bind(serde_json::to_string(grants).unwrap_or_default())
        .bind(per_second)
        .bind(per_minute)
        .bind(per_hour)
        .bind(per_day)
        .bind(burst)
        .bind(serde_json::to_string(&new.ip_allowlist).unwrap_or_default())
        .bind(expires_at)
        .bind(created_by)
        .bind(&new.signing_public_key)
        .bind(i64::from(new.require_signature))
        .execute(&mut *conn)
        .await?;
    Ok(secret)
}

/// Raises `kind` about key `id`, commits the transaction that issued it and shows it with its
/// secret, this once.
async fn issued(
    mut tx: WriteTx,
    tenant: &TenantId,
    id: &str,
    secret: ApiKey,
    kind: &str,
    now: i64,
) -> Result<IssuedKey> {
    let view = row(&mut tx, tenant, id).await?.view(now);
    outbox::emit(&mut tx, tenant, kind, &view, now).await?;
    tx.commit().await?;
    Ok(IssuedKey { view, key: secret.expose().to_owned() })
}

async fn row(conn: &mut sqlx::AnyConnection, tenant: &TenantId, id: &str) -> Result<Row> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ResourceError::not_found(WHAT, id))
}

pub async fn get(db: &Db, tenant: &TenantId, id: &str, now: i64) -> Result<KeyView> {
    let mut conn = db.conn().await?;
    Ok(row(&mut conn, tenant, id).await?.view(now))
}

/// Keys of a tenant, newest first, optionally of one environment.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    env: Option<Environment>,
    params: &ListParams,
    now: i64,
) -> Result<Page<KeyView>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "api_keys", alias: "", id_col: "id" };
    let rows: Vec<Row> = listing
        .rows(&mut conn, &format!("SELECT {COLUMNS} FROM api_keys"), tenant, params, |q| {
            if let Some(env) = env {
                q.and("environment = ?", [Arg::Text(env.as_str().to_owned())]);
            }
        })
        .await?;
    Ok(page(rows.into_iter().map(|r| r.view(now)).collect(), params.limit, |k| k.id.clone()))
}

pub async fn update(
    db: &Db,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    change: KeyUpdate,
    now: i64,
) -> Result<KeyView> {
    let mut tx = db.write_tx().await?;
    let current = row(&mut tx, tenant, id).await?;
    if current.revoked_at.is_some() {
        return Err(ResourceError::Conflict {
            code: "key_revoked",
            detail: format!("API key {id} is revoked and cannot be changed"),
        });
    }
    let scope = change.scope.unwrap_or_else(|| Scope::parse(&current.scope).unwrap_or(Scope::Custom));
    let old_grants: Grants = serde_json::from_str(&current.grants).unwrap_or_default();
    let grants = match (&change.grants, change.scope) {
        (Some(g), _) => grants_for(Scope::Custom, g),
        (None, Some(s)) => grants_for(s, &old_grants),
        (None, None) => old_grants.clone(),
    };
    let scope = if change.grants.is_some() { Scope::Custom } else { scope };
    let limits = change.rate_limits.unwrap_or_else(|| current.limits());
    let [per_second, per_minute, per_hour, per_day, burst] = columns_of(&limits);
    let allowlist: Vec<String> = change
        .ip_allowlist
        .clone()
        .unwrap_or_else(|| serde_json::from_str(&current.ip_allowlist).unwrap_or_default());
    let mut changes = serde_json::Map::new();
    let mut note = |field: &str, old: Value, new: Value| {
        if old != new {
            changes.insert(field.to_owned(), json!({"from": old, "to": new}));
        }
    };
    note("name", json!(current.name), json!(change.name.clone().unwrap_or(current.name.clone())));
    note(
        "description",
        json!(current.description),
        json!(change.description.clone().or(current.description.clone())),
    );
    note("scope", json!(current.scope), json!(scope));
    note("grants", json!(old_grants), json!(grants));
    note("rate_limits", json!(current.limits()), json!(limits));
    note(
        "ip_allowlist",
        serde_json::from_str(&current.ip_allowlist).unwrap_or(Value::Null),
        json!(allowlist),
    );
    let signing_key = change.signing_public_key.clone().unwrap_or_else(|| current.signing_public_key.clone());
    let require_signature = change.require_signature.unwrap_or(current.require_signature != 0);
    if require_signature && signing_key.is_none() {
        return Err(ResourceError::invalid(
            "require_signature",
            "needs a `signing_public_key` to verify the signatures with",
        ));
    }
    note("signing_public_key", json!(current.signing_public_key), json!(signing_key));
    note("require_signature", json!(current.require_signature != 0), json!(require_signature));
    sqlx::query(
        "UPDATE api_keys SET name = $1, description = $2, scope = $3, grants = $4, per_second = $5, per_minute = $6, \
         per_hour = $7, per_day = $8, burst = $9, ip_allowlist = $10, version = version + 1, updated_at = $11, \
         signing_public_key = $14, require_signature = $15 WHERE tenant_id = $12 AND id = $13",
    )
    .bind(change.name.unwrap_or(current.name))
    .bind(change.description.or(current.description))
    .bind(scope.as_str())
    .bind(serde_json::to_string(&grants).unwrap_or_default())
    .bind(per_second)
    .bind(per_minute)
    .bind(per_hour)
    .bind(per_day)
    .bind(burst)
    .bind(serde_json::to_string(&allowlist).unwrap_or_default())
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .bind(&signing_key)
    .bind(i64::from(require_signature))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        tenant,
        &actor.0,
        "api_key.updated",
        ("api_key", id),
        &Value::Object(changes),
        now,
    )
    .await?;
    changes::record(&mut tx, Some(tenant), Kind::Key, id, now).await?;
    tx.commit().await?;
    get(db, tenant, id, now).await
}

/// Revokes a key at once.
pub async fn revoke(db: &Db, tenant: &TenantId, actor: &Actor, id: &str, now: i64) -> Result<KeyView> {
    let mut tx = db.write_tx().await?;
    row(&mut tx, tenant, id).await?;
    // Once: of two revocations racing, one changes the key and is audited.
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1, version = version + 1, updated_at = $1 \
         WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        audit::record(
            &mut tx,
            tenant,
            &actor.0,
            "api_key.revoked",
            ("api_key", id),
            &json!({"status": {"from": "active", "to": "revoked"}}),
            now,
        )
        .await?;
        changes::record(&mut tx, Some(tenant), Kind::Key, id, now).await?;
        let view = row(&mut tx, tenant, id).await?.view(now);
        outbox::emit(&mut tx, tenant, "api_key.revoked", &view, now).await?;
    }
    tx.commit().await?;
    get(db, tenant, id, now).await
}

/// Issues a replacement with the same settings; the old secret keeps working for `grace`.
pub async fn rotate(
    db: &Db,
    pepper: &Pepper,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    grace: Grace,
    now: i64,
) -> Result<IssuedKey> {
    let mut tx = db.write_tx().await?;
    let current = row(&mut tx, tenant, id).await?;
    let old_status = status(current.revoked_at, current.expires_at, current.rotated_to.is_some(), now);
    if old_status != "active" {
        return Err(ResourceError::Conflict {
            code: "key_not_active",
            detail: format!("API key {id} is {old_status}; only active keys can be rotated"),
        });
    }
    let environment = Environment::parse(&current.environment).unwrap_or(Environment::Test);
    let new = NewKey {
        name: current.name.clone(),
        description: current.description.clone(),
        environment,
        scope: Scope::parse(&current.scope).unwrap_or(Scope::Custom),
        grants: serde_json::from_str(&current.grants).unwrap_or_default(),
        rate_limits: current.limits(),
        ip_allowlist: serde_json::from_str(&current.ip_allowlist).unwrap_or_default(),
        expires_in_days: None,
        // The owner's signing key belongs to the integration, not the secret: it carries over.
        signing_public_key: current.signing_public_key.clone(),
        require_signature: current.require_signature != 0,
    };
    let new_id = new_id("key");
    let old_expiry = match current.expires_at {
        Some(t) => t.min(now + grace.millis()),
        None => now + grace.millis(),
    };
    // A key is replaced at most once: the guard lets one of two racing rotations through.
    let done = sqlx::query(
        "UPDATE api_keys SET rotated_to = $1, expires_at = $2, version = version + 1, updated_at = $3 \
         WHERE tenant_id = $4 AND id = $5 AND rotated_to IS NULL AND revoked_at IS NULL",
    )
    .bind(&new_id)
    .bind(old_expiry)
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ResourceError::Conflict {
            code: "key_not_active",
            detail: format!("API key {id} was rotated or revoked meanwhile; only active keys can be rotated"),
        });
    }
    let secret =
        insert(&mut tx, pepper, tenant, &new_id, &new, &new.grants, current.expires_at, &actor.0, now)
            .await?;
    audit::record(
        &mut tx,
        tenant,
        &actor.0,
        "api_key.rotated",
        ("api_key", id),
        &json!({"rotated_to": new_id, "old_key_valid_until": rfc3339(old_expiry), "grace": grace}),
        now,
    )
    .await?;
    changes::record(&mut tx, Some(tenant), Kind::Key, id, now).await?;
    issued(tx, tenant, &new_id, secret, "api_key.rotated", now).await
}

/// How long before its expiry a key is announced as `api_key.expiring`.
pub const EXPIRING_NOTICE_MS: i64 = 7 * DAY_MS;

/// Raises `api_key.expiring`, once per key, for active keys that expire within seven days (not
/// the old half of a rotation: its end is the rotation's grace). Several nodes may run it: the
/// guarded update lets one of them announce each key. Returns how many were announced.
pub async fn announce_expiring(db: &Db, now: i64) -> Result<usize> {
    let mut tx = db.write_tx().await?;
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT tenant_id, id FROM api_keys WHERE expiry_announced = 0 AND revoked_at IS NULL \
         AND rotated_to IS NULL AND expires_at IS NOT NULL AND expires_at > $1 AND expires_at <= $2 LIMIT 200",
    )
    .bind(now)
    .bind(now + EXPIRING_NOTICE_MS)
    .fetch_all(&mut *tx)
    .await?;
    let mut announced = 0;
    for (tenant, id) in due {
        let tenant = TenantId(tenant);
        let done =
            sqlx::query("UPDATE api_keys SET expiry_announced = 1 WHERE id = $1 AND expiry_announced = 0")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 1 {
            let view = row(&mut tx, &tenant, &id).await?.view(now);
            outbox::emit(&mut tx, &tenant, "api_key.expiring", &view, now).await?;
            announced += 1;
        }
    }
    tx.commit().await?;
    Ok(announced)
}

#[derive(sqlx::FromRow)]
struct LookupRow {
    id: String,
    tenant_id: String,
    slug: String,
    name: String,
    environment: String,
    grants: String,
    per_second: Option<i64>,
    per_minute: Option<i64>,
    per_hour: Option<i64>,
    per_day: Option<i64>,
    burst: Option<i64>,
    ip_allowlist: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    signing_public_key: Option<String>,
    require_signature: i64,
}

/// The request path's lookup (a cache miss): the key and its tenant's slug. The tenant's
/// settings are not joined in: they have a cache of their own.
pub async fn lookup(db: &Db, digest: &str) -> std::result::Result<Option<KeyRecord>, sqlx::Error> {
    let row: Option<LookupRow> = sqlx::query_as(
        "SELECT k.id, k.tenant_id, t.slug, k.name, k.environment, k.grants, k.per_second, k.per_minute, k.per_hour, \
         k.per_day, k.burst, k.ip_allowlist, k.expires_at, k.revoked_at, k.signing_public_key, k.require_signature \
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.digest = $1",
    )
    .bind(digest)
    .fetch_optional(&mut *db.conn().await?)
    .await?;
    Ok(row.map(|r| {
        let (ip_allowlist, ip_restricted) = allowlist(&r.id, &r.ip_allowlist);
        KeyRecord {
            limits: limits_of([r.per_second, r.per_minute, r.per_hour, r.per_day, r.burst]),
            id: r.id,
            tenant_id: r.tenant_id,
            tenant_slug: r.slug,
            name: r.name,
            environment: Environment::parse(&r.environment).unwrap_or(Environment::Test),
            grants: Arc::new(serde_json::from_str(&r.grants).unwrap_or_default()),
            ip_allowlist,
            ip_restricted,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            // A stored key that does not read back is no key: a signed request then fails.
            signing_key: r
                .signing_public_key
                .as_deref()
                .and_then(|k| angage_core::signing::parse_public_key(k).ok()),
            require_signature: r.require_signature != 0,
            oauth: false,
            last_used: std::sync::atomic::AtomicI64::new(0),
        }
    }))
}

/// A key's allowlist as stored, and whether the key is restricted. A list that does not read
/// back (a corrupt entry, corrupt JSON) restricts the key to nowhere: it fails closed.
fn allowlist(key_id: &str, stored: &str) -> (Vec<Cidr>, bool) {
    let entries: Option<Vec<String>> = serde_json::from_str(stored).ok();
    let parsed: Option<Vec<Cidr>> =
        entries.as_ref().and_then(|e| e.iter().map(|c| Cidr::parse(c).ok()).collect());
    match (entries, parsed) {
        (Some(entries), Some(cidrs)) => {
            let restricted = !entries.is_empty();
            (cidrs, restricted)
        }
        _ => {
            tracing::error!(
                key = key_id,
                "a key's IP allowlist does not read back; the key is refused everywhere"
            );
            (Vec::new(), true)
        }
    }
}

/// A key's own limits as stored (one nullable column per window).
fn limits_of([per_second, per_minute, per_hour, per_day, burst]: [Option<i64>; 5]) -> Limits {
    let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Limits {
        per_second: n(per_second),
        per_minute: n(per_minute),
        per_hour: n(per_hour),
        per_day: n(per_day),
        burst: n(burst),
    }
}

/// The columns of a key's own limits.
fn columns_of(l: &Limits) -> [Option<i64>; 5] {
    [l.per_second, l.per_minute, l.per_hour, l.per_day, l.burst]
        .map(|v| v.and_then(|v| i64::try_from(v).ok()))
}

/// Writes aggregated last-used times (one statement per key, never going backwards).
pub async fn flush_last_used(db: &Db, used: &[(String, i64)]) -> std::result::Result<(), sqlx::Error> {
    if used.is_empty() {
        return Ok(());
    }
    let mut tx = db.write_tx().await?;
    for (id, at) in used {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
            .bind(*at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
