//! The scheduler's statements on PostgreSQL. Candidate rows are locked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent schedulers take disjoint batches without waiting
//! on each other.

use crate::error::StoreError;
use crate::recur::Occurrence;
use crate::rows::{ClaimedOccurrence, ClaimedOccurrenceRaw, ClaimedReminder, ClaimedReminderRaw, Malformed};
use crate::scheduler::{ClaimRequest, PUBLISH_LIMIT};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use todo_events_domain::{RecurringTaskId, ReminderId};

/// Two candidate sets, each on its own partial index (`reminders_due`,
/// `reminders_unconfirmed_open`): one OR over both made PostgreSQL scan every published row
/// on every claim (docs/PERFORMANCE.md, "What the figures say, and what was done about
/// them", item 8). A pending reminder (new, or moved by the app) starts its publish
/// count again. A third set, on `deliveries_leases` (migration 0016): published reminders
/// with a delivery whose retry time (its released claim's lease) has come and that were not
/// published since (a user's endpoint retried on its own schedule, docs/CHANNELS.md);
/// not counted as republished. Never an e-mail: its claim is released for the event's
/// own redelivery (the relay is everyone's), and republishing it each pass multiplied a
/// poison reminder's dead letters.
///
/// `publish_count < 4` is [`PUBLISH_LIMIT`] written out: the partial index
/// `reminders_unconfirmed_open` (migration 0014) has the same condition, and a bound
/// parameter cannot be matched to an index's condition (a test keeps the two equal).
pub(crate) const CLAIM_REMINDERS: &str = "WITH due AS (SELECT id FROM reminders \
             WHERE (state = 'pending' AND COALESCE(deferred_until, remind_at) <= $3) \
                OR (state = 'publishing' AND lease_until <= $3) \
             ORDER BY COALESCE(deferred_until, remind_at) LIMIT $4 FOR UPDATE SKIP LOCKED), \
         unconfirmed AS (SELECT id FROM reminders \
             WHERE state = 'published' AND published_at <= $5 AND publish_count < 4 \
             ORDER BY published_at LIMIT $4 FOR UPDATE SKIP LOCKED), \
         retry AS (SELECT r.id FROM deliveries d \
             JOIN reminders r ON r.id = d.reminder_id AND r.remind_at = d.remind_at \
             WHERE d.status = 'sending' AND d.channel <> 'email' AND d.lease_until <= $3 \
               AND r.state = 'published' AND r.published_at < d.lease_until \
             ORDER BY d.lease_until LIMIT $4 FOR UPDATE OF r SKIP LOCKED) \
         UPDATE reminders SET state = 'publishing', lease_owner = $1, lease_until = $2, updated_at = $3, \
             publish_count = CASE WHEN state = 'pending' THEN 0 ELSE publish_count END \
         WHERE id IN (SELECT id FROM due UNION ALL SELECT id FROM unconfirmed \
             UNION ALL SELECT id FROM retry) \
         RETURNING id, task_id, user_id, remind_at, \
             publish_count > 0 AND NOT EXISTS (SELECT 1 FROM deliveries d \
               WHERE d.reminder_id = reminders.id AND d.remind_at = reminders.remind_at \
               AND d.status = 'sending' AND d.channel <> 'email' AND d.lease_until <= $3 \
               AND reminders.published_at < d.lease_until) AS again";

pub(crate) async fn claim_reminders(
    pool: &PgPool,
    claim: &ClaimRequest<'_>,
) -> Result<Vec<ClaimedReminder>, StoreError> {
    let rows: Vec<ClaimedReminderRaw> = sqlx::query_as(CLAIM_REMINDERS)
        .bind(claim.owner)
        .bind(claim.lease_until())
        .bind(claim.now)
        .bind(claim.limit)
        .bind(claim.republish_before())
        .fetch_all(pool)
        .await?;
    Ok(crate::rows::typed(rows)?)
}

