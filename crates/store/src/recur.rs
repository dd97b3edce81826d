//! recur's side of the database: the instance transaction.
//!
//! One transaction inserts the task instance (unique on recurring task + occurrence) with
//! its reminders and moves `next_occurrence` only if it still equals the event's occurrence.
//! Redelivered, reordered and concurrent events therefore create no second instance and
//! never move the schedule backwards.

use crate::{on_pool, RecurringTaskRow, Store, StoreError};
use chrono::{DateTime, Utc};

/// What the instance transaction should do.
#[derive(Debug, Clone)]
pub struct Instantiate<'a> {
    pub recurring: &'a RecurringTaskRow,
    pub occurrence: DateTime<Utc>,
    /// Instants of the instance's reminders.
    pub reminders: Vec<DateTime<Utc>>,
    /// The occurrence after this one; `None` when the rule has ended (the recurring task
    /// is then deactivated).
    pub next: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// What the transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instantiated {
    /// The new task's id, or `None` when the instance already existed.
    pub created_task_id: Option<i64>,
    /// The existing instance's id when it already existed.
    pub existing_task_id: Option<i64>,
    /// Whether `next_occurrence` moved (it only moves from the event's occurrence).
    pub advanced: bool,
    pub reminders_created: usize,
}

impl Store {
    pub async fn recurring_task(&self, id: i64) -> Result<Option<RecurringTaskRow>, StoreError> {
        const SQL: &str = "SELECT id, user_id, title, description, priority, rrule, timezone, dtstart, \
             next_occurrence, active, catch_up, reminder_offsets FROM recurring_tasks WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?))
    }

    /// The instance of `recurring_task_id` for `occurrence`, if it exists.
    pub async fn instance_of(
        &self,
        recurring_task_id: i64,
        occurrence: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM tasks WHERE recurring_task_id = $1 AND occurrence_at = $2";
        Ok(on_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(recurring_task_id).bind(occurrence).fetch_optional(pool).await?))
    }

    /// Creates the instance for one occurrence (once) and advances the recurring task.
    pub async fn instantiate(&self, job: &Instantiate<'_>) -> Result<Instantiated, StoreError> {
        const INSERT_TASK: &str = "INSERT INTO tasks (user_id, title, description, status, priority, \
             due_at, recurring_task_id, occurrence_at, created_at, updated_at) \
             VALUES ($1, $2, $3, 'todo', $4, $5, $6, $5, $7, $7) \
             ON CONFLICT (recurring_task_id, occurrence_at) DO NOTHING RETURNING id";
        const INSERT_REMINDER: &str = "INSERT INTO reminders (task_id, user_id, remind_at, channels, \
             state, created_at, updated_at) VALUES ($1, $2, $3, 'email', 'pending', $4, $4)";
        const ADVANCE: &str = "UPDATE recurring_tasks SET next_occurrence = $3, active = $4, \
             updated_at = $5 WHERE id = $1 AND next_occurrence = $2";
        let rt = job.recurring;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let created: Option<i64> = sqlx::query_scalar(INSERT_TASK)
                .bind(rt.user_id).bind(&rt.title).bind(&rt.description).bind(&rt.priority)
                .bind(job.occurrence).bind(rt.id).bind(job.now)
                .fetch_optional(&mut *tx).await?;
            let mut reminders_created = 0;
            let mut existing_task_id = None;
            if let Some(task_id) = created {
                for remind_at in &job.reminders {
                    sqlx::query(INSERT_REMINDER)
                        .bind(task_id).bind(rt.user_id).bind(*remind_at).bind(job.now)
                        .execute(&mut *tx).await?;
                    reminders_created += 1;
                }
            } else {
                existing_task_id = sqlx::query_scalar(
                    "SELECT id FROM tasks WHERE recurring_task_id = $1 AND occurrence_at = $2")
                    .bind(rt.id).bind(job.occurrence)
                    .fetch_optional(&mut *tx).await?;
            }
            // When the rule has ended the task keeps its last occurrence and goes inactive.
            let next = job.next.unwrap_or(job.occurrence);
            let advanced = sqlx::query(ADVANCE)
                .bind(rt.id).bind(job.occurrence).bind(next).bind(job.next.is_some()).bind(job.now)
                .execute(&mut *tx).await?
                .rows_affected() == 1;
            tx.commit().await?;
            Ok(Instantiated { created_task_id: created, existing_task_id, advanced, reminders_created })
        })
    }
}
