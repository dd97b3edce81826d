//! The [`Store`]'s retention and erasure methods (`crate::history`). The retention's
//! statements are each backend's (`postgres/history.rs`, `sqlite/history.rs`: row locks on
//! PostgreSQL); the erasure's read the same on both. Both are run here, once.

use crate::error::StoreError;
use crate::history::{Erased, Prune, PruneSql, Pruned, ERASE, IN_FLIGHT};
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Utc};
use todo_events_domain::UserId;

impl Store {
    /// Deletes one batch of each table's history older than its cutoff ([`Prune`]), each
    /// batch one statement (its locks last that statement); a table whose whole batch went
    /// may have more ([`Pruned::full`]).
    pub async fn prune(&self, p: &Prune) -> Result<Pruned, StoreError> {
        let sql: &PruneSql = match self {
            Self::Postgres(_) => &postgres::history::PRUNE,
            Self::Sqlite(_) => &sqlite::history::PRUNE,
        };
        let mut pruned = Pruned::default();
        if let Some(before) = p.deliveries_before {
            pruned.deliveries = self.delete(sql.finished, before, p.batch).await?;
            let left = (p.batch - pruned.deliveries as i64).max(0);
            if left > 0 {
                pruned.deliveries += self.delete(sql.abandoned, before, left).await?;
            }
        }
        if let Some(day) = p.agenda_before() {
            pruned.agenda_deliveries = on_pool!(self, |pool| sqlx::query(sql.agendas)
                .bind(day)
                .bind(p.batch)
                .execute(pool)
                .await?
                .rows_affected());
        }
        if let Some(before) = p.statuses_before {
            pruned.statuses = self.delete(sql.statuses, before, p.batch).await?;
        }
        Ok(pruned)
    }

    /// Runs one prune statement: rows before `before`, at most `limit`.
    async fn delete(&self, sql: &'static str, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query(sql)
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// Erases `user` (`crate::history`) at `now`: [`ERASE`]'s statements in order in one
    /// transaction, then what of theirs is still being sent.
    pub async fn erase_user(&self, user: UserId, now: DateTime<Utc>) -> Result<Erased, StoreError> {
        let mut counts = [0; ERASE.len()];
        let in_flight: Option<DateTime<Utc>> = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (count, (sql, at)) in counts.iter_mut().zip(ERASE) {
                let query = sqlx::query(sql).bind(user.get());
                let query = if at { query.bind(now) } else { query };
                *count = query.execute(&mut *tx).await?.rows_affected();
            }
            let in_flight = sqlx::query_scalar(IN_FLIGHT)
                .bind(user.get())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            in_flight
        });
        Ok(Erased::of(counts, in_flight))
    }
}
