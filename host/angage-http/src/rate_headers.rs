//! The rate-limit headers of a `/v1` response: `X-RateLimit-*` and the IETF `RateLimit-Policy`
//! and `RateLimit` fields, from the state the policy engine reports.

use angage_core::policy::{RateState, WindowState};
use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// `X-RateLimit-*` for the window closest to its limit, and the IETF `RateLimit-Policy` /
/// `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
pub(crate) fn rate_headers(headers: &mut HeaderMap, d: &RateState) {
    // Every `/v1` response carries these: names are built at compile time, numbers are
    // written without an intermediate string.
    const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    const STATE: HeaderName = HeaderName::from_static("ratelimit");
    let chosen = d
        .denied_window
        .as_ref()
        .and_then(|name| d.windows.iter().find(|w| &w.name == name))
        .or_else(|| d.windows.iter().min_by_key(|w| (w.remaining, w.window_seconds)));
    let Some(w) = chosen else { return };
    // One growth for all five: growing a header map one entry at a time reallocates it more
    // than once per response.
    headers.reserve(5);
    headers.insert(LIMIT, HeaderValue::from(w.limit));
    headers.insert(REMAINING, HeaderValue::from(w.remaining));
    headers.insert(RESET, HeaderValue::from(w.reset_seconds));
    if let Some(v) = policy_value(&d.windows) {
        headers.insert(POLICY, v);
    }
    if let Ok(v) = HeaderValue::try_from(format!("\"{}\";r={};t={}", w.name, w.remaining, w.reset_seconds)) {
        headers.insert(STATE, v);
    }
}

/// `RateLimit-Policy` for these windows. A key's windows change only when its limits do, so
/// each thread keeps the value it made last and hands out clones of it (a reference count, no
/// formatting) while the windows stay the same.
fn policy_value(windows: &[WindowState]) -> Option<HeaderValue> {
    use std::cell::RefCell;
    use std::fmt::Write;

    type Shape = Vec<(String, u64, u64)>;
    thread_local! {
        static LAST: RefCell<Option<(Shape, HeaderValue)>> = const { RefCell::new(None) };
    }
    let same = |shape: &Shape| {
        shape.len() == windows.len()
            && shape.iter().zip(windows).all(|((name, limit, seconds), w)| {
                *name == w.name && *limit == w.limit && *seconds == w.window_seconds
            })
    };
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((shape, value)) = last.as_ref()
            && same(shape)
        {
            return Some(value.clone());
        }
        let mut policy = String::with_capacity(windows.len() * 32);
        for (i, p) in windows.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(policy, "{sep}\"{}\";q={};w={}", p.name, p.limit, p.window_seconds);
        }
        let value = HeaderValue::try_from(policy).ok()?;
        let shape = windows.iter().map(|w| (w.name.clone(), w.limit, w.window_seconds)).collect();
        *last = Some((shape, value.clone()));
        Some(value)
    })
}
