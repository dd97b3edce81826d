//! The [`Store`]'s life: opening the pool the URL names (the one place a backend is chosen),
//! migrating, the readiness ping, closing, and the table counts tests compare. Apart from
//! the concerns' methods because none of them is about one concern.

use crate::error::StoreError;
use crate::options::StoreOptions;
use crate::{postgres, sqlite, Store};

impl Store {
    /// Opens a pool without connecting: a function starts even while its database is down,
    /// and readiness reports it.
    pub fn open(opts: &StoreOptions) -> Result<Self, StoreError> {
        let url = opts.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(postgres::open(opts)?))
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(sqlite::open(opts)?))
        } else {
            Err(StoreError::Config(
                "DATABASE_URL must start with postgres:// or sqlite: (e.g. sqlite://todo-events.db)".into(),
            ))
        }
    }

    /// Applies the embedded migrations for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::migrate(pool).await,
            Self::Sqlite(pool) => sqlite::migrate(pool).await,
        }
    }

    /// The versions of the migrations this build applies to this backend, ascending: what
    /// `_sqlx_migrations` holds once [`Store::migrate`] has run (`todo-events doctor`
    /// compares the two).
    pub fn migration_versions(&self) -> Vec<i64> {
        let migrator = match self {
            Self::Postgres(_) => &postgres::MIGRATOR,
            Self::Sqlite(_) => &sqlite::MIGRATOR,
        };
        migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect()
    }

    /// One round trip: what readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::ping(pool).await,
            Self::Sqlite(pool) => sqlite::ping(pool).await,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    /// Row counts of every table, in a fixed order: what tests compare to prove that a
    /// rejected request wrote nothing.
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let counts = match self {
            Self::Postgres(pool) => postgres::table_counts(pool).await?,
            Self::Sqlite(pool) => sqlite::table_counts(pool).await?,
        };
        let tables = ["users", "tasks", "reminders", "recurring_tasks", "deliveries"];
        Ok(tables.into_iter().zip(counts).collect())
    }
}
