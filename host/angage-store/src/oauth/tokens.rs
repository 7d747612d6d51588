//! Access tokens: opaque like API keys (`at_live_` or `at_test_`, a random part, a checksum),
//! stored as digests, issued by the token endpoint to an authenticated client for scopes within
//! its grants, living for the tenant's "Token expiration"; looked up on the request path as a
//! key whose id is the client's; introspected (RFC 7662) and revoked (RFC 7009).

use std::sync::Arc;

use angage_core::key::{Environment, Grants, KeyRecord};
use angage_core::tenant::TenantId;
use serde::Serialize;

use super::{Row as ClientRow, authenticate, scopes};
use crate::changes::{self, Kind};
use crate::db::Db;
use crate::keys::{ApiKey, Pepper};
use crate::tenants::settings;

/// Why the token endpoint refuses: the RFC 6749 §5.2 error codes.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    InvalidClient(&'static str),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl TokenError {
    /// The `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidScope(_) => "invalid_scope",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::Db(_) => "server_error",
        }
    }
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct Issued {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    /// The authorization code flow's: rotates on every use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A client's credentials as presented.
pub struct Credentials<'a> {
    pub client_id: &'a str,
    pub secret: &'a str,
}

const BAD_CLIENT: &str = "Client authentication failed: unknown client, wrong secret or revoked client";

async fn client(
    conn: &mut sqlx::AnyConnection,
    pepper: &Pepper,
    c: &Credentials<'_>,
) -> Result<ClientRow, TokenError> {
    authenticate(conn, pepper, c.client_id, c.secret).await?.ok_or(TokenError::InvalidClient(BAD_CLIENT))
}

/// The client credentials grant: a token for `scope` (space-separated; absent: every scope the
/// client has) in `environment` (absent: live when allowed, else test).
pub async fn issue(
    db: &Db,
    pepper: &Pepper,
    credentials: &Credentials<'_>,
    scope: Option<&str>,
    environment: Option<&str>,
    now: i64,
) -> Result<Issued, TokenError> {
    let mut tx = db.write_tx().await?;
    let client = client(&mut tx, pepper, credentials).await?;
    let tenant = TenantId(client.tenant_id.clone());
    let tenant_settings = settings::get(&mut tx, &tenant).await?;
    if !tenant_settings.security.oauth_enabled {
        return Err(TokenError::UnauthorizedClient(
            "OAuth 2.0 is off for this client's tenant (its \"OAuth 2.0\" setting)".into(),
        ));
    }
    let allowed = client.grants();
    let wanted = match scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => allowed.clone(),
        Some(s) => {
            let list: Vec<&str> = s.split(' ').filter(|p| !p.is_empty()).collect();
            if let Some(bad) = list.iter().find(|p| scopes::parse(p).is_none()) {
                return Err(TokenError::InvalidScope(format!(
                    "`{bad}` is not a scope; scopes are <module>:read or <module>:write"
                )));
            }
            scopes::to_grants(&list)
        }
    };
    if !scopes::within(&wanted, &allowed) {
        return Err(TokenError::InvalidScope(format!(
            "the client may be granted at most: {}",
            scopes::of_grants(&allowed).join(" ")
        )));
    }
    let envs = client.environments();
    let environment = match environment {
        None if envs.contains(&Environment::Live) => Environment::Live,
        None => envs.first().copied().unwrap_or(Environment::Test),
        Some(e) => match Environment::parse(e) {
            Some(env) if envs.contains(&env) => env,
            Some(_) => {
                return Err(TokenError::UnauthorizedClient(format!("this client may not get {e} tokens")));
            }
            None => return Err(TokenError::InvalidRequest("environment must be live or test".into())),
        },
    };
    let ttl_ms = tenant_settings.security.oauth_token_ttl_minutes.max(1) * 60_000;
    let scope = scopes::of_grants(&wanted).join(" ");
    let token = mint(&mut tx, pepper, &client, environment, &wanted, ttl_ms, None, now).await?;
    tx.commit().await?;
    Ok(Issued {
        access_token: token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: ttl_ms / 1000,
        scope,
        refresh_token: None,
    })
}

