//! The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 with S256 only) for
//! third-party apps that act for a tenant: an authorization request waits for a logged-in admin
//! of the client's tenant to approve or deny it in the console; an approval mints a one-time code
//! bound to the redirect URI and the code challenge; the code buys an access token and a
//! refresh token. Refresh tokens rotate on every use; one used twice revokes its whole family
//! (every refresh and access token descended from the same approval).

use angage_core::clock::rfc3339;
use angage_core::ids::{new_id, random_base62};
use angage_core::key::{Environment, Grants};
use angage_core::tenant::TenantId;
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::tokens::{Credentials, Issued, TokenError, authenticated_client, mint};
use super::{COLUMNS, Row as ClientRow, scopes};
use crate::changes::{self, Kind};
use crate::db::Db;
use crate::keys::Pepper;
use crate::resources::store::{ResourceError, Result};
use crate::tenants::settings;

/// How long an admin has to decide, and a code to be exchanged.
const PENDING_MS: i64 = 10 * 60_000;
/// How long a refresh token lives when unused.
const REFRESH_MS: i64 = 30 * 86_400_000;

/// Why an authorization request is refused: `Redirect` errors go back to the app (its redirect
/// URI is known good), the others are shown to the admin only (RFC 6749 §4.1.2.1).
#[derive(Debug)]
pub enum AuthorizeError {
    /// Unknown or revoked client, or a redirect URI not registered for it.
    NotRedirectable(String),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
    Db(sqlx::Error),
}

impl From<sqlx::Error> for AuthorizeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// An authorization request's parameters as sent to `/oauth/authorize`.
pub struct Request<'a> {
    pub response_type: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub state: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
}

/// Records the request for an admin to decide; its id, for the console's consent page.
pub async fn request(db: &Db, r: &Request<'_>, now: i64) -> std::result::Result<String, AuthorizeError> {
    let mut conn = db.conn().await?;
    let Some(client_id) = r.client_id else {
        return Err(AuthorizeError::NotRedirectable("client_id is required".into()));
    };
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE id = $1");
    let client: Option<ClientRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(client_id).fetch_optional(&mut *conn).await?;
    let Some(client) = client.filter(|c| c.revoked_at.is_none()) else {
        return Err(AuthorizeError::NotRedirectable("unknown or revoked client".into()));
    };
    let registered = client.redirect_uris();
    let redirect_uri = match r.redirect_uri {
        Some(u) if registered.iter().any(|x| x == u) => u.to_owned(),
        Some(_) => {
            return Err(AuthorizeError::NotRedirectable(
                "redirect_uri is not registered for this client".into(),
            ));
        }
        None if registered.len() == 1 => registered[0].clone(),
        None => return Err(AuthorizeError::NotRedirectable("redirect_uri is required".into())),
    };
    let back = |error: &'static str, description: String| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: r.state.map(str::to_owned),
        error,
        description,
    };
    if r.response_type != Some("code") {
        return Err(back("unsupported_response_type", "response_type must be code".into()));
    }
    let on = settings::get(&mut conn, &TenantId(client.tenant_id.clone())).await?.security.oauth_enabled;
    if !on {
        return Err(back("unauthorized_client", "OAuth 2.0 is off for this client's tenant".into()));
    }
    let Some(challenge) = r.code_challenge.filter(|c| (43..=128).contains(&c.len())) else {
        return Err(back(
            "invalid_request",
            "code_challenge (PKCE, 43 to 128 characters) is required".into(),
        ));
    };
    if r.code_challenge_method != Some("S256") {
        return Err(back("invalid_request", "code_challenge_method must be S256".into()));
    }
    let allowed = client.grants();
    let wanted = match r.scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => allowed.clone(),
        Some(s) => {
            let list: Vec<&str> = s.split(' ').filter(|p| !p.is_empty()).collect();
            if list.iter().any(|p| scopes::parse(p).is_none()) {
                return Err(back("invalid_scope", "scopes are <module>:read or <module>:write".into()));
            }
            scopes::to_grants(&list)
        }
    };
    if !scopes::within(&wanted, &allowed) {
        return Err(back("invalid_scope", "the scope exceeds what the client may have".into()));
    }
    let id = new_id("az");
    sqlx::query(
        "INSERT INTO oauth_authorizations (id, tenant_id, client_id, redirect_uri, grants, scope, state, code_challenge, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(&client.tenant_id)
    .bind(&client.id)
    .bind(&redirect_uri)
    .bind(serde_json::to_string(&wanted).unwrap_or_default())
    .bind(scopes::of_grants(&wanted).join(" "))
    .bind(r.state)
    .bind(challenge)
    .bind(now)
    .bind(now + PENDING_MS)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// What the consent page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pending {
    pub id: String,
    pub client_id: String,
    /// The app asking.
    pub client_name: String,
    /// What it would be allowed to do, e.g. `customers:read`.
    pub scopes: Vec<String>,
    /// Where the admin is sent back.
    pub redirect_uri: String,
    pub expires_at: String,
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: String,
    client_id: String,
    name: String,
    grants: String,
    redirect_uri: String,
    state: Option<String>,
    expires_at: i64,
    decided_at: Option<i64>,
}

