//! The store on SQLite (the embedded default): the pool and every statement, one file per
//! function. The database is in-process, so a batch costs no round trips: its rows are
//! written one by one in one transaction, and id lists travel as one JSON array
//! (`json_each`), since SQLite has no array type.

pub(crate) mod agenda;
pub(crate) mod history;
pub(crate) mod notify;
pub(crate) mod recur;
pub(crate) mod scheduler;
pub(crate) mod seed;
pub(crate) mod status;

use crate::error::StoreError;
use crate::options::StoreOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx_macros::migrate!("./migrations/sqlite");

/// Opens the file (created when missing). One connection: SQLite has a single writer, and
/// one connection turns writer contention into a queue instead of `SQLITE_BUSY` errors.
pub(crate) fn open(opts: &StoreOptions) -> Result<SqlitePool, StoreError> {
    let connect = SqliteConnectOptions::from_str(&opts.url)
        .map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(opts.acquire_timeout.max(Duration::from_secs(10)))
        .connect_lazy_with(connect))
}

pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    Ok(MIGRATOR.run(pool).await?)
}

pub(crate) async fn ping(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

pub(crate) async fn table_counts(pool: &SqlitePool) -> Result<[i64; 5], StoreError> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM tasks), \
         (SELECT COUNT(*) FROM reminders), (SELECT COUNT(*) FROM recurring_tasks), \
         (SELECT COUNT(*) FROM deliveries)";
    let (a, b, c, d, e) = sqlx::query_as(SQL).fetch_one(pool).await?;
    Ok([a, b, c, d, e])
}

/// Ids as the JSON array `json_each` reads.
pub(crate) fn json_ids(ids: impl Iterator<Item = i64>) -> String {
    serde_json::to_string(&ids.collect::<Vec<_>>()).expect("integers serialize")
}
