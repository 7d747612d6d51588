//! The dashboard's numbers, read from the daily rollups (never from raw events, except the
//! recent-errors list).

use serde::Serialize;
use utoipa::ToSchema;

use super::histogram;
use crate::db::Db;
use crate::resources::store::{ListParams, Listing, Page, ResourceError, Result, page};
use angage_core::clock::rfc3339;
use angage_core::tenant::TenantId;

const DAY_MS: i64 = 86_400_000;

/// A range of whole UTC days, and the range of the same length just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_day: i64,
    pub to_day: i64,
}

impl Period {
    /// `7d`, `30d`, `90d` (ending today) or `month` (this calendar month so far).
    pub fn parse(spec: &str, now_ms: i64) -> Option<Self> {
        let today = now_ms.div_euclid(DAY_MS);
        let days = match spec {
            "7d" => 7,
            "30d" => 30,
            "90d" => 90,
            "month" => {
                let date = jiff::Timestamp::from_millisecond(now_ms).ok()?.to_zoned(jiff::tz::TimeZone::UTC);
                i64::from(date.day())
            }
            _ => return None,
        };
        Some(Self { from_day: today - days + 1, to_day: today })
    }

    pub fn previous(&self) -> Self {
        let len = self.to_day - self.from_day + 1;
        Self { from_day: self.from_day - len, to_day: self.from_day - 1 }
    }

    pub fn days(&self) -> i64 {
        self.to_day - self.from_day + 1
    }
}

fn pct(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 * 10_000.0 / whole as f64).round() / 100.0 }
}

fn date(day: i64) -> String {
    rfc3339(day * DAY_MS)[..10].to_owned()
}

/// Usage over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    #[schema(example = "2026-11-01")]
    pub from: String,
    pub to: String,
    pub total: i64,
    /// Status below 400.
    pub successful: i64,
    pub successful_pct: f64,
    /// Status 400 and above.
    pub failed: i64,
    pub failed_pct: f64,
    /// Refused with 429.
    pub rate_limited: i64,
    pub daily: Vec<DayCount>,
    pub average_per_day: f64,
    pub peak: Option<DayCount>,
    pub active_keys: ActiveKeys,
    /// Events lost because the usage buffer was full (since this server started).
    pub dropped_events: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayCount {
    pub date: String,
    pub requests: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveKeys {
    pub live: i64,
    pub test: i64,
}

pub async fn summary(
    db: &Db,
    tenant: &TenantId,
    period: Period,
    now_ms: i64,
    dropped: u64,
) -> Result<Summary> {
    let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT day, CAST(SUM(requests) AS BIGINT), \
         CAST(SUM(CASE WHEN status < 400 THEN requests ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN status >= 400 THEN requests ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN status = 429 THEN requests ELSE 0 END) AS BIGINT) \
         FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3 GROUP BY day ORDER BY day",
    )
    .bind(&tenant.0)
    .bind(period.from_day)
    .bind(period.to_day)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    let (mut total, mut ok, mut failed, mut limited) = (0, 0, 0, 0);
    let mut by_day = std::collections::HashMap::new();
    for (day, t, s, f, l) in rows {
        total += t;
        ok += s;
        failed += f;
        limited += l;
        by_day.insert(day, t);
    }
    let daily: Vec<DayCount> = (period.from_day..=period.to_day)
        .map(|d| DayCount { date: date(d), requests: by_day.get(&d).copied().unwrap_or(0) })
        .collect();
    let peak = daily.iter().filter(|d| d.requests > 0).max_by_key(|d| d.requests).cloned();
    let keys: Vec<(String, i64)> = sqlx::query_as(
        "SELECT environment, COUNT(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2) GROUP BY environment",
    )
    .bind(&tenant.0)
    .bind(now_ms)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    let count = |env: &str| keys.iter().find(|(e, _)| e == env).map_or(0, |(_, n)| *n);
    Ok(Summary {
        from: date(period.from_day),
        to: date(period.to_day),
        total,
        successful: ok,
        successful_pct: pct(ok, total),
        failed,
        failed_pct: pct(failed, total),
        rate_limited: limited,
        average_per_day: (total as f64 / period.days() as f64 * 100.0).round() / 100.0,
        daily,
        peak,
        active_keys: ActiveKeys { live: count("live"), test: count("test") },
        dropped_events: dropped,
    })
}

/// Requests to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointUsage {
    #[schema(example = "GET /customers/{id}")]
    pub endpoint: String,
    pub requests: i64,
    pub share_pct: f64,
    pub average_ms: f64,
}

pub async fn endpoints(db: &Db, tenant: &TenantId, period: Period) -> Result<Vec<EndpointUsage>> {
    let rows = endpoint_rows(db, tenant, period).await?;
    let total: i64 = rows.iter().map(|r| r.1).sum();
    Ok(rows
        .into_iter()
        .map(|(endpoint, requests, sum)| EndpointUsage {
            endpoint,
            requests,
            share_pct: pct(requests, total),
            average_ms: ms(sum, requests),
        })
        .collect())
}