pub(crate) async fn mark_reminders_published(
    pool: &PgPool,
    owner: &str,
    ids: &[ReminderId],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    const SQL: &str = "UPDATE reminders SET state = 'published', published_at = $2, \
         lease_owner = NULL, lease_until = NULL, updated_at = $2, \
         publish_count = publish_count + 1 \
         WHERE state = 'publishing' AND lease_owner = $1 AND id = ANY($3)";
    let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    Ok(sqlx::query(SQL)
        .bind(owner)
        .bind(now)
        .bind(ids)
        .execute(pool)
        .await?
        .rows_affected())
}

pub(crate) async fn claim_occurrences(
    pool: &PgPool,
    claim: &ClaimRequest<'_>,
) -> Result<Vec<Result<ClaimedOccurrence, Malformed>>, StoreError> {
    const SQL: &str = "UPDATE recurring_tasks SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM recurring_tasks \
             WHERE active AND next_occurrence <= $3 \
               AND (published_occurrence IS NULL OR published_occurrence <> next_occurrence \
                    OR (published_at <= $5 AND publish_count < $6)) \
               AND (lease_until IS NULL OR lease_until <= $3) \
             ORDER BY next_occurrence LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING id, user_id, rrule, timezone, dtstart, series_cursor, next_occurrence, catch_up, \
             COALESCE(published_occurrence = next_occurrence, FALSE) AS again";
    let rows: Vec<ClaimedOccurrenceRaw> = sqlx::query_as(SQL)
        .bind(claim.owner)
        .bind(claim.lease_until())
        .bind(claim.now)
        .bind(claim.limit)
        .bind(claim.republish_before())
        .bind(PUBLISH_LIMIT)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(ClaimedOccurrence::try_from).collect())
}

pub(crate) async fn fast_forward(
    pool: &PgPool,
    owner: &str,
    id: RecurringTaskId,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    const SQL: &str = "UPDATE recurring_tasks SET next_occurrence = $4, updated_at = $5 \
         WHERE id = $1 AND lease_owner = $2 AND next_occurrence = $3";
    let moved = sqlx::query(SQL)
        .bind(id.get())
        .bind(owner)
        .bind(from)
        .bind(to)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(moved.rows_affected() == 1)
}

/// Each task's publish count goes up when it published the same occurrence again, and
/// starts at 1 with a new one.
pub(crate) async fn mark_occurrences_published(
    pool: &PgPool,
    owner: &str,
    published: &[Occurrence],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    const SQL: &str = "UPDATE recurring_tasks r SET published_occurrence = m.occurrence, \
         published_at = $2, lease_owner = NULL, lease_until = NULL, \
         publish_count = CASE WHEN r.published_occurrence = m.occurrence \
             THEN r.publish_count + 1 ELSE 1 END \
         FROM UNNEST($3::bigint[], $4::timestamptz[]) AS m(id, occurrence) \
         WHERE r.id = m.id AND r.lease_owner = $1";
    let ids: Vec<i64> = published.iter().map(|(id, _)| id.get()).collect();
    let occurrences: Vec<DateTime<Utc>> = published.iter().map(|(_, at)| *at).collect();
    Ok(sqlx::query(SQL)
        .bind(owner)
        .bind(now)
        .bind(ids)
        .bind(occurrences)
        .execute(pool)
        .await?
        .rows_affected())
}

pub(crate) async fn deactivate_recurring(
    pool: &PgPool,
    owner: &str,
    id: RecurringTaskId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE recurring_tasks SET active = FALSE, lease_owner = NULL, \
         lease_until = NULL, updated_at = $3 WHERE id = $1 AND lease_owner = $2";
    sqlx::query(SQL)
        .bind(id.get())
        .bind(owner)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::scheduler::PUBLISH_LIMIT;

    #[test]
    fn the_claim_names_the_unconfirmed_index_s_publish_limit() {
        assert!(super::CLAIM_REMINDERS.contains(&format!("publish_count < {PUBLISH_LIMIT} ")));
    }
}
