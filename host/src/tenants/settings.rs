//! Tenant settings: default rate limits and security settings, editable by admins.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::keys::{Limits, MAX_LIMIT};
use crate::resources::store::TenantId;
use crate::validate::{Errors, FieldError, Input, Need};

/// A tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantSettings {
    pub rate_limits: DefaultLimits,
    pub security: Security,
    /// IANA time zone the tenant's rules see time in.
    #[schema(example = "UTC")]
    pub timezone: String,
}

/// Default limits for keys without their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DefaultLimits {
    #[schema(example = 10)]
    pub per_second: i64,
    #[schema(example = 100)]
    pub per_minute: i64,
    #[schema(example = 2000)]
    pub per_hour: i64,
    #[schema(example = 20000)]
    pub per_day: i64,
    /// Requests allowed in one burst window.
    #[schema(example = 20)]
    pub burst: i64,
    #[schema(example = 5)]
    pub burst_window_seconds: i64,
    /// Send `Retry-After` on 429.
    pub send_retry_after: bool,
    /// Send the `X-RateLimit-*` and `RateLimit-*` headers.
    pub send_rate_limit_headers: bool,
}

impl DefaultLimits {
    pub fn as_limits(&self) -> Limits {
        Limits {
            per_second: Some(self.per_second),
            per_minute: Some(self.per_minute),
            per_hour: Some(self.per_hour),
            per_day: Some(self.per_day),
            burst: Some(self.burst),
        }
    }
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
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            rate_limits: DefaultLimits {
                per_second: 10,
                per_minute: 100,
                per_hour: 2000,
                per_day: 20000,
                burst: 20,
                burst_window_seconds: 5,
                send_retry_after: true,
                send_rate_limit_headers: true,
            },
            security: Security {
                require_https: false,
                validate_request_signatures: false,
                log_all_requests: false,
                default_key_expiration_days: None,
            },
            timezone: "UTC".into(),
        }
    }
}

/// `PUT /admin/v1/settings`: any subset of the fields, nested as in [`TenantSettings`].
pub fn parse_update(body: &Value, current: &TenantSettings) -> Result<TenantSettings, Vec<FieldError>> {
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
        DefaultLimits {
            per_second: i.int("per_second", Need::Optional, 1, MAX_LIMIT, e).unwrap_or(c.per_second),
            per_minute: i.int("per_minute", Need::Optional, 1, MAX_LIMIT, e).unwrap_or(c.per_minute),
            per_hour: i.int("per_hour", Need::Optional, 1, MAX_LIMIT, e).unwrap_or(c.per_hour),
            per_day: i.int("per_day", Need::Optional, 1, MAX_LIMIT, e).unwrap_or(c.per_day),
            burst: i.int("burst", Need::Optional, 1, MAX_LIMIT, e).unwrap_or(c.burst),
            burst_window_seconds: i
                .int("burst_window_seconds", Need::Optional, 1, 3600, e)
                .unwrap_or(c.burst_window_seconds),
            send_retry_after: i.boolean("send_retry_after", Need::Optional, e).unwrap_or(c.send_retry_after),
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
            log_all_requests: i.boolean("log_all_requests", Need::Optional, e).unwrap_or(c.log_all_requests),
            default_key_expiration_days: expiration,
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
    if next.rate_limits.per_second > next.rate_limits.per_minute
        || next.rate_limits.per_minute > next.rate_limits.per_hour
        || next.rate_limits.per_hour > next.rate_limits.per_day
    {
        e.push("rate_limits", "each window's limit must not exceed the next longer window's");
    }
    e.finish(|| next)
}

/// A plausible IANA zone name (Area/Location or UTC); resolved by the rule engine.
fn is_timezone_name(s: &str) -> bool {
    s == "UTC" || (s.contains('/') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b)))
}

#[derive(sqlx::FromRow)]
struct Row {
    per_second: i64,
    per_minute: i64,
    per_hour: i64,
    per_day: i64,
    burst: i64,
    burst_window_seconds: i64,
    send_retry_after: i64,
    send_rate_limit_headers: i64,
    require_https: i64,
    validate_signatures: i64,
    log_all_requests: i64,
    default_key_expiration_days: Option<i64>,
    timezone: String,
}

impl From<Row> for TenantSettings {
    fn from(r: Row) -> Self {
        Self {
            rate_limits: DefaultLimits {
                per_second: r.per_second,
                per_minute: r.per_minute,
                per_hour: r.per_hour,
                per_day: r.per_day,
                burst: r.burst,
                burst_window_seconds: r.burst_window_seconds,
                send_retry_after: r.send_retry_after != 0,
                send_rate_limit_headers: r.send_rate_limit_headers != 0,
            },
            security: Security {
                require_https: r.require_https != 0,
                validate_request_signatures: r.validate_signatures != 0,
                log_all_requests: r.log_all_requests != 0,
                default_key_expiration_days: r.default_key_expiration_days,
            },
            timezone: r.timezone,
        }
    }
}

pub const COLUMNS: &str = "per_second, per_minute, per_hour, per_day, burst, burst_window_seconds, send_retry_after, \
    send_rate_limit_headers, require_https, validate_signatures, log_all_requests, default_key_expiration_days, timezone";

/// Inserts the default settings for a new tenant.
pub async fn seed(conn: &mut sqlx::AnyConnection, tenant: &TenantId, now: i64) -> Result<(), sqlx::Error> {
    write(conn, tenant, &TenantSettings::default(), now, true).await
}

pub async fn get(conn: &mut sqlx::AnyConnection, tenant: &TenantId) -> Result<TenantSettings, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM tenant_settings WHERE tenant_id = $1");
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&tenant.0).fetch_optional(&mut *conn).await?;
    Ok(row.map(TenantSettings::from).unwrap_or_default())
}

pub async fn write(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    s: &TenantSettings,
    now: i64,
    insert: bool,
) -> Result<(), sqlx::Error> {
    let sql = if insert {
        format!(
            "INSERT INTO tenant_settings ({COLUMNS}, tenant_id, version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, $15)"
        )
    } else {
        "UPDATE tenant_settings SET per_second = $1, per_minute = $2, per_hour = $3, per_day = $4, burst = $5, \
         burst_window_seconds = $6, send_retry_after = $7, send_rate_limit_headers = $8, require_https = $9, \
         validate_signatures = $10, log_all_requests = $11, default_key_expiration_days = $12, timezone = $13, \
         version = version + 1, updated_at = $15 WHERE tenant_id = $14"
            .to_owned()
    };
    let l = &s.rate_limits;
    let sec = &s.security;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(l.per_second)
        .bind(l.per_minute)
        .bind(l.per_hour)
        .bind(l.per_day)
        .bind(l.burst)
        .bind(l.burst_window_seconds)
        .bind(i64::from(l.send_retry_after))
        .bind(i64::from(l.send_rate_limit_headers))
        .bind(i64::from(sec.require_https))
        .bind(i64::from(sec.validate_request_signatures))
        .bind(i64::from(sec.log_all_requests))
        .bind(sec.default_key_expiration_days)
        .bind(&s.timezone)
        .bind(&tenant.0)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
