//! Shared pieces of the resource repositories: the error type, per-tenant sequences, list
//! queries with cursor pagination, and dynamic binding.

use serde::Serialize;
use sqlx::any::AnyArguments;
use sqlx::{Any, AnyConnection, Arguments};

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;

/// Why a resource operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{what} {reference} not found")]
    NotFound { what: &'static str, reference: String },
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("invalid query")]
    BadQuery(Vec<FieldError>),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{what} {reference} has changed since the version given in If-Match")]
    Stale { what: &'static str, reference: String },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl ResourceError {
    pub fn not_found(what: &'static str, reference: &str) -> Self {
        Self::NotFound { what, reference: reference.to_owned() }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError { field: field.to_owned(), message: message.into() }])
    }
}

pub type Result<T> = std::result::Result<T, ResourceError>;

/// Next value of a per-tenant counter (`CUST-10001`, `ORD-10001`, ...). Runs first in a write
/// transaction, which also takes SQLite's write lock before any read.
pub async fn next_code(conn: &mut AnyConnection, tenant: &TenantId, prefix: &str) -> Result<String> {
    // One statement: the first code of a tenant is 10001, each later one the next.
    let (value,): (i64,) = sqlx::query_as(
        "INSERT INTO sequences (tenant_id, name, value) VALUES ($1, $2, 10001) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET value = sequences.value + 1 RETURNING value",
    )
    .bind(&tenant.0)
    .bind(prefix)
    .fetch_one(&mut *conn)
    .await?;
    Ok(format!("{prefix}-{value}"))
}

/// A page of a list, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<T>,
    pub has_more: bool,
    /// Pass as `starting_after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Paging and time filters shared by every list.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub limit: i64,
    pub starting_after: Option<String>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
}

/// A bindable value for dynamically built queries.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// A `SELECT ... WHERE tenant_id = $1 AND ...` under construction.
#[derive(Debug)]
pub struct Select {
    sql: String,
    args: Vec<Arg>,
}

impl Select {
    /// `select` is the part up to `FROM table`; `alias` prefixes the common columns.
    pub fn new(select: &str, alias: &str, tenant: &TenantId) -> Self {
        Self { sql: format!("{select} WHERE {alias}tenant_id = $1"), args: vec![Arg::Text(tenant.0.clone())] }
    }

    /// Adds `AND <clause>`; each `?` in `clause` takes the next argument.
    pub fn and(&mut self, clause: &str, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        let mut out = String::with_capacity(clause.len() + 4);
        let args: Vec<Arg> = args.into_iter().collect();
        let mut taken = 0;
        for ch in clause.chars() {
            if ch == '?' && taken < args.len() {
                out.push_str(&format!("${}", self.args.len() + taken + 1));
                taken += 1;
            } else {
                out.push(ch);
            }
        }
        self.sql.push_str(" AND ");
        self.sql.push_str(&out);
        self.args.extend(args);
        self
    }

    /// Adds `AND <column>` = the row of `table` named by `reference`: its id, or its human
    /// code when `by` says the reference is one.
    pub fn refers_to(&mut self, column: &str, table: &str, by: &str, reference: &str) -> &mut Self {
        let clause = if by == "id" {
            format!("{column} = ?")
        } else {
            format!("{column} IN (SELECT id FROM {table} WHERE tenant_id = $1 AND {by} = ?)")
        };
        self.and(&clause, [Arg::Text(reference.to_owned())])
    }

    pub fn finish(mut self, tail: &str) -> (String, AnyArguments) {
        self.sql.push(' ');
        self.sql.push_str(tail);
        let mut bound = AnyArguments::default();
        for arg in self.args {
            // Adding a String or i64 to AnyArguments cannot fail.
            let _ = match arg {
                Arg::Text(s) => bound.add(s),
                Arg::Int(i) => bound.add(i),
            };
        }
        (self.sql, bound)
    }
}

/// Where a list reads from: its table, the alias its columns carry in the query, its key.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    pub table: &'static str,
    /// `e.` when the query's columns are `e.created_at`, ...; empty when unqualified.
    pub alias: &'static str,
    pub id_col: &'static str,
}

impl Listing {
    /// One page of this tenant's rows, newest first: `filter` adds the list's own conditions to
    /// `select` (`SELECT ... FROM table`); creation times, the cursor and the page size are
    /// applied the same way for every list.
    pub async fn rows<T>(
        &self,
        conn: &mut AnyConnection,
        select: &str,
        tenant: &TenantId,
        params: &ListParams,
        filter: impl FnOnce(&mut Select) + Send,
    ) -> Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let cursor = cursor_time(conn, self.table, self.id_col, tenant, params).await?;
        let mut q = Select::new(select, self.alias, tenant);
        filter(&mut q);
        fetch_all(conn, paginate(q, self.alias, self.id_col, params, cursor)).await
    }
}

/// Applies the created_at filters, the cursor and the limit (+1 to learn `has_more`), newest first.
/// `cursor_created_at` is the created_at of the `starting_after` row.
fn paginate(
    mut q: Select,
    alias: &str,
    id_col: &str,
    params: &ListParams,
    cursor_created_at: Option<i64>,
) -> (String, AnyArguments) {
    if let Some(t) = params.created_after {
        q.and(&format!("{alias}created_at > ?"), [Arg::Int(t)]);
    }
    if let Some(t) = params.created_before {
        q.and(&format!("{alias}created_at < ?"), [Arg::Int(t)]);
    }
    if let (Some(c), Some(id)) = (cursor_created_at, &params.starting_after) {
        q.and(
            &format!("({alias}created_at < ? OR ({alias}created_at = ? AND {alias}{id_col} < ?))"),
            [Arg::Int(c), Arg::Int(c), Arg::Text(id.clone())],
        );
    }
    q.finish(&format!("ORDER BY {alias}created_at DESC, {alias}{id_col} DESC LIMIT {}", params.limit + 1))
}

