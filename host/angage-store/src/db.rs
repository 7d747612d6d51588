//! The store's connection pool: SQLite (embedded, WAL) or PostgreSQL behind one `AnyPool`, so
//! the same repository code and the same migrations serve both.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, install_default_drivers};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection};

use crate::circuit::Circuit;
pub use crate::failure::{is_unavailable, is_unique_violation};

use angage_core::config::DatabaseSettings;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool plus what the host needs to know about it.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// The SQLite file, when embedded; readiness checks it is still there.
    pub sqlite_file: Option<PathBuf>,
    /// The file's identity when the pool was opened: a file deleted and created anew (by a new
    /// connection) is not the database this server was serving.
    sqlite_identity: Option<(u64, u64)>,
    writer: Arc<tokio::sync::Semaphore>,
    circuit: Arc<Circuit>,
    /// Signalled by every commit that leaves webhook deliveries due; this node's worker waits on it.
    webhooks_due: Arc<tokio::sync::Notify>,
}

/// How long a SQLite writer waits for its turn before the request is answered 503.
const WRITER_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Connects (creating the SQLite file and its folder when needed). Does not migrate.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, DbError> {
        install_default_drivers();
        let (url, backend, sqlite_file) = normalize(&settings.url)?;
        let options = AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::query(*pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(DbError::Connect)?;
        let sqlite_identity = sqlite_file.as_deref().and_then(file_identity);
        Ok(Self {
            pool,
            backend,
            sqlite_file,
            sqlite_identity,
            writer: Arc::new(tokio::sync::Semaphore::new(1)),
            circuit: Arc::new(Circuit::new(
                settings.circuit_failures,
                Duration::from_millis(settings.circuit_open_ms),
            )),
            webhooks_due: Arc::default(),
        })
    }

    /// A pooled connection for one piece of work. While the database is unreachable (the
    /// circuit is open) this fails at once instead of waiting out the acquire timeout.
    pub async fn conn(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.circuit.check()?;
        let result = self.pool.acquire().await;
        self.circuit.observe(result.as_ref().err());
        result
    }

    /// Resolves when a commit on this node has left webhook deliveries due (or one already had
    /// since the last wait).
    pub async fn webhooks_due(&self) {
        self.webhooks_due.notified().await;
    }

    /// Seconds a client should wait before retrying while the database is unavailable.
    pub fn retry_after_seconds(&self) -> u64 {
        self.circuit.retry_after_seconds()
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers a query (and, embedded, its file still exists).
    pub async fn ready(&self) -> bool {
        if let Some(file) = &self.sqlite_file
            && (!file.exists() || file_identity(file) != self.sqlite_identity)
        {
            return false;
        }
        let check = async {
            let mut conn = self.conn().await?;
            conn.ping().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await
        };
        matches!(tokio::time::timeout(Duration::from_secs(2), check).await, Ok(Ok(_)))
    }

    /// Starts a transaction that writes. SQLite has one writer at a time: writers queue here, in
    /// process, and then take the write lock up front (`BEGIN IMMEDIATE`), instead of polling
    /// SQLite's busy handler or failing with `SQLITE_BUSY` on a read-then-write upgrade.
    pub async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                self.circuit.check()?;
                let permit = tokio::time::timeout(WRITER_QUEUE_TIMEOUT, self.writer.clone().acquire_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
                    .map_err(|_| sqlx::Error::PoolClosed)?;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await;
                self.circuit.observe(tx.as_ref().err());
                Ok(WriteTx {
                    tx: tx?,
                    _permit: Some(permit),
                    backend: Backend::Sqlite,
                    webhooks_due: self.webhooks_due.clone(),
                    wake: false,
                })
            }
            Backend::Postgres => {
                self.circuit.check()?;
                let tx = self.pool.begin().await;
                self.circuit.observe(tx.as_ref().err());
                Ok(WriteTx {
                    tx: tx?,
                    _permit: None,
                    backend: Backend::Postgres,
                    webhooks_due: self.webhooks_due.clone(),
                    wake: false,
                })
            }
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A write transaction; holds SQLite's in-process writer slot until commit or drop.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    backend: Backend,
    webhooks_due: Arc<tokio::sync::Notify>,
    wake: bool,
}

impl WriteTx {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The commit will wake this node's webhook worker.
    pub fn wake_webhooks(&mut self) {
        self.wake = true;
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        if self.wake {
            self.webhooks_due.notify_one();
        }
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.len(), 0))
}

/// WAL lets readers proceed while one writer commits; the busy timeout queues writers instead of
/// failing them.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
];

/// Adds `mode=rwc` to SQLite URLs and creates the file's folder.
fn normalize(url: &str) -> Result<(String, Backend, Option<PathBuf>), DbError> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok((url.to_owned(), Backend::Postgres, None));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path == ":memory:" {
        return Ok((url.to_owned(), Backend::Sqlite, None));
    }
    let file = PathBuf::from(path);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| DbError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".into()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((format!("sqlite://{path}?{query}"), Backend::Sqlite, Some(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_are_created_on_demand() {
        let (url, backend, file) = normalize("sqlite://x/y.db").expect("normalize");
        assert_eq!(url, "sqlite://x/y.db?mode=rwc");
        assert_eq!(backend, Backend::Sqlite);
        assert_eq!(file, Some(PathBuf::from("x/y.db")));
        let _ = std::fs::remove_dir("x");
        let (url, backend, _) = normalize("postgres://u@h/db").expect("normalize");
        assert_eq!((url.as_str(), backend), ("postgres://u@h/db", Backend::Postgres));
    }
}
