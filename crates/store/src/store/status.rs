//! The [`Store`]'s status-event methods (`crate::status`): each picks the backend's
//! statement. A batch method given no rows sends nothing.

use crate::error::StoreError;
use crate::status::{ClaimedStatus, NewStatus};
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Duration, Utc};

impl Store {
    /// Records what came of reminders, each id at most once, in one statement; how many
    /// were new.
    pub async fn record_statuses(&self, events: &[NewStatus], now: DateTime<Utc>) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        match self {
            Self::Postgres(pool) => postgres::status::record(pool, events, now).await,
            Self::Sqlite(pool) => sqlite::status::record(pool, events, now).await,
        }
    }

    /// Claims up to `limit` unpublished status events for `owner`, for `lease`.
    pub async fn claim_statuses(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<ClaimedStatus>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::status::claim(pool, owner, (now, now + lease), limit).await,
            Self::Sqlite(pool) => sqlite::status::claim(pool, owner, (now, now + lease), limit).await,
        }
    }

    /// Marks status events published where `owner` still holds their claims.
    pub async fn mark_statuses_published(
        &self,
        owner: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::status::mark(pool, owner, ids, now).await,
            Self::Sqlite(pool) => sqlite::status::mark(pool, owner, ids, now).await,
        }
    }
}
