//! The [`Store`]'s retention and erasure methods (`crate::history`): each picks the backend's
//! statements.

use crate::error::StoreError;
use crate::history::{Erased, Prune, Pruned};
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Utc};
use todo_events_domain::UserId;

impl Store {
    /// Deletes one batch of each table's history older than its cutoff ([`Prune`]); a
    /// table whose whole batch went may have more ([`Pruned::full`]).
    pub async fn prune(&self, p: &Prune) -> Result<Pruned, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::history::prune(pool, p).await,
            Self::Sqlite(pool) => sqlite::history::prune(pool, p).await,
        }
    }

    /// Erases `user` (`crate::history`): in one transaction, at `now`.
    pub async fn erase_user(&self, user: UserId, now: DateTime<Utc>) -> Result<Erased, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::history::erase(pool, user.get(), now).await,
            Self::Sqlite(pool) => sqlite::history::erase(pool, user.get(), now).await,
        }
    }
}
