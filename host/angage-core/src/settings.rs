//! A tenant's settings: default rate limits, how refusals are answered, security switches and
//! the time zone rules see. Stored by the store, cached for the request path on their own.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::limits::{Limits, MAX_LIMIT};
use crate::validate::{Errors, FieldError, Input, Need};

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantSettings {
    pub rate_limits: RateLimitSettings,
    pub security: Security,
    /// IANA time zone the tenant's rules see time in.
    #[schema(example = "UTC")]
    pub timezone: String,
}

/// Default limits for keys without their own, and how rate limits are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimitSettings {
    /// Every window has a default.
    #[serde(flatten)]
    pub defaults: Limits,
    /// Length of the burst window.
    #[schema(example = 5)]
    pub burst_window_seconds: u64,
    /// Send `Retry-After` on 429.
    pub send_retry_after: bool,
    /// Send the `X-RateLimit-*` and `RateLimit-*` headers.
    pub send_rate_limit_headers: bool,
}

/// Security settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Security {
    /// Refuse plain-HTTP requests with 403 `https_required`.
    pub require_https: bool,
    pub validate_request_signatures: bool,
    pub log_all_requests: bool,
    /// Expiration given to new keys that do not choose one; null for never.
    pub default_key_expiration_days: Option<i64>,
    /// "OAuth 2.0 (enterprise)": the tenant's OAuth clients may get access tokens, and `/v1`
    /// accepts them. Off: the token endpoint refuses and issued tokens are refused.
    pub oauth_enabled: bool,
    /// "Token expiration": the lifetime of an access token, in minutes.
    #[schema(example = 60)]
    pub oauth_token_ttl_minutes: i64,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            rate_limits: RateLimitSettings {
                defaults: Limits {
                    per_second: Some(10),
                    per_minute: Some(100),
                    per_hour: Some(2000),
                    per_day: Some(20000),
                    burst: Some(20),
                },
                burst_window_seconds: 5,
                send_retry_after: true,
                send_rate_limit_headers: true,
            },
            security: Security {
                require_https: false,
                validate_request_signatures: false,
                log_all_requests: false,
                default_key_expiration_days: None,
                oauth_enabled: false,
                oauth_token_ttl_minutes: 60,
            },
            timezone: "UTC".into(),
        }
    }
}

impl TenantSettings {
    /// `PUT /admin/v1/settings`: any subset of the fields, nested as in [`TenantSettings`].
    pub fn parse_update(&self, body: &Value) -> Result<TenantSettings, Vec<FieldError>> {
        let current = self;
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(&["rate_limits", "security", "timezone"], &mut e);
        let mut next = current.clone();
        if let Some(l) = input.object("rate_limits", Need::Optional, &mut e, |i, e| {
            i.known(
                &[
                    "per_second",
                    "per_minute",
                    "per_hour",
                    "per_day",
                    "burst",
                    "burst_window_seconds",
                    "send_retry_after",
                    "send_rate_limit_headers",
                ],
                e,
            );
            let c = current.rate_limits;
            let max = i64::try_from(MAX_LIMIT).unwrap_or(i64::MAX);
            let window = |name: &str, old: Option<u64>, e: &mut Errors| {
                i.int(name, Need::Optional, 1, max, e).and_then(|n| u64::try_from(n).ok()).or(old)
            };
            let d = c.defaults;
            RateLimitSettings {
                defaults: Limits {
                    per_second: window("per_second", d.per_second, e),
                    per_minute: window("per_minute", d.per_minute, e),
                    per_hour: window("per_hour", d.per_hour, e),
                    per_day: window("per_day", d.per_day, e),
                    burst: window("burst", d.burst, e),
                },
                burst_window_seconds: i
                    .int("burst_window_seconds", Need::Optional, 1, 3600, e)
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(c.burst_window_seconds),
                send_retry_after: i
                    .boolean("send_retry_after", Need::Optional, e)
                    .unwrap_or(c.send_retry_after),
                send_rate_limit_headers: i
                    .boolean("send_rate_limit_headers", Need::Optional, e)
                    .unwrap_or(c.send_rate_limit_headers),
            }
        }) {
            next.rate_limits = l;
        }
        if let Some(s) = input.object("security", Need::Optional, &mut e, |i, e| {
            i.known(
                &[
                    "require_https",
                    "validate_request_signatures",
                    "log_all_requests",
                    "default_key_expiration_days",
                    "oauth_enabled",
                    "oauth_token_ttl_minutes",
                ],
                e,
            );
            let c = current.security;
            let expiration = if i.has("default_key_expiration_days") {
                i.int("default_key_expiration_days", Need::Optional, 1, 3650, e)
            } else if body.pointer("/security/default_key_expiration_days").is_some_and(Value::is_null) {
                None
            } else {
                c.default_key_expiration_days
            };
            Security {
                require_https: i.boolean("require_https", Need::Optional, e).unwrap_or(c.require_https),
                validate_request_signatures: i
                    .boolean("validate_request_signatures", Need::Optional, e)
                    .unwrap_or(c.validate_request_signatures),
                log_all_requests: i
                    .boolean("log_all_requests", Need::Optional, e)
                    .unwrap_or(c.log_all_requests),
                default_key_expiration_days: expiration,
                oauth_enabled: i.boolean("oauth_enabled", Need::Optional, e).unwrap_or(c.oauth_enabled),
                oauth_token_ttl_minutes: i
                    .int("oauth_token_ttl_minutes", Need::Optional, 5, 1440, e)
                    .unwrap_or(c.oauth_token_ttl_minutes),
            }
        }) {
            next.security = s;
        }
        if let Some(tz) = input.string_with(
            "timezone",
            Need::Optional,
            64,
            "an IANA time zone such as Europe/Berlin or UTC",
            is_timezone_name,
            &mut e,
        ) {
            next.timezone = tz;
        }
        let d = next.rate_limits.defaults;
        if d.per_second > d.per_minute || d.per_minute > d.per_hour || d.per_hour > d.per_day {
            e.push("rate_limits", "each window's limit must not exceed the next longer window's");
        }
        e.finish(|| next)
    }
}

/// A plausible IANA zone name (Area/Location or UTC); resolved by the rule engine.
fn is_timezone_name(s: &str) -> bool {
    s == "UTC" || (s.contains('/') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b)))
}
