//! OAuth 2.0 for service integrations (the client credentials grant, RFC 6749 §4.4): clients per
//! tenant, with a secret shown once, the scopes (module grants) and environments their tokens
//! may have, and limits of their own; `tokens.rs` issues, looks up, introspects and revokes the
//! opaque access tokens.

pub mod authorize;
pub mod scopes;
pub mod tokens;

use angage_core::clock::rfc3339;
use angage_core::ids::{new_id, random_base62};
use angage_core::key::{Environment, Grants};
use angage_core::limits::Limits;
use angage_core::tenant::TenantId;
use angage_core::validate::{Errors, FieldError, Input, Need};
use serde::Serialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::changes::{self, Kind};
use crate::db::Db;
use crate::keys::Pepper;
use crate::keys::store::Actor;
use crate::resources::store::{ListParams, Listing, Page, ResourceError, Result, page};
use crate::tenants::audit;

const WHAT: &str = "OAuth client";

/// What an admin sends to create a client, or to change one (every field optional then).
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub environments: Option<Vec<Environment>>,
    pub rate_limits: Option<Limits>,
    /// Where the authorization code flow may send the admin back (exact match).
    pub redirect_uris: Option<Vec<String>>,
}

/// A redirect URI as RFC 6749 §3.1.2 and RFC 8252 want it: absolute, no fragment, `https` (or
/// `http` on a loopback address, for apps on the admin's own machine).
fn redirect_uri_problem(uri: &str) -> Option<&'static str> {
    let Ok(url) = url::Url::parse(uri) else { return Some("must be an absolute URL") };
    if url.fragment().is_some() {
        return Some("must not have a fragment");
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        _ => Some("must use https:// (or http:// on 127.0.0.1, [::1] or localhost)"),
    }
}

impl ClientSpec {
    /// `create`: name and scopes are required.
    pub fn parse(body: &Value, create: bool) -> std::result::Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(&["name", "scopes", "environments", "rate_limits", "redirect_uris"], &mut e);
        let need = if create { Need::Required } else { Need::Optional };
        let name = input.string("name", need, 1, 100, &mut e);
        let scopes = input.strings("scopes", 14, 40, &mut e);
        match &scopes {
            Some(list) => {
                for (i, s) in list.iter().enumerate() {
                    if scopes::parse(s).is_none() {
                        e.push(
                            format!("scopes[{i}]"),
                            format!("`{s}` is not a scope; scopes are <module>:read or <module>:write"),
                        );
                    }
                }
                if list.is_empty() {
                    e.push("scopes", "must name at least one scope");
                }
            }
            None if create => e.push("scopes", "is required"),
            None => {}
        }
        let environments = input.strings("environments", 2, 4, &mut e).map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let env = Environment::parse(s);
                    if env.is_none() {
                        e.push(format!("environments[{i}]"), "must be `live` or `test`");
                    }
                    env
                })
                .collect::<Vec<_>>()
        });
        if environments.as_ref().is_some_and(Vec::is_empty) {
            e.push("environments", "must name `live`, `test` or both");
        }
        let rate_limits = input.object("rate_limits", Need::Optional, &mut e, Limits::parse);
        let redirect_uris = input.strings("redirect_uris", 10, 2000, &mut e);
        for (i, uri) in redirect_uris.iter().flatten().enumerate() {
            if let Some(why) = redirect_uri_problem(uri) {
                e.push(format!("redirect_uris[{i}]"), why);
            }
        }
        e.finish(|| Self { name, scopes, environments, rate_limits, redirect_uris })
    }
}

/// A client as admins see it: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientView {
    /// The `client_id`.
    #[schema(example = "oc_abc123def456")]
    pub id: String,
    #[schema(example = "oauth_client")]
    pub object: &'static str,
    pub name: String,
    /// What its tokens may carry at most, e.g. `customers:read`, `orders:write`.
    pub scopes: Vec<String>,
    pub environments: Vec<Environment>,
    /// The client's own limits; null fields use the tenant's defaults.
    pub rate_limits: Limits,
    /// Where the authorization code flow may return (exact match); empty: client credentials only.
    pub redirect_uris: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    /// `active` or `revoked`.
    pub status: &'static str,
    pub revoked_at: Option<String>,
}

/// A client just created or given a new secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedClient {
    #[serde(flatten)]
    pub view: ClientView,
    pub client_id: String,
    /// Shown once; store it now.
    #[schema(example = "cs_7Hq2...")]
    pub client_secret: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) name: String,
    pub(crate) secret_digest: String,
    pub(crate) grants: String,
    pub(crate) environments: String,
    pub(crate) per_second: Option<i64>,
    pub(crate) per_minute: Option<i64>,
    pub(crate) per_hour: Option<i64>,
    pub(crate) per_day: Option<i64>,
    pub(crate) burst: Option<i64>,
    created_by: String,
    created_at: i64,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) redirect_uris: String,
}