/// (endpoint, requests, latency sum in µs), busiest first.
async fn endpoint_rows(db: &Db, tenant: &TenantId, period: Period) -> Result<Vec<(String, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT endpoint, CAST(SUM(requests) AS BIGINT), CAST(SUM(latency_sum_us) AS BIGINT) FROM usage_daily \
         WHERE tenant_id = $1 AND day >= $2 AND day <= $3 GROUP BY endpoint ORDER BY 2 DESC, endpoint",
    )
    .bind(&tenant.0)
    .bind(period.from_day)
    .bind(period.to_day)
    .fetch_all(&mut *db.conn().await?)
    .await?)
}

fn ms(sum_us: i64, n: i64) -> f64 {
    if n == 0 { 0.0 } else { (sum_us as f64 / n as f64 / 10.0).round() / 100.0 }
}

/// Requests made with one key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsage {
    pub key_id: String,
    pub name: Option<String>,
    pub prefix: Option<String>,
    pub environment: Option<String>,
    pub requests: i64,
    pub share_pct: f64,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    key_id: String,
    requests: i64,
    name: Option<String>,
    display_prefix: Option<String>,
    environment: Option<String>,
}

pub async fn keys(db: &Db, tenant: &TenantId, period: Period) -> Result<Vec<KeyUsage>> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT u.key_id, CAST(SUM(u.requests) AS BIGINT) AS requests, k.name, k.display_prefix, k.environment FROM usage_daily u \
         LEFT JOIN api_keys k ON k.id = u.key_id AND k.tenant_id = u.tenant_id WHERE u.tenant_id = $1 AND u.day >= $2 AND u.day <= $3 AND u.key_id <> '' \
         GROUP BY u.key_id, k.name, k.display_prefix, k.environment ORDER BY 2 DESC, u.key_id",
    )
    .bind(&tenant.0)
    .bind(period.from_day)
    .bind(period.to_day)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    let total: i64 = rows.iter().map(|r| r.requests).sum();
    Ok(rows
        .into_iter()
        .map(|r| KeyUsage {
            share_pct: pct(r.requests, total),
            key_id: r.key_id,
            name: r.name,
            prefix: r.display_prefix,
            environment: r.environment,
            requests: r.requests,
        })
        .collect())
}

/// Response times over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    pub requests: i64,
    pub average_ms: f64,
    /// Nearest-rank percentiles from log-bucketed histograms: within 1% of the exact value.
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub slowest_endpoint: Option<EndpointUsage>,
}

pub async fn latency(db: &Db, tenant: &TenantId, period: Period) -> Result<Latency> {
    let buckets: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT bucket, CAST(SUM(count) AS BIGINT) FROM usage_latency_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3 GROUP BY bucket",
    )
    .bind(&tenant.0)
    .bind(period.from_day)
    .bind(period.to_day)
    .fetch_all(&mut *db.conn().await?)
    .await?;
    let rows = endpoint_rows(db, tenant, period).await?;
    // The average comes from the exact sums, not from per-endpoint averages already rounded.
    let requests: i64 = rows.iter().map(|r| r.1).sum();
    let sum: i64 = rows.iter().map(|r| r.2).sum();
    let round = |v: f64| (v / 10.0).round() / 100.0;
    let slowest = rows
        .into_iter()
        .max_by(|a, b| (a.2 as f64 / a.1.max(1) as f64).total_cmp(&(b.2 as f64 / b.1.max(1) as f64)));
    Ok(Latency {
        requests,
        average_ms: ms(sum, requests),
        p95_ms: histogram::percentile(&buckets, 95.0).map(round),
        p99_ms: histogram::percentile(&buckets, 99.0).map(round),
        slowest_endpoint: slowest.map(|(endpoint, n, sum)| EndpointUsage {
            endpoint,
            requests: n,
            share_pct: pct(n, requests),
            average_ms: ms(sum, n),
        }),
    })
}

/// Errors over a period, against the previous period of the same length.
#[derive(Debug, Serialize, ToSchema)]
pub struct Errors {
    pub total: i64,
    pub error_rate_pct: f64,
    pub most_common: Option<ErrorCount>,
    pub by_status: Vec<StatusCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorCount {
    #[schema(example = "rate_limited")]
    pub code: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusCount {
    pub status: i64,
    pub count: i64,
    pub share_pct: f64,
    pub previous: i64,
    /// `up`, `down` or `stable` against the previous period.
    pub trend: &'static str,
}

async fn by_status(db: &Db, tenant: &TenantId, period: Period) -> Result<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT status, CAST(SUM(requests) AS BIGINT) FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3 \
         AND status >= 400 GROUP BY status ORDER BY status",
    )
    .bind(&tenant.0)
    .bind(period.from_day)
    .bind(period.to_day)
    .fetch_all(&mut *db.conn().await?)
    .await?)
}

