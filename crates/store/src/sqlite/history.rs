//! The retention's and the erasure's statements on SQLite (`crate::history` says what they
//! are for; PostgreSQL's, with row locks, are in `postgres/history.rs`). SQLite has one
//! writer: each batch is a short write of its own, between which notify's writes go.

use crate::error::StoreError;
use crate::history::{Erased, Prune, Pruned, ERASE, IN_FLIGHT};
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

const PRUNE_FINISHED: &str = "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
     WHERE status <> 'sending' AND completed_at < $1 ORDER BY completed_at LIMIT $2)";

/// See PostgreSQL's: a delivery left `sending` goes only once its reminder no longer waits
/// for it.
const PRUNE_ABANDONED: &str = "DELETE FROM deliveries WHERE id IN (SELECT d.id FROM deliveries d \
     WHERE d.status = 'sending' AND d.lease_until < $1 \
     AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.id = d.reminder_id \
       AND r.remind_at = d.remind_at AND r.state IN ('pending', 'publishing', 'published')) \
     ORDER BY d.lease_until LIMIT $2)";

const PRUNE_AGENDAS: &str = "DELETE FROM agenda_deliveries WHERE id IN (SELECT id FROM agenda_deliveries \
     WHERE agenda_date < $1 ORDER BY agenda_date LIMIT $2)";

pub(crate) async fn prune(pool: &SqlitePool, p: &Prune) -> Result<Pruned, StoreError> {
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
        pruned.statuses = delete(pool, crate::status::EXPIRE, before, p.batch).await?;
    }
    Ok(pruned)
}

async fn delete(pool: &SqlitePool, sql: &str, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(sql)
        .bind(before)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Erases user `user` in one transaction, then reads what of theirs is still being sent.
pub(crate) async fn erase(pool: &SqlitePool, user: i64, now: DateTime<Utc>) -> Result<Erased, StoreError> {
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
