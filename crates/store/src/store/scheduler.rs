//! The [`Store`]'s scheduler methods: each picks the backend's claim or mark
//! (`postgres/scheduler.rs`, `sqlite/scheduler.rs`) and puts the claimed rows in the one
//! order both backends promise. Apart from `scheduler.rs`, which holds what a claim asks
//! for, so that the backends import that without importing the facade.

use crate::error::StoreError;
use crate::recur::Occurrence;
use crate::rows::{ClaimedOccurrence, ClaimedReminder, Malformed};
use crate::scheduler::ClaimRequest;
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Duration, Utc};
use todo_events_domain::{RecurringTaskId, ReminderId};

impl Store {
    /// Claims up to `limit` due reminders (pending, or publishing with an expired lease) and,
    /// with `republish_after`, up to `limit` published that long ago and still not mailed
    /// (fewer than [`scheduler::PUBLISH_LIMIT`](crate::scheduler::PUBLISH_LIMIT) times).
    /// Oldest first.
    pub async fn claim_reminders(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        republish_after: Option<Duration>,
    ) -> Result<Vec<ClaimedReminder>, StoreError> {
        let claim = ClaimRequest::new(owner, now, lease, limit, republish_after);
        let mut rows = match self {
            Self::Postgres(pool) => postgres::scheduler::claim_reminders(pool, &claim).await?,
            Self::Sqlite(pool) => sqlite::scheduler::claim_reminders(pool, &claim).await?,
        };
        rows.sort_by_key(|r| (r.remind_at, r.id));
        Ok(rows)
    }

    /// Marks claimed reminders published, if this owner still holds them. Returns how many
    /// were marked.
    pub async fn mark_reminders_published(
        &self,
        owner: &str,
        ids: &[ReminderId],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Postgres(pool) => {
                postgres::scheduler::mark_reminders_published(pool, owner, ids, now).await
            }
            Self::Sqlite(pool) => sqlite::scheduler::mark_reminders_published(pool, owner, ids, now).await,
        }
    }

    /// Claims up to `limit` active recurring tasks whose next occurrence is due and has not
    /// been published yet, or — with `republish_after` — was published that long ago and the
    /// task has not moved on (fewer than
    /// [`scheduler::PUBLISH_LIMIT`](crate::scheduler::PUBLISH_LIMIT) times). Each claimed row
    /// is typed, or why it cannot be (its claim is held: the caller deactivates it). Oldest
    /// first.
    pub async fn claim_occurrences(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        republish_after: Option<Duration>,
    ) -> Result<Vec<Result<ClaimedOccurrence, Malformed>>, StoreError> {
        let claim = ClaimRequest::new(owner, now, lease, limit, republish_after);
        let mut rows = match self {
            Self::Postgres(pool) => postgres::scheduler::claim_occurrences(pool, &claim).await?,
            Self::Sqlite(pool) => sqlite::scheduler::claim_occurrences(pool, &claim).await?,
        };
        rows.sort_by_key(|r| match r {
            Ok(c) => (Some(c.next_occurrence), c.id.get()),
            Err(m) => (None, m.id),
        });
        Ok(rows)
    }

    /// Moves a claimed task's `next_occurrence` forward from `from` to `to`, past missed
    /// occurrences (catch-up policy `latest`). Returns whether it moved.
    pub async fn fast_forward(
        &self,
        owner: &str,
        id: RecurringTaskId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::scheduler::fast_forward(pool, owner, id, (from, to), now).await,
            Self::Sqlite(pool) => sqlite::scheduler::fast_forward(pool, owner, id, (from, to), now).await,
        }
    }

    /// Records that each `(task, occurrence)` of a batch was published and releases its claim,
    /// in one statement, for the tasks this owner still holds. Returns how many were marked.
    pub async fn mark_occurrences_published(
        &self,
        owner: &str,
        published: &[Occurrence],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Postgres(pool) => {
                postgres::scheduler::mark_occurrences_published(pool, owner, published, now).await
            }
            Self::Sqlite(pool) => {
                sqlite::scheduler::mark_occurrences_published(pool, owner, published, now).await
            }
        }
    }

    /// Deactivates a claimed recurring task whose stored rule can no longer be evaluated
    /// (so it stops being claimed) and releases the claim.
    pub async fn deactivate_recurring(
        &self,
        owner: &str,
        id: RecurringTaskId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::scheduler::deactivate_recurring(pool, owner, id, now).await,
            Self::Sqlite(pool) => sqlite::scheduler::deactivate_recurring(pool, owner, id, now).await,
        }
    }
}