async fn pending_row(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    id: &str,
    now: i64,
) -> Result<PendingRow> {
    let row: Option<PendingRow> = sqlx::query_as(
        "SELECT a.id, a.client_id, c.name, a.grants, a.redirect_uri, a.state, a.expires_at, a.decided_at \
         FROM oauth_authorizations a JOIN oauth_clients c ON c.id = a.client_id WHERE a.tenant_id = $1 AND a.id = $2",
    )
    .bind(&tenant.0)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) if r.decided_at.is_none() && r.expires_at > now => Ok(r),
        Some(_) => Err(ResourceError::Conflict {
            code: "authorization_closed",
            detail: "This authorization request was already decided or has expired; start again from the app"
                .into(),
        }),
        None => Err(ResourceError::not_found("authorization request", id)),
    }
}

/// The pending request, for an admin of its tenant.
pub async fn pending(db: &Db, tenant: &TenantId, id: &str, now: i64) -> Result<Pending> {
    let r = pending_row(&mut *db.conn().await?, tenant, id, now).await?;
    let grants: Grants = serde_json::from_str(&r.grants).unwrap_or_default();
    Ok(Pending {
        id: r.id,
        client_id: r.client_id,
        client_name: r.name,
        scopes: scopes::of_grants(&grants),
        redirect_uri: r.redirect_uri,
        expires_at: rfc3339(r.expires_at),
    })
}

/// Where the console sends the admin after deciding.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decision {
    pub redirect_to: String,
}

fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return uri.to_owned(),
    };
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

/// An admin approves (a one-time code goes back to the app) or denies (`access_denied`).
pub async fn decide(
    db: &Db,
    tenant: &TenantId,
    id: &str,
    admin: &str,
    approve: bool,
    now: i64,
) -> Result<Decision> {
    let mut tx = db.write_tx().await?;
    let r = pending_row(&mut tx, tenant, id, now).await?;
    let code = approve.then(|| format!("ac_{}", random_base62(40)));
    let digest = code.as_deref().map(code_digest);
    let done = sqlx::query(
        "UPDATE oauth_authorizations SET decided_at = $1, decided_by = $2, code_digest = $3, expires_at = $4 \
         WHERE id = $5 AND decided_at IS NULL",
    )
    .bind(now)
    .bind(admin)
    .bind(&digest)
    .bind(now + PENDING_MS)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ResourceError::Conflict {
            code: "authorization_closed",
            detail: "This request was just decided".into(),
        });
    }
    tx.commit().await?;
    let state = r.state.unwrap_or_default();
    let mut pairs: Vec<(&str, &str)> = match &code {
        Some(c) => vec![("code", c.as_str())],
        None => {
            vec![("error", "access_denied"), ("error_description", "The administrator denied the request")]
        }
    };
    if !state.is_empty() {
        pairs.push(("state", &state));
    }
    Ok(Decision { redirect_to: with_query(&r.redirect_uri, &pairs) })
}

/// Codes are stored as plain SHA-256: they live minutes and are used once.
fn code_digest(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    id: String,
    client_id: String,
    tenant_id: String,
    redirect_uri: String,
    grants: String,
    code_challenge: String,
    expires_at: i64,
    code_used_at: Option<i64>,
    family_id: Option<String>,
}

/// `grant_type=authorization_code`: the code, the same redirect URI and the PKCE verifier.
pub async fn exchange_code(
    db: &Db,
    pepper: &Pepper,
    credentials: &Credentials<'_>,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: i64,
) -> std::result::Result<Issued, TokenError> {
    let mut tx = db.write_tx().await?;
    let client = authenticated_client(&mut tx, pepper, credentials).await?;
    let row: Option<CodeRow> = sqlx::query_as(
        "SELECT id, client_id, tenant_id, redirect_uri, grants, code_challenge, expires_at, code_used_at, family_id \
         FROM oauth_authorizations WHERE code_digest = $1",
    )
    .bind(code_digest(code))
    .fetch_optional(&mut *tx)
    .await?;
    let bad = |why: &str| TokenError::InvalidGrant(why.to_owned());
    let Some(row) = row.filter(|r| r.client_id == client.id) else {
        return Err(bad("the code is unknown or was issued to another client"));
    };
    if let Some(family) = row.code_used_at.and(row.family_id.as_deref()) {
        // A code used twice: whatever it bought is revoked (RFC 6749 §4.1.2).
        revoke_family(&mut tx, &row.tenant_id, &client.id, family, now).await?;
        tx.commit().await?;
        return Err(bad("the code was already used; the tokens it gave are revoked"));
    }
    if row.expires_at <= now {
        return Err(bad("the code has expired"));
    }
    if redirect_uri != Some(row.redirect_uri.as_str()) {
        return Err(bad("redirect_uri must be the one the code was requested with"));
    }
    let Some(verifier) = verifier else {
        return Err(TokenError::InvalidRequest("code_verifier is required (PKCE)".into()));
    };
    let computed =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if computed != row.code_challenge {
        return Err(bad("code_verifier does not match the code_challenge"));
    }
    let family = new_id("fam");
    let used = sqlx::query(
        "UPDATE oauth_authorizations SET code_used_at = $1, family_id = $2 WHERE id = $3 AND code_used_at IS NULL",
    )
    .bind(now)
    .bind(&family)
    .bind(&row.id)
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() == 0 {
        return Err(bad("the code was already used"));
    }
    let grants: Grants = serde_json::from_str(&row.grants).unwrap_or_default();
    let issued = issue_pair(&mut tx, pepper, &client, &grants, &family, now).await?;
    tx.commit().await?;
    Ok(issued)
}

