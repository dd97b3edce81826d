//! The todo database, on PostgreSQL (production) or SQLite (the embedded default), with one
//! behaviour on both: the same tables, the same claims, the same once-only effects.
//!
//! Every query is written once. [`on_pool!`] expands a body for each backend so that sqlx
//! type-checks it against both drivers; where the dialects differ (row locking), the
//! difference is a named fragment, not a second copy of the query.

mod error;
pub mod notify;
pub mod recur;
pub mod rows;
pub mod scheduler;
pub mod seed;

pub use error::StoreError;
pub use rows::*;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Runs `$body` with `$pool` bound to whichever pool the store holds.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::Store::Postgres($pool) => $body,
            $crate::Store::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A handle on the database; cheap to clone (pools are shared).
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// How to reach the database. `Debug` hides the password.
#[derive(Clone)]
pub struct StoreOptions {
    /// `postgres://…` or `sqlite://…` (a path; the file is created when missing).
    pub url: String,
    /// PostgreSQL pool size. SQLite always uses one connection: it has a single writer, and
    /// one connection turns writer contention into a queue instead of `SQLITE_BUSY` errors.
    pub max_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
    /// PostgreSQL: plan each statement once per connection (`plan_cache_mode =
    /// force_generic_plan`) instead of at every execution. The functions' statements take
    /// their rows by key from bound arrays (`UNNEST($1::bigint[])`), so one plan fits every
    /// call, yet PostgreSQL's default keeps re-planning them (the generic plan's row estimate
    /// for an array looks costlier than a fresh plan for the values at hand), and planning
    /// cost more than executing: 0.12–0.25 ms of 0.15–0.45 ms per statement, measured in
    /// docs/PERFORMANCE.md. Off for the scheduler, whose claims filter by time ranges where a
    /// plan for the actual values can matter.
    pub generic_plans: bool,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &redact(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("generic_plans", &self.generic_plans)
            .finish()
    }
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            generic_plans: false,
        }
    }
}

impl Store {
    /// Opens a pool without connecting: a function starts even while its database is down,
    /// and readiness reports it.
    pub fn open(opts: &StoreOptions) -> Result<Self, StoreError> {
        let url = opts.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut connect = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("DATABASE_URL: {}", redact(&e.to_string()))))?
                .application_name("todo-events");
            if opts.generic_plans {
                connect = connect.options([("plan_cache_mode", "force_generic_plan")]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                // No ping before every checkout (it was one extra round trip per statement
                // group): a connection that died surfaces as one transient error, which is
                // retried (503 / consumer backoff), and is then replaced.
                .test_before_acquire(false)
                .connect_lazy_with(connect);
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(opts.acquire_timeout.max(Duration::from_secs(10)))
                .connect_lazy_with(connect);
            Ok(Self::Sqlite(pool))
        } else {
            Err(StoreError::Config(
                "DATABASE_URL must start with postgres:// or sqlite: (e.g. sqlite://todo-events.db)".into(),
            ))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Applies the embedded migrations for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => PG_MIGRATOR.run(pool).await?,
            Self::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// One round trip: what readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Row counts of every table, in a fixed order: what tests compare to prove that a
    /// rejected request wrote nothing.
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut out = Vec::new();
        for table in ["users", "tasks", "reminders", "recurring_tasks", "deliveries"] {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = on_pool!(self, pool => sqlx::query_scalar(&sql).fetch_one(pool).await?);
            out.push((table, n));
        }
        Ok(out)
    }
}

/// Hides the password in a connection string (for error messages and logs).
pub fn redact(text: &str) -> String {
    match text.find("://") {
        Some(scheme_end) => {
            let rest = &text[scheme_end + 3..];
            // The authority ends at the first '/'; a password may itself contain '@' (badly
            // encoded), so the user info ends at the last '@' before that.
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            match (authority.rfind('@'), rest.find(':')) {
                (Some(at), Some(colon)) if colon < at => {
                    format!("{}://{}:***{}", &text[..scheme_end], &rest[..colon], &rest[at..])
                }
                _ => text.to_owned(),
            }
        }
        None => text.to_owned(),
    }
}

/// SQL text for "lock the selected rows, skipping rows another claimer holds". SQLite has a
/// single writer, so its claim statement is atomic without row locks.
pub(crate) fn skip_locked(store: &Store) -> &'static str {
    if store.is_postgres() {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db:5432/todo"),
            "postgres://app:***@db:5432/todo"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            super::redact("postgres://app:p@ss@db:5432/todo"),
            "postgres://app:***@db:5432/todo"
        );
        let opts = super::StoreOptions::new("postgres://app:s3cret@db/todo");
        assert!(!format!("{opts:?}").contains("s3cret"));
    }
}