/// Stores a new access token for `client` (in `family`, for the authorization code flow).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn mint(
    conn: &mut sqlx::AnyConnection,
    pepper: &Pepper,
    client: &ClientRow,
    environment: Environment,
    grants: &Grants,
    ttl_ms: i64,
    family: Option<&str>,
    now: i64,
) -> Result<ApiKey, sqlx::Error> {
    let token = ApiKey::generate_token(environment);
    sqlx::query(
        "INSERT INTO oauth_tokens (id, tenant_id, client_id, digest, environment, grants, scope, created_at, expires_at, family_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(angage_core::ids::new_id("tok"))
    .bind(&client.tenant_id)
    .bind(&client.id)
    .bind(pepper.digest(&token))
    .bind(environment.as_str())
    .bind(serde_json::to_string(grants).unwrap_or_default())
    .bind(scopes::of_grants(grants).join(" "))
    .bind(now)
    .bind(now + ttl_ms)
    .bind(family)
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// The client a grant's credentials name (for the other grants, in `authorize.rs`).
pub(crate) async fn authenticated_client(
    conn: &mut sqlx::AnyConnection,
    pepper: &Pepper,
    c: &Credentials<'_>,
) -> Result<ClientRow, TokenError> {
    client(conn, pepper, c).await
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_id: String,
    client_id: String,
    tenant_id: String,
    slug: String,
    name: String,
    environment: String,
    grants: String,
    scope: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    client_revoked_at: Option<i64>,
    per_second: Option<i64>,
    per_minute: Option<i64>,
    per_hour: Option<i64>,
    per_day: Option<i64>,
    burst: Option<i64>,
}

const SELECT: &str = "SELECT t.id AS token_id, t.client_id, t.tenant_id, n.slug, c.name, t.environment, t.grants, t.scope, \
     t.created_at, t.expires_at, t.revoked_at, c.revoked_at AS client_revoked_at, c.per_second, c.per_minute, c.per_hour, \
     c.per_day, c.burst FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id JOIN tenants n ON n.id = t.tenant_id";

async fn by_digest(conn: &mut sqlx::AnyConnection, digest: &str) -> Result<Option<TokenRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE t.digest = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(digest).fetch_optional(&mut *conn).await
}

/// The request path's lookup of a token (a cache miss): the principal is its client, with the
/// token's grants and the client's limits.
pub async fn lookup(db: &Db, digest: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    let Some(r) = by_digest(&mut *db.conn().await?, digest).await? else { return Ok(None) };
    let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let grants: Grants = serde_json::from_str(&r.grants).unwrap_or_default();
    Ok(Some(KeyRecord {
        id: r.client_id,
        tenant_id: r.tenant_id,
        tenant_slug: r.slug,
        name: r.name,
        environment: Environment::parse(&r.environment).unwrap_or(Environment::Test),
        grants: Arc::new(grants),
        limits: angage_core::limits::Limits {
            per_second: n(r.per_second),
            per_minute: n(r.per_minute),
            per_hour: n(r.per_hour),
            per_day: n(r.per_day),
            burst: n(r.burst),
        },
        ip_allowlist: Vec::new(),
        ip_restricted: false,
        expires_at: Some(r.expires_at),
        revoked_at: r.revoked_at.or(r.client_revoked_at),
        signing_key: None,
        require_signature: false,
        oauth: true,
        last_used: std::sync::atomic::AtomicI64::new(0),
    }))
}

/// RFC 7662's answer: `active: false` and nothing else for a token that is not usable.
#[derive(Debug, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// Introspects `token` for an authenticated client of the same tenant.
pub async fn introspect(
    db: &Db,
    pepper: &Pepper,
    caller: &Credentials<'_>,
    token: &str,
    now: i64,
) -> Result<Introspection, TokenError> {
    let mut conn = db.conn().await?;
    let caller = client(&mut conn, pepper, caller).await?;
    let inactive = Introspection {
        active: false,
        scope: None,
        client_id: None,
        token_type: None,
        exp: None,
        iat: None,
        environment: None,
    };
    let Ok(parsed) = ApiKey::parse(token) else { return Ok(inactive) };
    if !parsed.is_token() {
        return Ok(inactive);
    }
    let Some(r) = by_digest(&mut conn, &pepper.digest(&parsed)).await? else { return Ok(inactive) };
    let on = settings::get(&mut conn, &TenantId(r.tenant_id.clone())).await?.security.oauth_enabled;
    let usable = r.revoked_at.is_none() && r.client_revoked_at.is_none() && r.expires_at > now && on;
    if r.tenant_id != caller.tenant_id || !usable {
        return Ok(inactive);
    }
    Ok(Introspection {
        active: true,
        scope: Some(r.scope),
        client_id: Some(r.client_id),
        token_type: Some("Bearer"),
        exp: Some(r.expires_at.div_euclid(1000)),
        iat: Some(r.created_at.div_euclid(1000)),
        environment: Some(r.environment),
    })
}

/// Revokes `token` when it was issued to the calling client (RFC 7009: an unknown or foreign
/// token is not an error); every node drops it at once. The client whose token it was.
pub async fn revoke(
    db: &Db,
    pepper: &Pepper,
    caller: &Credentials<'_>,
    token: &str,
    now: i64,
) -> Result<Option<String>, TokenError> {
    let mut tx = db.write_tx().await?;
    let caller = client(&mut tx, pepper, caller).await?;
    let Ok(parsed) = ApiKey::parse(token) else { return Ok(None) };
    let Some(r) = by_digest(&mut tx, &pepper.digest(&parsed)).await? else { return Ok(None) };
    if r.client_id != caller.id {
        return Ok(None);
    }
    sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&r.token_id)
        .execute(&mut *tx)
        .await?;
    changes::record(&mut tx, Some(&TenantId(r.tenant_id)), Kind::Key, &r.client_id, now).await?;
    tx.commit().await?;
    Ok(Some(r.client_id))
}

/// Deletes tokens expired more than a day ago; returns how many.
pub async fn purge(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM oauth_tokens WHERE expires_at < $1")
        .bind(now - 86_400_000)
        .execute(&mut *db.conn().await?)
        .await?
        .rows_affected())
}
