//! The OAuth 2.0 authorization server's endpoints: the token endpoint (client credentials,
//! RFC 6749 §4.4, errors as §5.2), introspection (RFC 7662), revocation (RFC 7009) and the
//! discovery metadata (RFC 8414). Clients authenticate with HTTP Basic or form fields.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use crate::AppState;
use angage_core::key::MODULES;
use angage_store::oauth::authorize::{self, AuthorizeError};
use angage_store::oauth::tokens::{self, Credentials, TokenError};

/// An RFC 6749 §5.2 error.
pub(crate) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

fn error(status: StatusCode, code: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError { status, code, description: description.into() }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code, "error_description": self.description});
        let mut response = (self.status, Json(body)).into_response();
        no_store(response.headers_mut());
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"angage\""));
        }
        response
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn token_error(e: TokenError) -> OAuthError {
    match e {
        TokenError::InvalidClient(d) => error(StatusCode::UNAUTHORIZED, "invalid_client", d),
        TokenError::Db(e) => {
            tracing::error!(error = %e, "the token endpoint could not reach the store");
            error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "Retry later")
        }
        other => {
            let code = other.code();
            error(StatusCode::BAD_REQUEST, code, other.to_string())
        }
    }
}

/// A form body: each parameter at most once (RFC 6749 §3.2).
fn form(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("`{k}` is given more than once"),
            ));
        }
    }
    Ok(out)
}

/// The client's credentials: HTTP Basic (each part form-encoded, §2.3.1) or `client_id` and
/// `client_secret` in the form, not both.
fn credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(String, String), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let in_form = (form.get("client_id"), form.get("client_secret"));
    match (basic, in_form) {
        (Some(_), (Some(_), _) | (_, Some(_))) => Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "authenticate the client one way: HTTP Basic or form fields, not both",
        )),
        (Some(b), _) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            let pair = decoded.as_deref().and_then(|d| d.split_once(':'));
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
            };
            match pair.and_then(|(id, secret)| Some((decode(id)?, decode(secret)?))) {
                Some(pair) => Ok(pair),
                None => Err(error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "the Basic credentials cannot be read",
                )),
            }
        }
        (None, (Some(id), Some(secret))) => Ok((id.clone(), secret.clone())),
        (None, _) => Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authenticate the client with HTTP Basic, or client_id and client_secret",
        )),
    }
}

/// `POST /oauth/token`
pub(crate) async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let (id, secret) = match credentials(&headers, &form) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let c = Credentials { client_id: &id, secret: &secret };
    let (pepper, now) = (state.keys.pepper(), state.clock.now_ms());
    let field = |name: &str| form.get(name).map(String::as_str);
    let issued = match field("grant_type") {
        Some("client_credentials") => {
            tokens::issue(&state.db, pepper, &c, field("scope"), field("environment"), now).await
        }
        Some("authorization_code") => match field("code") {
            Some(code) => {
                authorize::exchange_code(
                    &state.db,
                    pepper,
                    &c,
                    code,
                    field("redirect_uri"),
                    field("code_verifier"),
                    now,
                )
                .await
            }
            None => Err(TokenError::InvalidRequest("code is required".into())),
        },
        Some("refresh_token") => match field("refresh_token") {
            Some(refresh) => authorize::refresh(&state.db, pepper, &c, refresh, now).await,
            None => Err(TokenError::InvalidRequest("refresh_token is required".into())),
        },
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!(
                    "`{other}` is not supported; use client_credentials, authorization_code or refresh_token"
                ),
            )
            .into_response();
        }
        None => {
            return error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required")
                .into_response();
        }
    };
    // A refused code or refresh token may have revoked a family of tokens: this node forgets
    // the client's cached tokens at once (the others follow the change feed).
    if matches!(issued, Err(TokenError::InvalidGrant(_))) {
        state.keys.invalidate_key(&id);
    }
    match issued {
        Ok(issued) => uncached(issued),
        Err(e) => token_error(e).into_response(),
    }
}

