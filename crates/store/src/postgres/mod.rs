//! The store on PostgreSQL (production): the pool and every statement, one file per
//! function. Batches are single statements over bound arrays (`UNNEST`, `= ANY`), so a
//! batch costs one round trip.

pub(crate) mod agenda;
pub(crate) mod history;
pub(crate) mod notify;
pub(crate) mod recur;
pub(crate) mod scheduler;
pub(crate) mod seed;
pub(crate) mod status;

use crate::error::StoreError;
use crate::options::StoreOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use todo_events_domain::redact;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx_macros::migrate!("./migrations/postgres");

/// Opens a pool without connecting: a function starts even while its database is down,
/// and readiness reports it.
pub(crate) fn open(opts: &StoreOptions) -> Result<PgPool, StoreError> {
    let mut connect = PgConnectOptions::from_str(&opts.url)
        .map_err(|e| StoreError::Config(format!("DATABASE_URL: {}", redact::passwords(&e.to_string()))))?
        .application_name("todo-events");
    if opts.generic_plans {
        connect = connect.options([("plan_cache_mode", "force_generic_plan")]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(opts.max_connections)
        .acquire_timeout(opts.acquire_timeout)
        // No ping before every checkout (it was one extra round trip per statement group):
        // a connection that died surfaces as one transient error, which is retried (503 /
        // consumer backoff), and is then replaced.
        .test_before_acquire(false)
        .connect_lazy_with(connect))
}

pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    Ok(MIGRATOR.run(pool).await?)
}

pub(crate) async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

pub(crate) async fn table_counts(pool: &PgPool) -> Result<[i64; 5], StoreError> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM tasks), \
         (SELECT COUNT(*) FROM reminders), (SELECT COUNT(*) FROM recurring_tasks), \
         (SELECT COUNT(*) FROM deliveries)";
    let (a, b, c, d, e) = sqlx::query_as(SQL).fetch_one(pool).await?;
    Ok([a, b, c, d, e])
}
