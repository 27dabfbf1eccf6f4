//! Fresh databases for tests, one per test, so that tests run in parallel without
//! seeing each other's rows. It hands out URLs, not stores, so that it does not
//! depend on the crates it tests.
//!
//! MySQL semantics are tested against a real server: `DM_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`, which `tests/run` makes sure answers).

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// A URL for a new, empty SQLite database file.
pub fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join("dm-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    format!(
        "sqlite://{}",
        dir.join(format!("{}.sqlite", unique("dm"))).display()
    )
}

/// The MySQL server the tests use.
pub fn mysql_server() -> String {
    std::env::var("DM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A URL for a new, empty database on the test MySQL server. Panics with what to
/// do when the server does not answer: these tests must not pass without it.
pub async fn mysql_url() -> String {
    let server = mysql_server();
    let mut conn = sqlx::MySqlConnection::connect(&server).await.unwrap_or_else(|e| {
        panic!("MySQL at {server} does not answer ({e}); run tests/run, which starts MariaDB, or set DM_TEST_MYSQL_URL")
    });
    let name = unique("dm_test");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    format!("{}/{name}", server.trim_end_matches('/'))
}

/// One URL per backend, for tests that must hold on both.
pub async fn all_backends() -> Vec<(&'static str, String)> {
    vec![("sqlite", sqlite_url()), ("mysql", mysql_url().await)]
}