/// An authenticated client's request about one `token` (introspection, revocation): the
/// client's id and secret, and the token.
fn about_token(headers: &HeaderMap, body: &Bytes) -> Result<(String, String, String), OAuthError> {
    let form = form(headers, body)?;
    let (id, secret) = credentials(headers, &form)?;
    let token = form
        .get("token")
        .cloned()
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "invalid_request", "token is required"))?;
    Ok((id, secret, token))
}

/// A JSON answer that no cache may keep.
fn uncached(body: impl serde::Serialize) -> Response {
    let mut response = Json(body).into_response();
    no_store(response.headers_mut());
    response
}

/// `POST /oauth/introspect`
pub(crate) async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (id, secret, token) = match about_token(&headers, &body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let c = Credentials { client_id: &id, secret: &secret };
    match tokens::introspect(&state.db, state.keys.pepper(), &c, &token, state.clock.now_ms()).await {
        Ok(answer) => uncached(answer),
        Err(e) => token_error(e).into_response(),
    }
}

/// `POST /oauth/revoke`
pub(crate) async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (id, secret, token) = match about_token(&headers, &body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let c = Credentials { client_id: &id, secret: &secret };
    match tokens::revoke(&state.db, state.keys.pepper(), &c, &token, state.clock.now_ms()).await {
        Ok(revoked) => {
            if let Some(client) = revoked {
                state.keys.invalidate_key(&client);
            }
            StatusCode::OK.into_response()
        }
        Err(e) => token_error(e).into_response(),
    }
}

/// `GET /.well-known/oauth-authorization-server`: what this server implements, no more.
pub(crate) async fn metadata(req: axum::extract::Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    // HTTPS as the host judges it: its own TLS, or a trusted proxy's.
    let https = req.extensions().get::<crate::origin::Origin>().is_some_and(|o| o.https);
    let scheme = if https { "https" } else { "http" };
    let issuer = format!("{scheme}://{host}");
    let scopes: Vec<String> =
        MODULES.iter().flat_map(|m| [format!("{m}:read"), format!("{m}:write")]).collect();
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
    }))
    .into_response()
}

/// `GET /oauth/authorize`: an app asks for a tenant's consent. A request the app can be told
/// about goes on to the console's consent page; errors go back to the app's redirect URI, except
/// those that make the redirect URI untrustworthy, which are shown here.
pub(crate) async fn authorize_start(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| q.get(name).map(String::as_str);
    let request = authorize::Request {
        response_type: field("response_type"),
        client_id: field("client_id"),
        redirect_uri: field("redirect_uri"),
        scope: field("scope"),
        state: field("state"),
        code_challenge: field("code_challenge"),
        code_challenge_method: field("code_challenge_method"),
    };
    match authorize::request(&state.db, &request, state.clock.now_ms()).await {
        Ok(id) => axum::response::Redirect::to(&format!("/console/#/consent/{id}")).into_response(),
        Err(AuthorizeError::NotRedirectable(why)) => {
            crate::Problem::new(StatusCode::BAD_REQUEST, "invalid_authorization_request", why).into_response()
        }
        Err(AuthorizeError::Redirect { redirect_uri, state: app_state, error, description }) => {
            let mut url = match url::Url::parse(&redirect_uri) {
                Ok(u) => u,
                Err(_) => {
                    return crate::Problem::new(StatusCode::BAD_REQUEST, error, description).into_response();
                }
            };
            url.query_pairs_mut().append_pair("error", error).append_pair("error_description", &description);
            if let Some(s) = app_state {
                url.query_pairs_mut().append_pair("state", &s);
            }
            axum::response::Redirect::to(url.as_str()).into_response()
        }
        Err(AuthorizeError::Db(e)) => {
            tracing::error!(error = %e, "an authorization request could not be stored");
            crate::Problem::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "Retry later")
                .into_response()
        }
    }
}