/// Trims the extra row and fills `has_more` / `next_cursor`.
pub fn page<T>(mut rows: Vec<T>, limit: i64, id_of: impl Fn(&T) -> String) -> Page<T> {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if has_more { rows.last().map(id_of) } else { None };
    Page { object: "list", data: rows, has_more, next_cursor }
}

/// Runs a dynamically built query.
pub async fn fetch_all<T>(conn: &mut AnyConnection, (sql, args): (String, AnyArguments)) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    Ok(sqlx::query_as_with::<Any, T, _>(sqlx::AssertSqlSafe(sql), args).fetch_all(&mut *conn).await?)
}

/// The row of `select` (`SELECT ... FROM table`) in this tenant whose `column` is `reference`.
pub async fn fetch_by<'c, T>(
    conn: impl sqlx::Executor<'c, Database = Any>,
    select: &str,
    column: &str,
    tenant: &TenantId,
    reference: &str,
) -> Result<Option<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let sql = format!("{select} WHERE tenant_id = $1 AND {column} = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&tenant.0).bind(reference).fetch_optional(conn).await?)
}

/// The loser of a race: the row changed between its read and the guarded write. With
/// `If-Match` that is 412 (the version named is gone); without, 409 and a retry sees the news.
pub fn changed_meanwhile(what: &'static str, reference: &str, if_match: Option<i64>) -> ResourceError {
    match if_match {
        Some(_) => ResourceError::Stale { what, reference: reference.to_owned() },
        None => ResourceError::Conflict {
            code: "concurrent_update",
            detail: format!(
                "{what} {reference} was changed by another request meanwhile; read it again and retry"
            ),
        },
    }
}

/// A row found for a change: its id, its human reference and its version.
#[derive(Debug)]
pub struct Located {
    pub id: String,
    pub code: String,
    pub version: i64,
}

/// Finds the row of `table` that `reference` names (`by` is its column: `id`, or the human
/// code in `code_col`), and holds `If-Match` against its version.
pub async fn locate(
    conn: &mut AnyConnection,
    (table, code_col, what): (&str, &str, &'static str),
    by: &str,
    tenant: &TenantId,
    reference: &str,
    if_match: Option<i64>,
) -> Result<Located> {
    let sql = format!("SELECT id, {code_col}, version FROM {table} WHERE tenant_id = $1 AND {by} = $2");
    let row: Option<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&tenant.0)
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await?;
    let (id, code, version) = row.ok_or_else(|| ResourceError::not_found(what, reference))?;
    if if_match.is_some_and(|v| v != version) {
        return Err(ResourceError::Stale { what, reference: reference.to_owned() });
    }
    Ok(Located { id, code, version })
}

/// Deletes a located row; with `If-Match` only while the row is still at that version (the
/// condition is in the statement, so a change since `locate` is caught too).
pub async fn delete_located(
    conn: &mut AnyConnection,
    (table, what): (&str, &'static str),
    tenant: &TenantId,
    row: &Located,
    if_match: Option<i64>,
) -> Result<()> {
    let mut sql = format!("DELETE FROM {table} WHERE tenant_id = $1 AND id = $2");
    if if_match.is_some() {
        sql.push_str(" AND version = $3");
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&tenant.0).bind(&row.id);
    if let Some(v) = if_match {
        q = q.bind(v);
    }
    if q.execute(&mut *conn).await?.rows_affected() == 0 {
        return Err(ResourceError::Stale { what, reference: row.code.clone() });
    }
    Ok(())
}

/// created_at of the cursor row in `table`, or an `invalid starting_after` error.
async fn cursor_time(
    conn: &mut AnyConnection,
    table: &str,
    id_col: &str,
    tenant: &TenantId,
    params: &ListParams,
) -> Result<Option<i64>> {
    let Some(id) = &params.starting_after else { return Ok(None) };
    let sql = format!("SELECT created_at FROM {table} WHERE tenant_id = $1 AND {id_col} = $2");
    let row: Option<(i64,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&tenant.0).bind(id).fetch_optional(&mut *conn).await?;
    match row {
        Some((t,)) => Ok(Some(t)),
        None => Err(ResourceError::BadQuery(vec![FieldError {
            field: "starting_after".into(),
            message: format!("no object {id} in this list"),
        }])),
    }
}

/// A `LIKE` pattern (with `ESCAPE '\'`) for text containing `needle`, lowercased: the client's
/// `%`, `_` and `\` are matched as themselves, not as wildcards.
pub fn contains_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// JSON stored as TEXT.
pub fn to_json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

pub fn from_json_text<T: serde::de::DeserializeOwned + Default>(text: Option<&str>) -> T {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// Whether a reference is a human code (`CUST-10001`) rather than an id.
pub fn is_code(reference: &str, prefix: &str) -> bool {
    reference.len() > prefix.len() + 1
        && reference.starts_with(prefix)
        && reference.as_bytes()[prefix.len()] == b'-'
}