pub async fn errors(db: &Db, tenant: &TenantId, period: Period) -> Result<Errors> {
    let (total_requests,): (Option<i64>,) =
        sqlx::query_as("SELECT CAST(SUM(requests) AS BIGINT) FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3")
            .bind(&tenant.0)
            .bind(period.from_day)
            .bind(period.to_day)
            .fetch_one(&mut *db.conn().await?)
            .await?;
    let current = by_status(db, tenant, period).await?;
    let previous = by_status(db, tenant, period.previous()).await?;
    let total: i64 = current.iter().map(|(_, c)| c).sum();
    let mut statuses: Vec<i64> = current.iter().chain(&previous).map(|(s, _)| *s).collect();
    statuses.sort_unstable();
    statuses.dedup();
    let get = |list: &[(i64, i64)], s: i64| list.iter().find(|(x, _)| *x == s).map_or(0, |(_, c)| *c);
    let by_status = statuses
        .into_iter()
        .map(|s| {
            let (count, prev) = (get(&current, s), get(&previous, s));
            StatusCount {
                status: s,
                count,
                share_pct: pct(count, total),
                previous: prev,
                trend: match count.cmp(&prev) {
                    std::cmp::Ordering::Greater => "up",
                    std::cmp::Ordering::Less => "down",
                    std::cmp::Ordering::Equal => "stable",
                },
            }
        })
        .collect();
    let most_common: Option<(String, i64)> = sqlx::query_as(
        "SELECT error_code, CAST(SUM(requests) AS BIGINT) FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3 \
         AND status >= 400 AND error_code <> '' GROUP BY error_code ORDER BY 2 DESC, error_code LIMIT 1",
    )
    .bind(&tenant.0)
    .bind(period.from_day)
    .bind(period.to_day)
    .fetch_optional(&mut *db.conn().await?)
    .await?;
    Ok(Errors {
        total,
        error_rate_pct: pct(total, total_requests.unwrap_or(0)),
        most_common: most_common.map(|(code, count)| ErrorCount { code, count }),
        by_status,
    })
}

/// One recent error, from the raw events.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct RecentError {
    pub id: String,
    pub at: String,
    pub status: i64,
    pub code: Option<String>,
    pub message: Option<String>,
    pub endpoint: String,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ErrorRow {
    id: String,
    created_at: i64,
    status: i64,
    error_code: Option<String>,
    error_detail: Option<String>,
    endpoint: String,
    key_id: Option<String>,
    key_name: Option<String>,
}

pub async fn recent_errors(db: &Db, tenant: &TenantId, params: &ListParams) -> Result<Page<RecentError>> {
    let mut conn = db.conn().await?;
    let listing = Listing { table: "usage_events", alias: "e.", id_col: "id" };
    let select = "SELECT e.id, e.created_at, e.status, e.error_code, e.error_detail, e.endpoint, e.key_id, \
                  k.name AS key_name FROM usage_events e LEFT JOIN api_keys k ON k.id = e.key_id AND k.tenant_id = e.tenant_id";
    let rows: Vec<ErrorRow> = listing
        .rows(&mut conn, select, tenant, params, |q| {
            q.and("e.status >= ?", [crate::resources::store::Arg::Int(400)]);
        })
        .await?;
    let items = rows
        .into_iter()
        .map(|r| RecentError {
            id: r.id,
            at: rfc3339(r.created_at),
            status: r.status,
            code: r.error_code,
            message: r.error_detail,
            endpoint: r.endpoint,
            key_id: r.key_id,
            key_name: r.key_name,
        })
        .collect();
    Ok(page(items, params.limit, |e| e.id.clone()))
}

/// Day × endpoint × key × status rows as CSV.
pub async fn export_csv(db: &Db, tenant: &TenantId, period: Period) -> Result<String> {
    let rows: Vec<(i64, String, String, i64, String, i64, i64)> = sqlx::query_as(
        "SELECT day, endpoint, key_id, status, error_code, requests, latency_sum_us FROM usage_daily \
         WHERE tenant_id = $1 AND day >= $2 AND day <= $3 ORDER BY day, endpoint, key_id, status, error_code",
    )
    .bind(&tenant.0)
    .bind(period.from_day)
    .bind(period.to_day)
    .fetch_all(&mut *db.conn().await?)
    .await
    .map_err(ResourceError::Db)?;
    let mut out = String::from("date,endpoint,key_id,status,error_code,requests,average_ms\n");
    for (day, endpoint, key, status, code, requests, sum) in rows {
        out.push_str(&format!(
            "{},{},{},{status},{},{requests},{}\n",
            date(day),
            csv(&endpoint),
            csv(&key),
            csv(&code),
            ms(sum, requests)
        ));
    }
    Ok(out)
}

/// Quotes a CSV field when needed, and defuses spreadsheet formulas.
pub(crate) fn csv(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@']) { format!("'{field}") } else { field.to_owned() };
    if field.contains([',', '"', '\n']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field }
}