/// An access token and a refresh token in `family`, for the grants approved.
async fn issue_pair(
    conn: &mut sqlx::AnyConnection,
    pepper: &Pepper,
    client: &ClientRow,
    grants: &Grants,
    family: &str,
    now: i64,
) -> std::result::Result<Issued, TokenError> {
    let tenant_settings = settings::get(&mut *conn, &TenantId(client.tenant_id.clone())).await?;
    if !tenant_settings.security.oauth_enabled {
        return Err(TokenError::UnauthorizedClient("OAuth 2.0 is off for this client's tenant".into()));
    }
    // Never beyond what the client may have now.
    let grants: Grants = grants
        .iter()
        .map(|(m, a)| {
            (m.clone(), (*a).min(client.grants().get(m).copied().unwrap_or(angage_core::key::Access::None)))
        })
        .collect();
    let environment = if client.environments().contains(&Environment::Live) {
        Environment::Live
    } else {
        Environment::Test
    };
    let ttl_ms = tenant_settings.security.oauth_token_ttl_minutes.max(1) * 60_000;
    let access = mint(&mut *conn, pepper, client, environment, &grants, ttl_ms, Some(family), now).await?;
    let refresh = format!("rt_{}", random_base62(40));
    let scope = scopes::of_grants(&grants).join(" ");
    sqlx::query(
        "INSERT INTO oauth_refresh_tokens (id, tenant_id, client_id, family_id, digest, environment, grants, scope, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id("rtk"))
    .bind(&client.tenant_id)
    .bind(&client.id)
    .bind(family)
    .bind(pepper.digest_str(&refresh))
    .bind(environment.as_str())
    .bind(serde_json::to_string(&grants).unwrap_or_default())
    .bind(&scope)
    .bind(now)
    .bind(now + REFRESH_MS)
    .execute(&mut *conn)
    .await?;
    Ok(Issued {
        access_token: access.expose().to_owned(),
        token_type: "Bearer",
        expires_in: ttl_ms / 1000,
        scope,
        refresh_token: Some(refresh),
    })
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: String,
    client_id: String,
    tenant_id: String,
    family_id: String,
    grants: String,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// `grant_type=refresh_token`: a new pair, the presented refresh token spent. A refresh token
/// presented again (stolen, or replayed) revokes its family: the thief and the app both lose
/// access, and the admin approves again.
pub async fn refresh(
    db: &Db,
    pepper: &Pepper,
    credentials: &Credentials<'_>,
    refresh_token: &str,
    now: i64,
) -> std::result::Result<Issued, TokenError> {
    let mut tx = db.write_tx().await?;
    let client = authenticated_client(&mut tx, pepper, credentials).await?;
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT id, client_id, tenant_id, family_id, grants, expires_at, used_at, revoked_at \
         FROM oauth_refresh_tokens WHERE digest = $1",
    )
    .bind(pepper.digest_str(refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let bad = |why: &str| TokenError::InvalidGrant(why.to_owned());
    let Some(row) = row.filter(|r| r.client_id == client.id) else {
        return Err(bad("the refresh token is unknown or was issued to another client"));
    };
    if row.revoked_at.is_some() {
        return Err(bad("the refresh token has been revoked"));
    }
    if row.used_at.is_some() {
        revoke_family(&mut tx, &row.tenant_id, &client.id, &row.family_id, now).await?;
        tx.commit().await?;
        return Err(bad("the refresh token was already used; every token of its grant is revoked"));
    }
    if row.expires_at <= now {
        return Err(bad("the refresh token has expired"));
    }
    let spent = sqlx::query("UPDATE oauth_refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    if spent.rows_affected() == 0 {
        return Err(bad("the refresh token was just used"));
    }
    let grants: Grants = serde_json::from_str(&row.grants).unwrap_or_default();
    let issued = issue_pair(&mut tx, pepper, &client, &grants, &row.family_id, now).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Revokes every refresh and access token of a family, on every node.
async fn revoke_family(
    conn: &mut crate::db::WriteTx,
    tenant: &str,
    client: &str,
    family: &str,
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE oauth_refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family)
    .execute(&mut **conn)
    .await?;
    sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family)
        .execute(&mut **conn)
        .await?;
    changes::record(conn, Some(&TenantId(tenant.to_owned())), Kind::Key, client, now).await?;
    Ok(())
}