pub(crate) const COLUMNS: &str = "id, tenant_id, name, secret_digest, grants, environments, per_second, per_minute, \
    per_hour, per_day, burst, created_by, created_at, revoked_at, redirect_uris";

impl Row {
    pub(crate) fn grants(&self) -> Grants {
        serde_json::from_str(&self.grants).unwrap_or_default()
    }

    pub(crate) fn environments(&self) -> Vec<Environment> {
        let names: Vec<String> = serde_json::from_str(&self.environments).unwrap_or_default();
        names.iter().filter_map(|n| Environment::parse(n)).collect()
    }

    pub(crate) fn limits(&self) -> Limits {
        let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        Limits {
            per_second: n(self.per_second),
            per_minute: n(self.per_minute),
            per_hour: n(self.per_hour),
            per_day: n(self.per_day),
            burst: n(self.burst),
        }
    }

    pub(crate) fn redirect_uris(&self) -> Vec<String> {
        serde_json::from_str(&self.redirect_uris).unwrap_or_default()
    }

    fn view(&self) -> ClientView {
        ClientView {
            id: self.id.clone(),
            object: "oauth_client",
            name: self.name.clone(),
            scopes: scopes::of_grants(&self.grants()),
            environments: self.environments(),
            rate_limits: self.limits(),
            redirect_uris: self.redirect_uris(),
            created_by: self.created_by.clone(),
            created_at: rfc3339(self.created_at),
            status: if self.revoked_at.is_some() { "revoked" } else { "active" },
            revoked_at: self.revoked_at.map(rfc3339),
        }
    }
}

fn secret() -> String {
    format!("cs_{}", random_base62(40))
}

fn limit_columns(l: &Limits) -> [Option<i64>; 5] {
    let n = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
    [n(l.per_second), n(l.per_minute), n(l.per_hour), n(l.per_day), n(l.burst)]
}

fn env_json(envs: &[Environment]) -> String {
    json!(envs.iter().map(|e| e.as_str()).collect::<Vec<_>>()).to_string()
}

pub async fn create(
    db: &Db,
    pepper: &Pepper,
    tenant: &TenantId,
    actor: &Actor,
    spec: ClientSpec,
    now: i64,
) -> Result<IssuedClient> {
    let id = new_id("oc");
    let secret = secret();
    let grants = scopes::to_grants(spec.scopes.as_deref().unwrap_or_default());
    let environments = spec.environments.unwrap_or_else(|| vec![Environment::Live, Environment::Test]);
    let limits = spec.rate_limits.unwrap_or_default();
    let [ps, pm, ph, pd, b] = limit_columns(&limits);
    let mut tx = db.write_tx().await?;
    sqlx::query(
        "INSERT INTO oauth_clients (id, tenant_id, name, secret_digest, grants, environments, per_second, per_minute, \
         per_hour, per_day, burst, created_by, created_at, updated_at, redirect_uris) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)",
    )
    .bind(&id)
    .bind(&tenant.0)
    .bind(spec.name.unwrap_or_default())
    .bind(pepper.digest_str(&secret))
    .bind(serde_json::to_string(&grants).unwrap_or_default())
    .bind(env_json(&environments))
    .bind(ps)
    .bind(pm)
    .bind(ph)
    .bind(pd)
    .bind(b)
    .bind(&actor.0)
    .bind(now)
    .bind(json!(spec.redirect_uris.unwrap_or_default()).to_string())
    .execute(&mut *tx)
    .await?;
    let view = row(&mut tx, tenant, &id).await?.view();
    audit::record(
        &mut tx,
        tenant,
        &actor.0,
        "oauth_client.created",
        ("oauth_client", &id),
        &json!({"name": view.name, "scopes": view.scopes, "environments": view.environments, "rate_limits": view.rate_limits}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedClient { client_id: id, view, client_secret: secret })
}

async fn row(conn: &mut sqlx::AnyConnection, tenant: &TenantId, id: &str) -> Result<Row> {
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE tenant_id = $1 AND id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ResourceError::not_found(WHAT, id))
}

pub async fn get(db: &Db, tenant: &TenantId, id: &str) -> Result<ClientView> {
    Ok(row(&mut *db.conn().await?, tenant, id).await?.view())
}

pub async fn list(db: &Db, tenant: &TenantId, params: &ListParams) -> Result<Page<ClientView>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "oauth_clients", alias: "", id_col: "id" };
    let select = format!("SELECT {COLUMNS} FROM oauth_clients");
    let rows: Vec<Row> = listing.rows(&mut conn, &select, tenant, params, |_| {}).await?;
    Ok(page(rows.iter().map(Row::view).collect(), params.limit, |c| c.id.clone()))
}

