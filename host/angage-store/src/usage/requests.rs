//! The request log: what a raw usage event shows of its request (the query's secret values
//! redacted), which events are kept (every one of a tenant that logs all requests, else errors
//! and a sample of successes), and the log's search and CSV export.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bounded_text;
use crate::db::Db;
use crate::resources::store::{Arg, ListParams, Listing, Page, Result, Select, page};
use angage_core::clock::rfc3339;
use angage_core::tenant::TenantId;

/// The request behind a usage event, as the request log shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    pub method: String,
    /// Path and query, the query's secret values redacted ([`redacted_target`]).
    pub path: String,
    /// The client's address as the host judged it (behind trusted proxies, the forwarded one).
    pub client_ip: String,
    pub user_agent: Option<String>,
    pub request_id: String,
    /// The OAuth client the request's token was issued to, when it came with one.
    pub client_id: Option<String>,
}

impl RequestLine {
    pub(crate) fn bounded(mut self) -> Self {
        self.method = bounded_text(&self.method, 16);
        self.path = bounded_text(&self.path, 1000);
        self.client_ip = bounded_text(&self.client_ip, 64);
        self.user_agent = self.user_agent.map(|u| bounded_text(&u, 300));
        self.request_id = bounded_text(&self.request_id, 128);
        self.client_id = self.client_id.map(|c| bounded_text(&c, 64));
        self
    }
}

/// Query parameters whose values are secrets whatever they hold.
const SECRET_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "secret",
    "password",
    "passwd",
    "signature",
    "sig",
    "code",
    "code_verifier",
    "auth",
    "authorization",
    "session",
];

/// Prefixes of the credentials this server issues: such a value is redacted under any name.
const SECRET_PREFIXES: &[&str] =
    &["ak_live_", "ak_test_", "at_live_", "at_test_", "rt_live_", "rt_test_", "cs_"];

/// `path?query` with the value of every parameter that names a secret, or looks like one of
/// this server's credentials, replaced by `[redacted]`.
pub fn redacted_target(path: &str, query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else { return path.to_owned() };
    let mut out = String::with_capacity(path.len() + query.len() + 1);
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = name.replace('+', " ").to_ascii_lowercase();
        let secret_name = SECRET_PARAMS.iter().any(|s| decoded == *s || decoded.ends_with(&format!("_{s}")));
        let secret_value = SECRET_PREFIXES.iter().any(|p| value.starts_with(p));
        if (secret_name || secret_value) && pair.contains('=') {
            out.push_str(name);
            out.push_str("=[redacted]");
        } else {
            out.push_str(pair);
        }
    }
    out
}

/// Which successes are kept when the tenant does not log all requests: an exact share, spread
/// evenly (the n-th success is kept when ⌊n·rate⌋ grows), so the sample is steady and testable.
#[derive(Debug)]
pub(crate) struct Sample {
    rate: f64,
    seen: AtomicU64,
}

impl Sample {
    pub(crate) fn new(rate: f64) -> Self {
        Self { rate: rate.clamp(0.0, 1.0), seen: AtomicU64::new(0) }
    }

    /// Whether this success is one the sample keeps.
    pub(crate) fn take(&self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        ((n as f64) * self.rate).floor() > (((n - 1) as f64) * self.rate).floor()
    }
}

/// What the request log is searched by, besides the time range and the cursor.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub key_id: Option<String>,
    pub client_id: Option<String>,
    /// One status (`404`) or a class (`4xx`).
    pub status: Option<StatusFilter>,
    /// Paths that start with this (the query included).
    pub path: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exactly(u16),
    Class(u16),
}

impl StatusFilter {
    /// `404` or `4xx`.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        match b {
            [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Some(Self::Class(u16::from(c - b'0'))),
            _ => s.parse::<u16>().ok().filter(|n| (100..=599).contains(n)).map(Self::Exactly),
        }
    }
}

impl RequestFilter {
    fn apply(&self, q: &mut Select) {
        if let Some(k) = &self.key_id {
            q.and("e.key_id = ?", [Arg::Text(k.clone())]);
        }
        if let Some(c) = &self.client_id {
            q.and("e.client_id = ?", [Arg::Text(c.clone())]);
        }
        match self.status {
            Some(StatusFilter::Exactly(n)) => {
                q.and("e.status = ?", [Arg::Int(i64::from(n))]);
            }
            Some(StatusFilter::Class(c)) => {
                let from = i64::from(c) * 100;
                q.and("e.status >= ? AND e.status < ?", [Arg::Int(from), Arg::Int(from + 100)]);
            }
            None => {}
        }
        if let Some(p) = &self.path {
            let escaped = p.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            q.and("e.path LIKE ? ESCAPE '\\'", [Arg::Text(format!("{escaped}%"))]);
        }
        if let Some(r) = &self.request_id {
            q.and("e.request_id = ?", [Arg::Text(r.clone())]);
        }
    }
}

/// One request of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedRequest {
    pub id: String,
    /// When the request arrived (RFC 3339).
    pub at: String,
    #[schema(example = "GET")]
    pub method: String,
    /// Path and query, secret values redacted.
    #[schema(example = "/v1/customers?limit=10")]
    pub path: String,
    /// The route template it matched, with the method.
    #[schema(example = "GET /customers")]
    pub endpoint: String,
    pub status: i64,
    pub latency_ms: f64,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub client_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The rate-limit rule that applied.
    pub rule: Option<String>,
    pub error_code: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    created_at: i64,
    method: Option<String>,
    path: Option<String>,
    endpoint: String,
    status: i64,
    latency_us: i64,
    key_id: Option<String>,
    key_name: Option<String>,
    client_id: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    tags: String,
    error_code: Option<String>,
}

