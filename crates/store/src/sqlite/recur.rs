//! recur's statements on SQLite (in-process, no round trips): the same statements row by
//! row, the writes of a batch in one transaction.

use crate::error::StoreError;
use crate::recur::{read, Instantiate, Instantiated, Occurrence, RecurringState};
use crate::rows::{RecurringTaskRaw, RecurringTaskRow};
use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};
use todo_events_domain::{RecurringTaskId, TaskId};

const INSTANCE: &str = "SELECT id FROM tasks WHERE recurring_task_id = $1 AND occurrence_at = $2";

async fn recurring_raw(
    pool: &SqlitePool,
    ids: impl Iterator<Item = i64>,
) -> Result<Vec<RecurringTaskRaw>, StoreError> {
    const SQL: &str = "SELECT id, user_id, title, description, priority, rrule, timezone, \
         dtstart, next_occurrence, active, catch_up, reminder_offsets, series_cursor FROM recurring_tasks \
         WHERE id IN (SELECT value FROM json_each($1))";
    Ok(sqlx::query_as(SQL)
        .bind(super::json_ids(ids))
        .fetch_all(pool)
        .await?)
}

pub(crate) async fn recurring_tasks(
    pool: &SqlitePool,
    ids: &[RecurringTaskId],
) -> Result<Vec<RecurringTaskRow>, StoreError> {
    let rows = recurring_raw(pool, ids.iter().map(|id| id.get())).await?;
    Ok(crate::rows::typed(rows)?)
}

pub(crate) async fn instances_of(
    pool: &SqlitePool,
    id: RecurringTaskId,
) -> Result<Vec<(TaskId, DateTime<Utc>)>, StoreError> {
    const SQL: &str =
        "SELECT id, occurrence_at FROM tasks WHERE recurring_task_id = $1 ORDER BY occurrence_at";
    let rows: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(SQL).bind(id.get()).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(task, at)| Ok((read::task_id(task)?, at)))
        .collect::<Result<_, crate::rows::Malformed>>()?)
}

/// The recurring tasks of `occurrences`, then one indexed lookup per occurrence for its
/// instance (in-process: no round trip to save).
pub(crate) async fn recurring_state(
    pool: &SqlitePool,
    occurrences: &[Occurrence],
) -> Result<RecurringState, StoreError> {
    let mut state = RecurringState::default();
    for row in recurring_raw(pool, occurrences.iter().map(|(id, _)| id.get())).await? {
        let id = read::recurring_task_id(row.id)?;
        state.tasks.insert(id, RecurringTaskRow::try_from(row));
    }
    for &(id, at) in occurrences {
        let instance: Option<i64> = sqlx::query_scalar(INSTANCE)
            .bind(id.get())
            .bind(at)
            .fetch_optional(pool)
            .await?;
        if let Some(instance) = instance {
            state.instances.insert((id, at), read::task_id(instance)?);
        }
    }
    Ok(state)
}

/// The instances, their reminders and the advances of a batch, in one transaction.
pub(crate) async fn instantiate(
    pool: &SqlitePool,
    jobs: &[Instantiate<'_>],
) -> Result<Vec<Instantiated>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut done = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (created, existing) = insert_instance(&mut tx, job).await?;
        let advanced = advance(&mut tx, job).await?;
        done.push(read::instantiated(
            created,
            existing,
            advanced,
            job.reminders.len(),
        )?);
    }
    tx.commit().await?;
    Ok(done)
}

/// One job's instance, once, with its reminders: `(created, existing)`, the new task's id,
/// else the id of the instance that existed.
async fn insert_instance(
    tx: &mut SqliteConnection,
    job: &Instantiate<'_>,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    const INSERT_TASK: &str = "INSERT INTO tasks (user_id, title, description, status, priority, \
         due_at, recurring_task_id, occurrence_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'todo', $4, $5, $6, $5, $7, $7) \
         ON CONFLICT (recurring_task_id, occurrence_at) DO NOTHING RETURNING id";
    const INSERT_REMINDER: &str = "INSERT INTO reminders (task_id, user_id, remind_at, channels, \
         state, created_at, updated_at) VALUES ($1, $2, $3, 'email', 'pending', $4, $4)";
    let rt = job.recurring;
    let created: Option<i64> = sqlx::query_scalar(INSERT_TASK)
        .bind(rt.user_id.get())
        .bind(&rt.title)
        .bind(&rt.description)
        .bind(rt.priority.as_str())
        .bind(job.occurrence)
        .bind(rt.id.get())
        .bind(job.now)
        .fetch_optional(&mut *tx)
        .await?;
    let mut existing = None;
    if let Some(task_id) = created {
        for remind_at in &job.reminders {
            sqlx::query(INSERT_REMINDER)
                .bind(task_id)
                .bind(rt.user_id.get())
                .bind(*remind_at)
                .bind(job.now)
                .execute(&mut *tx)
                .await?;
        }
    } else {
        existing = sqlx::query_scalar(INSTANCE)
            .bind(rt.id.get())
            .bind(job.occurrence)
            .fetch_optional(&mut *tx)
            .await?;
    }
    Ok((created, existing))
}

/// Moves the job's recurring task on, if it still stands at the job's occurrence; whether
/// it moved.
async fn advance(tx: &mut SqliteConnection, job: &Instantiate<'_>) -> Result<bool, StoreError> {
    const ADVANCE: &str = "UPDATE recurring_tasks SET next_occurrence = $3, active = $4, \
         series_cursor = $6, updated_at = $5 WHERE id = $1 AND next_occurrence = $2";
    // When the rule has ended the task keeps its last occurrence and goes inactive.
    Ok(sqlx::query(ADVANCE)
        .bind(job.recurring.id.get())
        .bind(job.occurrence)
        .bind(job.next.unwrap_or(job.occurrence))
        .bind(job.next.is_some())
        .bind(job.now)
        .bind(job.cursor.as_deref())
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1)
}