pub async fn update(
    db: &Db,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    spec: ClientSpec,
    now: i64,
) -> Result<ClientView> {
    let mut tx = db.write_tx().await?;
    let current = row(&mut tx, tenant, id).await?;
    if current.revoked_at.is_some() {
        return Err(ResourceError::Conflict {
            code: "client_revoked",
            detail: format!("OAuth client {id} is revoked and cannot be changed"),
        });
    }
    let grants = spec.scopes.as_deref().map_or_else(|| current.grants(), scopes::to_grants);
    let environments = spec.environments.unwrap_or_else(|| current.environments());
    let limits = spec.rate_limits.unwrap_or_else(|| current.limits());
    let [ps, pm, ph, pd, b] = limit_columns(&limits);
    let redirect_uris = spec.redirect_uris.unwrap_or_else(|| current.redirect_uris());
    let done = sqlx::query(
        "UPDATE oauth_clients SET name = $1, grants = $2, environments = $3, per_second = $4, per_minute = $5, \
         per_hour = $6, per_day = $7, burst = $8, updated_at = $9, redirect_uris = $12 \
         WHERE tenant_id = $10 AND id = $11 AND revoked_at IS NULL",
    )
    .bind(spec.name.unwrap_or(current.name))
    .bind(serde_json::to_string(&grants).unwrap_or_default())
    .bind(env_json(&environments))
    .bind(ps)
    .bind(pm)
    .bind(ph)
    .bind(pd)
    .bind(b)
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .bind(json!(redirect_uris).to_string())
    .execute(&mut *tx)
    .await?;
    // Revoked since it was read: the revocation stands.
    if done.rows_affected() == 0 {
        return Err(ResourceError::Conflict {
            code: "client_revoked",
            detail: format!("OAuth client {id} is revoked and cannot be changed"),
        });
    }
    let view = row(&mut tx, tenant, id).await?.view();
    audit::record(
        &mut tx,
        tenant,
        &actor.0,
        "oauth_client.updated",
        ("oauth_client", id),
        &json!({"scopes": view.scopes, "environments": view.environments, "rate_limits": view.rate_limits}),
        now,
    )
    .await?;
    // Cached tokens carry the client's grants and limits: every node drops them.
    changes::record(&mut tx, Some(tenant), Kind::Key, id, now).await?;
    tx.commit().await?;
    Ok(view)
}

/// A new secret; the old one stops working at once. Issued tokens keep working until they expire.
pub async fn rotate_secret(
    db: &Db,
    pepper: &Pepper,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    now: i64,
) -> Result<IssuedClient> {
    let secret = secret();
    let mut tx = db.write_tx().await?;
    let done = sqlx::query(
        "UPDATE oauth_clients SET secret_digest = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4 AND revoked_at IS NULL",
    )
    .bind(pepper.digest_str(&secret))
    .bind(now)
    .bind(&tenant.0)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let current = row(&mut tx, tenant, id).await?;
    if done.rows_affected() == 0 {
        return Err(ResourceError::Conflict {
            code: "client_revoked",
            detail: format!("OAuth client {id} is revoked"),
        });
    }
    audit::record(
        &mut tx,
        tenant,
        &actor.0,
        "oauth_client.secret_rotated",
        ("oauth_client", id),
        &json!({}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedClient { client_id: id.to_owned(), view: current.view(), client_secret: secret })
}

/// Revokes the client and every token it holds, on every node at once.
pub async fn revoke(db: &Db, tenant: &TenantId, actor: &Actor, id: &str, now: i64) -> Result<ClientView> {
    let mut tx = db.write_tx().await?;
    sqlx::query("UPDATE oauth_clients SET revoked_at = $1, updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(&tenant.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let view = row(&mut tx, tenant, id).await?.view();
    audit::record(&mut tx, tenant, &actor.0, "oauth_client.revoked", ("oauth_client", id), &json!({}), now)
        .await?;
    changes::record(&mut tx, Some(tenant), Kind::Key, id, now).await?;
    tx.commit().await?;
    Ok(view)
}

/// The client `client_id` names, when `secret` is its secret (compared in constant time) and it
/// is not revoked.
pub(crate) async fn authenticate(
    conn: &mut sqlx::AnyConnection,
    pepper: &Pepper,
    client_id: &str,
    secret: &str,
) -> std::result::Result<Option<Row>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE id = $1");
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(client_id).fetch_optional(&mut *conn).await?;
    let presented = pepper.digest_str(secret);
    Ok(row.filter(|r| {
        r.revoked_at.is_none() && bool::from(r.secret_digest.as_bytes().ct_eq(presented.as_bytes()))
    }))
}
