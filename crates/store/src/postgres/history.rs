//! The retention's and the erasure's statements on PostgreSQL (`crate::history` says what
//! they are for). Each prune statement deletes one batch, oldest first, and skips rows another
//! transaction holds (`SKIP LOCKED`): two schedulers pruning at once split the work, and
//! neither waits for a claim notify holds.

use crate::error::StoreError;
use crate::history::{Erased, Prune, Pruned, ERASE, IN_FLIGHT};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Deliveries finished before `$1`, up to `$2`.
const PRUNE_FINISHED: &str = "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
     WHERE status <> 'sending' AND completed_at < $1 \
     ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Deliveries left `sending` whose lease ended before `$1` and whose reminder is no longer
/// at their time waiting for them (moved, cancelled, or settled): nothing takes them over any
/// more. One whose reminder still waits stays, however old: it is the scheduler's retry
/// pass's and the claim that makes its event once.
const PRUNE_ABANDONED: &str = "DELETE FROM deliveries WHERE id IN (SELECT d.id FROM deliveries d \
     WHERE d.status = 'sending' AND d.lease_until < $1 \
     AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.id = d.reminder_id \
       AND r.remind_at = d.remind_at AND r.state IN ('pending', 'publishing', 'published')) \
     ORDER BY d.lease_until LIMIT $2 FOR UPDATE OF d SKIP LOCKED)";

/// Agenda deliveries of the days before `$1`, up to `$2`.
const PRUNE_AGENDAS: &str = "DELETE FROM agenda_deliveries WHERE id IN (SELECT id FROM agenda_deliveries \
     WHERE agenda_date < $1 ORDER BY agenda_date LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Status events recorded before `$1`, up to `$2` (the scheduler's claims of unpublished ones
/// are skipped, not waited for).
const PRUNE_STATUSES: &str =
    "DELETE FROM notification_events WHERE id IN (SELECT id FROM notification_events \
     WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// One batch of each table, each its own statement (autocommit: its locks last one statement).
pub(crate) async fn prune(pool: &PgPool, p: &Prune) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    if let Some(before) = p.deliveries_before {
        pruned.deliveries = delete(pool, PRUNE_FINISHED, before, p.batch).await?;
        let left = (p.batch - pruned.deliveries as i64).max(0);
        if left > 0 {
            pruned.deliveries += delete(pool, PRUNE_ABANDONED, before, left).await?;
        }
    }
    if let Some(day) = p.agenda_before() {
        pruned.agenda_deliveries = sqlx::query(PRUNE_AGENDAS)
            .bind(day)
            .bind(p.batch)
            .execute(pool)
            .await?
            .rows_affected();
    }
    if let Some(before) = p.statuses_before {
        pruned.statuses = delete(pool, PRUNE_STATUSES, before, p.batch).await?;
    }
    Ok(pruned)
}

async fn delete(pool: &PgPool, sql: &str, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(sql)
        .bind(before)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Erases user `user` in one transaction ([`ERASE`]'s statements in order), then reads what
/// of theirs is still being sent.
pub(crate) async fn erase(pool: &PgPool, user: i64, now: DateTime<Utc>) -> Result<Erased, StoreError> {
    let mut tx = pool.begin().await?;
    let mut counts = [0; ERASE.len()];
    for (count, (sql, at)) in counts.iter_mut().zip(ERASE) {
        let query = sqlx::query(sql).bind(user);
        let query = if at { query.bind(now) } else { query };
        *count = query.execute(&mut *tx).await?.rows_affected();
    }
    let in_flight: Option<DateTime<Utc>> = sqlx::query_scalar(IN_FLIGHT)
        .bind(user)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Erased::of(counts, in_flight))
}
