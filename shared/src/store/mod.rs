//! The state store: environments, clusters, nodes, operations, idempotency keys,
//! the audit log and API tokens, in SQLite (the local default) or MySQL / Aurora
//! MySQL, chosen by the URL in `OKERA_DB_URL`.
//!
//! Both backends run through sqlx's `Any` driver with the same parameterised SQL;
//! only the schema files differ (`migrations/sqlite`, `migrations/mysql`), and they
//! only move forward. Concurrency is handled in the database: writers compare a
//! `row_version`, reconcilers hold a lease with an expiry, idempotency keys are
//! claimed in the same transaction as the change they guard.

pub mod archive;
mod auth;
mod catalog;
mod clusters;
mod diagnostics;
mod environments;
mod health;
mod operations;
mod rows;
mod runbooks;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use auth::Role;
pub use clusters::{ClusterObservation, NewNode};
pub use diagnostics::{Claim, DiagnosticsJob, Finish, NewDiagnostics, DIAGNOSTICS};
pub use environments::EnvironmentObservation;
pub use health::{
    AuditEntry, HealthWrite, JoiningNode, NodeUpdate, StatusChange, SweepCluster, SweepWrite, WriteStats,
    BATCH, SWEEP_LEASE,
};
pub use operations::{OpState, Step, StepState, Submitted, WriteCtx};
pub use rows::{AuditRow, ClusterRow, EnvironmentRow, NodeRow, OperationRow};
pub use runbooks::{
    components_text, NewStep, RunbookContext, RunbookKind, RunbookParams, RunbookRow, RunbookStep, StepEnd,
    UpgradeRequest,
};

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database at {url}: check OKERA_DB_URL")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database URL {0:?} is not supported: use sqlite://PATH or mysql://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    #[error("schema migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query {op} failed")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The request conflicts with the stored state; the message says how.
    #[error("{0}")]
    Conflict(String),
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: i64 },
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    /// Whether trying again later may succeed (a lost connection, a deadlock).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Query { source, .. } => {
                matches!(
                    source,
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) || is_lock_error(source)
            }
            _ => false,
        }
    }
}

fn is_lock_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let msg = d.message();
            // MySQL deadlock / lock wait timeout, SQLite busy.
            matches!(d.code().as_deref(), Some("40001") | Some("HY000") | Some("5"))
                && (msg.contains("eadlock") || msg.contains("lock") || msg.contains("busy"))
        }
        _ => false,
    }
}

pub(crate) fn q(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// The id of the row an INSERT just made. sqlx's `Any` driver passes MySQL's
/// insert id through but drops SQLite's, so SQLite asks its connection (the same
/// one, inside the same transaction).
pub(crate) async fn inserted_id(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    result: &sqlx::any::AnyQueryResult,
) -> Result<i64, StoreError> {
    match result.last_insert_id() {
        Some(id) if id > 0 => Ok(id),
        _ => sqlx::query_scalar("SELECT last_insert_rowid()")
            .fetch_one(&mut **tx)
            .await
            .map_err(q("read inserted id")),
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The state store. Cheap to clone: it holds a connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Removes a password from a URL before it reaches an error or a log line.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:`, `mysql://…`) and runs
    /// the forward-only migrations of that backend.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Backend::MySql
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let url = match backend {
            // Create the file on first use; the DM owns its local database.
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            Backend::MySql if url.starts_with("mariadb://") => url.replacen("mariadb://", "mysql://", 1),
            _ => url.to_owned(),
        };
        let connect_err = |source| StoreError::Connect {
            url: redact_url(&url),
            source,
        };
        let options: AnyConnectOptions = url.parse().map_err(connect_err)?;
        let options = options.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            // One connection for in-memory SQLite, or each would see its own database.
            .max_connections(if url.contains(":memory:") { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                    } else {
                        conn.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE'")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::MySql => sqlx::migrate!("./migrations/mysql"),
        };
        migrator.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks that the database answers (used by `GET /v1/status`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(q("ping"))
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_leave_the_store() {
        assert_eq!(
            redact_url("mysql://dm:s3cret@db.example:3306/dm"),
            "mysql://dm:***@db.example:3306/dm"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306/dm"),
            "mysql://root@127.0.0.1:3306/dm"
        );
        assert_eq!(redact_url("sqlite://dm.sqlite"), "sqlite://dm.sqlite");
    }
}
