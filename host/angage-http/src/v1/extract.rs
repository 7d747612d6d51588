//! Extractors and response helpers shared by the `/v1` handlers.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::Problem;
use angage_core::clock::parse_rfc3339;
use angage_core::tenant::TenantId;
use angage_core::validate::{FieldError, push_bounded, shown_name};
use angage_store::resources::store::{ListParams, ResourceError};

/// The caller's tenant, placed in the request extensions by the authentication stage.
#[derive(Debug, Clone)]
pub(crate) struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts.extensions.get::<TenantId>().cloned().map(Tenant).ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "Send an API key as `Authorization: Bearer ak_...` or `X-API-Key: ak_...`",
            )
        })
    }
}

/// A JSON request body parsed to a `Value`; the resource's `parse` then names every bad field.
pub(crate) struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::too_large()
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "unreadable_body", "The request body could not be read")
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!(
                    "The body is not valid JSON: {} at line {}, column {}",
                    describe(&e),
                    e.line(),
                    e.column()
                ),
            )
        })
    }
}

fn describe(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.split(" at line ").next().unwrap_or(&text).to_owned()
}

/// The query string as pairs; handlers take what they know and report the rest.
pub(crate) struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryMap(q))
            .map_err(|_| {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_query", "The query string could not be parsed")
            })
    }
}

impl QueryMap {
    /// Paging and time filters, plus the resource's own `filters`; anything else is an error.
    pub(crate) fn list_params(&self, filters: &[&str]) -> Result<ListParams, Problem> {
        let mut errors = Vec::new();
        let mut params = ListParams { limit: 20, ..ListParams::default() };
        for (key, value) in &self.0 {
            match key.as_str() {
                "limit" => match value.parse::<i64>() {
                    Ok(n) if (1..=100).contains(&n) => params.limit = n,
                    _ => errors.push(field(key, "must be an integer from 1 to 100")),
                },
                _ if value.contains('\0') => {
                    push_bounded(&mut errors, field(&shown_name(key), "must not contain NUL characters"))
                }
                "starting_after" => params.starting_after = Some(value.clone()),
                "created_after" | "created_before" => match parse_rfc3339(value) {
                    Some(t) if key == "created_after" => params.created_after = Some(t),
                    Some(t) => params.created_before = Some(t),
                    None => {
                        errors.push(field(key, "must be an RFC 3339 timestamp such as 2026-11-01T00:00:00Z"))
                    }
                },
                other if filters.contains(&other) => {}
                _ => push_bounded(&mut errors, field(&shown_name(key), "unknown query parameter")),
            }
        }
        if errors.is_empty() {
            Ok(params)
        } else {
            Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_query", "Some query parameters are not valid")
                .with_errors(errors))
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|v| !v.is_empty()).cloned()
    }
}

fn field(name: &str, message: &str) -> FieldError {
    FieldError { field: name.to_owned(), message: message.to_owned() }
}

/// A 422 listing every offending field.
pub(crate) fn invalid(errors: Vec<FieldError>) -> Problem {
    let detail = match errors.as_slice() {
        [one] if one.field.is_empty() => one.message.clone(),
        [one] => format!("`{}` {}", one.field, one.message),
        many => format!("{} fields are not valid", many.len()),
    };
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail).with_errors(errors)
}

impl From<ResourceError> for Problem {
    fn from(err: ResourceError) -> Self {
        match err {
            ResourceError::NotFound { .. } => Problem::not_found(err.to_string()),
            ResourceError::Invalid(errors) => invalid(errors),
            ResourceError::BadQuery(errors) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_query", "Some query parameters are not valid")
                    .with_errors(errors)
            }
            ResourceError::Conflict { code, detail } => Problem::new(StatusCode::CONFLICT, code, detail),
            ResourceError::Stale { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", err.to_string())
            }
            ResourceError::Db(e) if angage_store::db::is_unavailable(&e) => {
                tracing::warn!(error = %e, "the database is unavailable");
                Problem::unavailable("database_unavailable", "The database is not reachable; retry later")
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            // A data exception (class 22) is a value the database could not take: the client's.
            ResourceError::Db(sqlx::Error::Database(d)) if d.code().is_some_and(|c| c.starts_with("22")) => {
                tracing::warn!(error = %d, "a value the database refused");
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    "A value in the request cannot be stored",
                )
            }
            ResourceError::Db(e) => {
                tracing::error!(error = %e, "database error");
                Problem::internal()
            }
        }
    }
}

/// Strong ETag of a resource version.
pub(crate) fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `If-Match`: absent → `None`; `*` → `Some(None)`; `"N"` → `Some(Some(N))`; anything else can
/// never match (`Some(Some(-1))`).
pub(crate) fn if_match(headers: &HeaderMap) -> Option<Option<i64>> {
    let value = headers.get(header::IF_MATCH)?.to_str().unwrap_or("");
    if value.trim() == "*" {
        return Some(None);
    }
    let parsed = value
        .split(',')
        .find_map(|tag| tag.trim().trim_start_matches("W/").trim_matches('"').parse::<i64>().ok());
    Some(Some(parsed.unwrap_or(-1)))
}

/// The version `If-Match` demands, if any.
pub(crate) fn expected_version(headers: &HeaderMap) -> Option<i64> {
    if_match(headers).flatten()
}

/// True when `If-None-Match` names this version (or `*`).
pub(crate) fn not_modified(headers: &HeaderMap, version: i64) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else { return false };
    let mine = etag(version);
    value.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == mine
    })
}

/// A single resource with its ETag, or 304 when the client has it.
pub(crate) fn single<T: Serialize>(headers: &HeaderMap, version: i64, body: &T) -> Response {
    let tag = etag(version);
    if not_modified(headers, version) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    (StatusCode::OK, [(header::ETAG, tag)], axum::Json(body)).into_response()
}

/// 201 with `Location` and `ETag`.
pub(crate) fn created<T: Serialize>(location: &str, version: i64, body: &T) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        headers.insert(header::ETAG, v);
    }
    response
}

/// 200 with the updated resource and its new ETag.
pub(crate) fn updated<T: Serialize>(version: i64, body: &T) -> Response {
    (StatusCode::OK, [(header::ETAG, etag(version))], axum::Json(body)).into_response()
}
