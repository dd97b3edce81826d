//! The scheduler's side of the database: batch claims with a lease, and marking published.
//!
//! A claim moves due rows to "being published by <owner> until <lease end>" in one
//! statement. On PostgreSQL the candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so
//! concurrent schedulers take disjoint batches without waiting on each other; on SQLite the
//! statement is atomic because there is one writer. Rows are marked published only by the
//! owner of the claim and only after the sink acknowledged them; if the scheduler dies
//! first, the lease runs out and the rows are claimed (and published, same ids) again.

use crate::{on_pool, skip_locked, Store, StoreError};
use chrono::{DateTime, Duration, Utc};

/// A claimed reminder, ready to become a `dev.todo.reminder.due` event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedReminder {
    pub id: i64,
    pub task_id: i64,
    pub user_id: i64,
    pub remind_at: DateTime<Utc>,
}

/// A claimed recurring task whose `next_occurrence` is due.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedOccurrence {
    pub id: i64,
    pub user_id: i64,
    pub rrule: String,
    pub timezone: String,
    pub dtstart: String,
    pub next_occurrence: DateTime<Utc>,
    pub catch_up: String,
}

impl Store {
    /// Claims up to `limit` due reminders (pending, or publishing with an expired lease).
    pub async fn claim_reminders(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<ClaimedReminder>, StoreError> {
        let sql = format!(
            "UPDATE reminders SET state = 'publishing', lease_owner = $1, lease_until = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM reminders \
                 WHERE (state = 'pending' AND remind_at <= $3) \
                    OR (state = 'publishing' AND lease_until <= $3) \
                 ORDER BY remind_at LIMIT $4 {}) \
             RETURNING id, task_id, user_id, remind_at",
            skip_locked(self)
        );
        let mut rows: Vec<ClaimedReminder> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(owner).bind(now + lease).bind(now).bind(limit)
            .fetch_all(pool).await?);
        rows.sort_by_key(|r| (r.remind_at, r.id));
        Ok(rows)
    }

    /// Marks claimed reminders published, if this owner still holds them.
    /// Returns how many were marked.
    pub async fn mark_reminders_published(
        &self,
        owner: &str,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut marked = 0;
        for chunk in ids.chunks(500) {
            let list = placeholders(3, chunk.len());
            let sql = format!(
                "UPDATE reminders SET state = 'published', published_at = $2, lease_owner = NULL, \
                 lease_until = NULL, updated_at = $2 \
                 WHERE state = 'publishing' AND lease_owner = $1 AND id IN ({list})"
            );
            marked += on_pool!(self, pool => {
                let mut q = sqlx::query(&sql).bind(owner).bind(now);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(pool).await?.rows_affected()
            });
        }
        Ok(marked)
    }

    /// Claims up to `limit` active recurring tasks whose next occurrence is due and has not
    /// been published yet.
    pub async fn claim_occurrences(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<ClaimedOccurrence>, StoreError> {
        let sql = format!(
            "UPDATE recurring_tasks SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM recurring_tasks \
                 WHERE active AND next_occurrence <= $3 \
                   AND (published_occurrence IS NULL OR published_occurrence <> next_occurrence) \
                   AND (lease_until IS NULL OR lease_until <= $3) \
                 ORDER BY next_occurrence LIMIT $4 {}) \
             RETURNING id, user_id, rrule, timezone, dtstart, next_occurrence, catch_up",
            skip_locked(self)
        );
        let mut rows: Vec<ClaimedOccurrence> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(owner).bind(now + lease).bind(now).bind(limit)
            .fetch_all(pool).await?);
        rows.sort_by_key(|r| (r.next_occurrence, r.id));
        Ok(rows)
    }

    /// Moves a claimed task's `next_occurrence` forward past missed occurrences (catch-up
    /// policy `latest`). Returns whether it moved.
    pub async fn fast_forward(
        &self,
        owner: &str,
        id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE recurring_tasks SET next_occurrence = $4, updated_at = $5 \
             WHERE id = $1 AND lease_owner = $2 AND next_occurrence = $3";
        Ok(on_pool!(self, pool => sqlx::query(SQL)
            .bind(id).bind(owner).bind(from).bind(to).bind(now)
            .execute(pool).await?.rows_affected() == 1))
    }

    /// Records that `occurrence` of a claimed task was published and releases the claim.
    pub async fn mark_occurrence_published(
        &self,
        owner: &str,
        id: i64,
        occurrence: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE recurring_tasks SET published_occurrence = $3, published_at = $4, \
             lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2";
        Ok(on_pool!(self, pool => sqlx::query(SQL)
            .bind(id).bind(owner).bind(occurrence).bind(now)
            .execute(pool).await?.rows_affected() == 1))
    }

    /// Deactivates a claimed recurring task whose stored rule can no longer be evaluated
    /// (so it stops being claimed) and releases the claim.
    pub async fn deactivate_recurring(
        &self,
        owner: &str,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE recurring_tasks SET active = FALSE, lease_owner = NULL, \
             lease_until = NULL, updated_at = $3 WHERE id = $1 AND lease_owner = $2";
        on_pool!(self, pool => { sqlx::query(SQL).bind(id).bind(owner).bind(now).execute(pool).await?; });
        Ok(())
    }
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