impl From<Row> for LoggedRequest {
    fn from(r: Row) -> Self {
        let rule = serde_json::from_str::<serde_json::Value>(&r.tags)
            .ok()
            .and_then(|t| t.get("rule").and_then(|v| v.as_str()).map(str::to_owned));
        // Events kept before the request log had no method or path: the template stands in.
        let (method, path) = match (r.method, r.path) {
            (Some(m), Some(p)) if !m.is_empty() => (m, p),
            _ => {
                let (m, p) = r.endpoint.split_once(' ').unwrap_or(("", &r.endpoint));
                (m.to_owned(), format!("/v1{p}"))
            }
        };
        LoggedRequest {
            id: r.id,
            at: rfc3339(r.created_at),
            method,
            path,
            endpoint: r.endpoint,
            status: r.status,
            latency_ms: r.latency_us as f64 / 1000.0,
            key_id: r.key_id.filter(|k| !k.is_empty()),
            key_name: r.key_name,
            client_id: r.client_id,
            client_ip: r.client_ip.filter(|c| !c.is_empty()),
            user_agent: r.user_agent,
            request_id: r.request_id.filter(|r| !r.is_empty()),
            rule,
            error_code: r.error_code,
        }
    }
}

const SELECT: &str = "SELECT e.id, e.created_at, e.method, e.path, e.endpoint, e.status, e.latency_us, e.key_id, \
     k.name AS key_name, e.client_id, e.client_ip, e.user_agent, e.request_id, e.tags, e.error_code \
     FROM usage_events e LEFT JOIN api_keys k ON k.id = e.key_id AND k.tenant_id = e.tenant_id";

const LISTING: Listing = Listing { table: "usage_events", alias: "e.", id_col: "id" };

/// One page of the tenant's request log, newest first.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    params: &ListParams,
    filter: &RequestFilter,
) -> Result<Page<LoggedRequest>> {
    let mut conn = db.conn().await?;
    let rows: Vec<Row> = LISTING.rows(&mut conn, SELECT, tenant, params, |q| filter.apply(q)).await?;
    Ok(page(rows.into_iter().map(LoggedRequest::from).collect(), params.limit, |e| e.id.clone()))
}

/// Rows an export holds at most (newest first); a narrower filter reaches further back.
pub const EXPORT_MAX: i64 = 100_000;

/// The requests matching the filter as CSV, newest first, at most [`EXPORT_MAX`].
pub async fn export_csv(
    db: &Db,
    tenant: &TenantId,
    params: &ListParams,
    filter: &RequestFilter,
) -> Result<String> {
    let mut conn = db.conn().await?;
    let params = ListParams { limit: EXPORT_MAX, starting_after: None, ..params.clone() };
    let rows: Vec<Row> = LISTING.rows(&mut conn, SELECT, tenant, &params, |q| filter.apply(q)).await?;
    let mut out = String::from(
        "time,method,path,status,latency_ms,key_id,key_name,client_id,client_ip,user_agent,request_id,rule,error_code\n",
    );
    for r in rows.into_iter().take(EXPORT_MAX as usize).map(LoggedRequest::from) {
        let opt = |v: &Option<String>| super::query::csv(v.as_deref().unwrap_or(""));
        out.push_str(&format!(
            "{},{},{},{},{:.3},{},{},{},{},{},{},{},{}\n",
            r.at,
            super::query::csv(&r.method),
            super::query::csv(&r.path),
            r.status,
            r.latency_ms,
            opt(&r.key_id),
            opt(&r.key_name),
            opt(&r.client_id),
            opt(&r.client_ip),
            opt(&r.user_agent),
            opt(&r.request_id),
            opt(&r.rule),
            opt(&r.error_code),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_are_redacted_and_the_rest_kept() {
        assert_eq!(redacted_target("/v1/customers", None), "/v1/customers");
        assert_eq!(
            redacted_target(
                "/v1/customers",
                Some("limit=10&api_key=ak_live_x&Token=abc&q=ak_test_y&email=a")
            ),
            "/v1/customers?limit=10&api_key=[redacted]&Token=[redacted]&q=[redacted]&email=a"
        );
        assert_eq!(
            redacted_target("/v1/x", Some("client_secret=s&flag")),
            "/v1/x?client_secret=[redacted]&flag"
        );
    }

    #[test]
    fn the_sample_keeps_an_exact_share() {
        for (rate, n, kept) in [(0.0, 1000, 0), (1.0, 1000, 1000), (0.1, 1000, 100), (0.25, 10, 2)] {
            let s = Sample::new(rate);
            assert_eq!((0..n).filter(|_| s.take()).count(), kept, "rate {rate}");
        }
    }

    #[test]
    fn status_filters_read_codes_and_classes() {
        assert_eq!(StatusFilter::parse("404"), Some(StatusFilter::Exactly(404)));
        assert_eq!(StatusFilter::parse("5xx"), Some(StatusFilter::Class(5)));
        assert_eq!(StatusFilter::parse("6xx"), None);
        assert_eq!(StatusFilter::parse("42"), None);
    }
}
