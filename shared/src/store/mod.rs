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
mod regions;
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
pub use regions::{DoneStep, FailoverScope, LeadershipRow, RegionRow};
pub use rows::{AuditRow, ClusterRow, EnvironmentRow, NodeRow, OperationRow};
pub use runbooks::{
    components_text, Move, NewStep, RunbookContext, RunbookKind, RunbookParams, RunbookRow, RunbookStep,
    StepEnd, UpgradeRequest,
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
    /// The database refused a write because it is a read-only replica (an
    /// Aurora secondary, or the local stand-in of one): this region stands by.
    #[error(
        "the database refused the write ({op}): it is a read-only replica here, and this region stands by"
    )]
    ReadOnly { op: &'static str },
}

impl StoreError {
    /// Whether trying again later may succeed (a lost connection, a deadlock).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::ReadOnly { .. } => false,
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
    move |source| {
        if is_read_only_error(&source) {
            StoreError::ReadOnly { op }
        } else {
            StoreError::Query { op, source }
        }
    }
}

/// A write refused by a read-only database: SQLite's `query_only` ("attempt to
/// write a readonly database"), MySQL's read-only transaction (1792), server
/// (1290, `--read-only`) or mode (1836), as an Aurora secondary answers.
fn is_read_only_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let msg = d.message().to_ascii_lowercase();
            msg.contains("readonly database")
                || msg.contains("read only transaction")
                || msg.contains("--read-only")
                || msg.contains("read-only mode")
        }
        _ => false,
    }
}

/// Which region's database is the writer, as the local stand-in of an Aurora
/// global database sees it. The regional stores of one process share one; in
/// AWS each region has its own database and Aurora itself refuses writes on a
/// secondary, so nothing sets this there.
#[derive(Clone, Debug, Default)]
pub struct WriterWatch(std::sync::Arc<std::sync::RwLock<Option<String>>>);

impl WriterWatch {
    pub fn new(writer: Option<&str>) -> WriterWatch {
        WriterWatch(std::sync::Arc::new(std::sync::RwLock::new(
            writer.map(str::to_owned),
        )))
    }

    pub fn get(&self) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, writer: Option<&str>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = writer.map(str::to_owned);
    }
}

/// A store that stands for one region's database of a global database: its
/// connections are read-only while another region's is the writer.
#[derive(Clone, Debug)]
struct RegionGate {
    region: String,
    writer: WriterWatch,
}

impl RegionGate {
    fn writable(&self) -> bool {
        self.writer.get().as_deref() == Some(self.region.as_str())
    }
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
    gate: Option<RegionGate>,
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
        let store = Store::open(url, None).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// The database of `region` in the local stand-in of a global database: the
    /// same database as every region's (migrated here first), whose connections
    /// are read-only (SQLite `query_only`, MySQL `READ ONLY` transactions) while
    /// `writer` names another region, as an Aurora secondary cluster refuses
    /// writes until it is promoted.
    pub async fn connect_regional(url: &str, region: &str, writer: WriterWatch) -> Result<Store, StoreError> {
        Store::connect(url).await?.pool.close().await;
        Store::open(
            url,
            Some(RegionGate {
                region: region.to_owned(),
                writer,
            }),
        )
        .await
    }

    /// Whether this store takes writes now: the writer role of the local
    /// stand-in, or on MySQL the server's `read_only` and `innodb_read_only`
    /// (set on an Aurora secondary).
    pub async fn is_writer(&self) -> Result<bool, StoreError> {
        if let Some(gate) = &self.gate {
            return Ok(gate.writable());
        }
        match self.backend {
            Backend::Sqlite => Ok(true),
            Backend::MySql => {
                let row = sqlx::query("SELECT @@global.read_only + @@global.innodb_read_only AS ro")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(q("read the read_only setting"))?;
                let ro: i64 = rows::col(&row, "ro")?;
                Ok(ro == 0)
            }
        }
    }

    /// The region this store stands for in the local stand-in, if any.
    pub fn region(&self) -> Option<&str> {
        self.gate.as_ref().map(|g| g.region.as_str())
    }

    async fn open(url: &str, gate: Option<RegionGate>) -> Result<Store, StoreError> {
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
        let acquire_gate = gate.clone();
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
            // The local stand-in of a secondary: each connection is made
            // read-only or read-write as it is handed out, after the writer role.
            .before_acquire(move |conn, _| {
                let mode = acquire_gate.as_ref().map(|g| (backend, g.writable()));
                Box::pin(async move {
                    let sql = match mode {
                        None => return Ok(true),
                        Some((Backend::Sqlite, true)) => "PRAGMA query_only = OFF",
                        Some((Backend::Sqlite, false)) => "PRAGMA query_only = ON",
                        Some((Backend::MySql, true)) => "SET SESSION TRANSACTION READ WRITE",
                        Some((Backend::MySql, false)) => "SET SESSION TRANSACTION READ ONLY",
                    };
                    conn.execute(sql).await?;
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        Ok(Store { pool, backend, gate })
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
