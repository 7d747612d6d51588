//! Tenant settings in the store (the model and its parsing live in `angage_core::settings`).

use angage_core::limits::Limits;
use angage_core::settings::{RateLimitSettings, Security, TenantSettings};
use angage_core::tenant::TenantId;

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
    oauth_enabled: i64,
    oauth_token_ttl_minutes: i64,
}

impl From<Row> for TenantSettings {
    fn from(r: Row) -> Self {
        let n = |v: i64| u64::try_from(v).ok();
        Self {
            rate_limits: RateLimitSettings {
                defaults: Limits {
                    per_second: n(r.per_second),
                    per_minute: n(r.per_minute),
                    per_hour: n(r.per_hour),
                    per_day: n(r.per_day),
                    burst: n(r.burst),
                },
                burst_window_seconds: n(r.burst_window_seconds).unwrap_or(1),
                send_retry_after: r.send_retry_after != 0,
                send_rate_limit_headers: r.send_rate_limit_headers != 0,
            },
            security: Security {
                require_https: r.require_https != 0,
                validate_request_signatures: r.validate_signatures != 0,
                log_all_requests: r.log_all_requests != 0,
                default_key_expiration_days: r.default_key_expiration_days,
                oauth_enabled: r.oauth_enabled != 0,
                oauth_token_ttl_minutes: r.oauth_token_ttl_minutes,
            },
            timezone: r.timezone,
        }
    }
}

pub const COLUMNS: &str = "per_second, per_minute, per_hour, per_day, burst, burst_window_seconds, send_retry_after, \
    send_rate_limit_headers, require_https, validate_signatures, log_all_requests, default_key_expiration_days, timezone, \
    oauth_enabled, oauth_token_ttl_minutes";

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
            "INSERT INTO tenant_settings ({COLUMNS}, tenant_id, version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $16, $17, $14, 1, $15)"
        )
    } else {
        "UPDATE tenant_settings SET per_second = $1, per_minute = $2, per_hour = $3, per_day = $4, burst = $5, \
         burst_window_seconds = $6, send_retry_after = $7, send_rate_limit_headers = $8, require_https = $9, \
         validate_signatures = $10, log_all_requests = $11, default_key_expiration_days = $12, timezone = $13, \
         oauth_enabled = $16, oauth_token_ttl_minutes = $17, version = version + 1, updated_at = $15 WHERE tenant_id = $14"
            .to_owned()
    };
    let l = &s.rate_limits;
    let d = l.defaults;
    let sec = &s.security;
    let n = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(n(d.per_second))
        .bind(n(d.per_minute))
        .bind(n(d.per_hour))
        .bind(n(d.per_day))
        .bind(n(d.burst))
        .bind(i64::try_from(l.burst_window_seconds).unwrap_or(1))
        .bind(i64::from(l.send_retry_after))
        .bind(i64::from(l.send_rate_limit_headers))
        .bind(i64::from(sec.require_https))
        .bind(i64::from(sec.validate_request_signatures))
        .bind(i64::from(sec.log_all_requests))
        .bind(sec.default_key_expiration_days)
        .bind(&s.timezone)
        .bind(&tenant.0)
        .bind(now)
        .bind(i64::from(sec.oauth_enabled))
        .bind(sec.oauth_token_ttl_minutes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
