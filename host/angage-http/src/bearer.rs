//! A secret presented as `Authorization: Bearer <secret>`, compared in constant time.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// Whether the request presents `secret` (never true for an empty one).
pub(crate) fn presents(headers: &HeaderMap, secret: &str) -> bool {
    !secret.is_empty()
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(secret.as_bytes())))
}
