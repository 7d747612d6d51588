//! Rule versions in the store.

use serde::Serialize;

use crate::changes::{self, Kind};
use crate::db::Db;
use angage_core::clock::rfc3339;
use angage_core::ids::new_id;
use angage_core::tenant::TenantId;

/// One accepted version of a scope's script.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleVersion {
    pub version: i64,
    #[serde(rename = "script")]
    pub body: String,
    /// The admin's e-mail, or `file` for an edit on disk.
    pub created_by: String,
    pub note: Option<String>,
    pub created_at: String,
    #[serde(skip)]
    pub scope_key: String,
    #[serde(skip)]
    pub label: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    scope: String,
    version: i64,
    body: String,
    created_by: String,
    note: Option<String>,
    created_at: i64,
    slug: Option<String>,
}

impl From<Row> for RuleVersion {
    fn from(r: Row) -> Self {
        let label = match &r.slug {
            Some(slug) => format!("tenants/{slug}"),
            None => "default".into(),
        };
        Self {
            version: r.version,
            body: r.body,
            created_by: r.created_by,
            note: r.note,
            created_at: rfc3339(r.created_at),
            scope_key: r.scope,
            label,
        }
    }
}

const SELECT: &str = "SELECT r.scope, r.version, r.body, r.created_by, r.note, r.created_at, t.slug \
                      FROM rules r LEFT JOIN tenants t ON t.id = r.scope";

pub async fn insert(
    db: &Db,
    scope: &str,
    body: &str,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> Result<RuleVersion, sqlx::Error> {
    let mut tx = db.write_tx().await?;
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(version), 0) + 1 FROM rules WHERE scope = $1")
        .bind(scope)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO rules (id, scope, version, body, created_by, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(new_id("rul"))
        .bind(scope)
        .bind(next)
        .bind(body)
        .bind(actor)
        .bind(note)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let tenant = (scope != "default").then(|| TenantId(scope.to_owned()));
    changes::record(&mut tx, tenant.as_ref(), Kind::Rule, scope, now).await?;
    tx.commit().await?;
    Ok(get(db, scope, next).await?.unwrap_or_else(|| RuleVersion {
        version: next,
        body: body.to_owned(),
        created_by: actor.to_owned(),
        note: note.map(str::to_owned),
        created_at: rfc3339(now),
        scope_key: scope.to_owned(),
        label: String::new(),
    }))
}

pub async fn get(db: &Db, scope: &str, version: i64) -> Result<Option<RuleVersion>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE r.scope = $1 AND r.version = $2");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(version)
        .fetch_optional(&mut *db.conn().await?)
        .await?;
    Ok(row.map(RuleVersion::from))
}

pub async fn latest(db: &Db, scope: &str) -> Result<Option<RuleVersion>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE r.scope = $1 ORDER BY r.version DESC LIMIT 1");
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(scope).fetch_optional(&mut *db.conn().await?).await?;
    Ok(row.map(RuleVersion::from))
}

/// The serving version of every scope.
pub async fn latest_all(db: &Db) -> Result<Vec<RuleVersion>, sqlx::Error> {
    let sql =
        format!("{SELECT} WHERE r.version = (SELECT MAX(x.version) FROM rules x WHERE x.scope = r.scope)");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *db.conn().await?).await?;
    Ok(rows.into_iter().map(RuleVersion::from).collect())
}

/// Every version of a scope, newest first.
pub async fn list(db: &Db, scope: &str) -> Result<Vec<RuleVersion>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE r.scope = $1 ORDER BY r.version DESC");
    let rows: Vec<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(scope).fetch_all(&mut *db.conn().await?).await?;
    Ok(rows.into_iter().map(RuleVersion::from).collect())
}
