//! Plugins for the whole cluster: components stored by name and version, the version serving
//! each name (an install or a rollback is a change every node follows), and what each node has
//! loaded, so a node that did not follow shows.

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::changes::{self, Kind};
use crate::db::Db;
use angage_core::clock::rfc3339;

/// A stored component and its place in the history (listed without its bytes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredPlugin {
    pub name: String,
    /// The store's revision of this name (1, 2, ...).
    pub version: i64,
    pub sha256: String,
    /// The plugin's own version, as its `info` says.
    pub plugin_version: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub component: Vec<u8>,
    /// `cli` or `operator`.
    pub created_by: String,
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

fn as_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// What `angage plugins list` and the operator API show: what is stored, what each node serves.
#[derive(Debug, Serialize, ToSchema)]
pub struct Listing {
    pub stored: Vec<StoredPlugin>,
    pub nodes: Vec<NodePlugin>,
}

/// The cluster's plugins and what each node reported loading.
pub async fn listing(db: &Db) -> Result<Listing, PluginStoreError> {
    Ok(Listing { stored: active_all(db).await?, nodes: loaded_by_node(db).await? })
}

#[derive(Debug, thiserror::Error)]
pub enum PluginStoreError {
    #[error("no plugin {0} is stored")]
    Unknown(String),
    #[error("plugin {0} has no earlier version to roll back to")]
    NoEarlier(String),
    #[error("plugin {0} changed meanwhile (another install or rollback); look again and retry")]
    Changed(String),
    #[error("a stored component of {0} is not valid base64")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The SHA-256 of a component, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Stores `component` as the next version of `name` and makes it serve everywhere.
pub async fn install(
    db: &Db,
    name: &str,
    component: &[u8],
    plugin_version: &str,
    actor: &str,
    now: i64,
) -> Result<StoredPlugin, PluginStoreError> {
    let sha256 = sha256_hex(component);
    let encoded = base64::engine::general_purpose::STANDARD.encode(component);
    let mut tx = db.write_tx().await?;
    let (version,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(version), 0) + 1 FROM plugin_versions WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO plugin_versions (name, version, sha256, component, plugin_version, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(name)
    .bind(version)
    .bind(&sha256)
    .bind(&encoded)
    .bind(plugin_version)
    .bind(actor)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match crate::failure::is_unique_violation(&e) {
        // Another install took this version number first.
        true => PluginStoreError::Changed(name.to_owned()),
        false => e.into(),
    })?;
    activate(&mut tx, name, version, now).await?;
    tx.commit().await?;
    Ok(StoredPlugin {
        name: name.to_owned(),
        version,
        sha256,
        plugin_version: plugin_version.to_owned(),
        component: component.to_vec(),
        created_by: actor.to_owned(),
        created_at: now,
    })
}

/// Makes the version before the serving one serve again. The step is from the version read,
/// in the statement: two rollbacks at once go back one version each, or the second is told.
pub async fn rollback(db: &Db, name: &str, now: i64) -> Result<StoredPlugin, PluginStoreError> {
    let mut tx = db.write_tx().await?;
    let serving: Option<(i64,)> = sqlx::query_as("SELECT version FROM plugin_active WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((serving,)) = serving else { return Err(PluginStoreError::Unknown(name.to_owned())) };
    let earlier: Option<(i64,)> = sqlx::query_as(
        "SELECT MAX(version) FROM plugin_versions WHERE name = $1 AND version < $2 HAVING MAX(version) IS NOT NULL",
    )
    .bind(name)
    .bind(serving)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((version,)) = earlier else { return Err(PluginStoreError::NoEarlier(name.to_owned())) };
    let moved = sqlx::query(
        "UPDATE plugin_active SET version = $1, updated_at = $2 WHERE name = $3 AND version = $4",
    )
    .bind(version)
    .bind(now)
    .bind(name)
    .bind(serving)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        return Err(PluginStoreError::Changed(name.to_owned()));
    }
    changes::record(&mut tx, None, Kind::Plugin, name, now).await?;
    tx.commit().await?;
    active(db, name).await?.ok_or_else(|| PluginStoreError::Unknown(name.to_owned()))
}

async fn activate(
    tx: &mut crate::db::WriteTx,
    name: &str,
    version: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO plugin_active (name, version, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(version)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    changes::record(tx, None, Kind::Plugin, name, now).await?;
    Ok(())
}

type Row = (String, i64, String, String, String, String, i64);

const ACTIVE: &str = "SELECT v.name, v.version, v.sha256, v.plugin_version, v.component, v.created_by, v.created_at \
                      FROM plugin_active a JOIN plugin_versions v ON v.name = a.name AND v.version = a.version";

fn decoded(r: Row) -> Result<StoredPlugin, PluginStoreError> {
    let (name, version, sha256, plugin_version, component, created_by, created_at) = r;
    let component = base64::engine::general_purpose::STANDARD
        .decode(component)
        .map_err(|_| PluginStoreError::Corrupt(name.clone()))?;
    Ok(StoredPlugin { name, version, sha256, plugin_version, component, created_by, created_at })
}

/// The serving version of `name`, when one is stored.
pub async fn active(db: &Db, name: &str) -> Result<Option<StoredPlugin>, PluginStoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{ACTIVE} WHERE a.name = $1")))
        .bind(name)
        .fetch_optional(&mut *db.conn().await?)
        .await?;
    row.map(decoded).transpose()
}

/// Every stored name's serving version.
pub async fn active_all(db: &Db) -> Result<Vec<StoredPlugin>, PluginStoreError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{ACTIVE} ORDER BY v.name")))
        .fetch_all(&mut *db.conn().await?)
        .await?;
    rows.into_iter().map(decoded).collect()
}

/// What one node serves at one stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodePlugin {
    pub node: String,
    pub address: String,
    pub stage: String,
    pub name: String,
    /// `builtin`, `file` or `store`.
    pub source: String,
    pub sha256: String,
    pub loaded_at: String,
}

/// Records what this node serves at `stage` (after every load).
pub async fn report_loaded(db: &Db, loaded: &NodePlugin, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.write_tx().await?;
    sqlx::query(
        "INSERT INTO node_plugins (node, address, stage, name, source, sha256, loaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (node, stage) DO UPDATE SET address = excluded.address, name = excluded.name, \
         source = excluded.source, sha256 = excluded.sha256, loaded_at = excluded.loaded_at",
    )
    .bind(&loaded.node)
    .bind(&loaded.address)
    .bind(&loaded.stage)
    .bind(&loaded.name)
    .bind(&loaded.source)
    .bind(&loaded.sha256)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// What every node reported, by node then stage.
pub async fn loaded_by_node(db: &Db) -> Result<Vec<NodePlugin>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT node, address, stage, name, source, sha256, loaded_at FROM node_plugins ORDER BY node, stage",
    )
    .fetch_all(&mut *db.conn().await?)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(node, address, stage, name, source, sha256, at)| NodePlugin {
            node,
            address,
            stage,
            name,
            source,
            sha256,
            loaded_at: rfc3339(at),
        })
        .collect())
}
