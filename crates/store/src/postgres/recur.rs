//! recur's statements on PostgreSQL: the batch's state in one statement, its instances in
//! another.

use crate::error::StoreError;
use crate::recur::{read, Instantiate, Instantiated, Occurrence, RecurringState};
use crate::rows::{RecurringTaskRaw, RecurringTaskRow};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use todo_events_domain::{RecurringTaskId, TaskId};

pub(crate) async fn recurring_tasks(
    pool: &PgPool,
    ids: &[RecurringTaskId],
) -> Result<Vec<RecurringTaskRow>, StoreError> {
    const SQL: &str = "SELECT id, user_id, title, description, priority, rrule, timezone, \
         dtstart, next_occurrence, active, catch_up, reminder_offsets, series_cursor FROM recurring_tasks \
         WHERE id = ANY($1)";
    let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    let rows: Vec<RecurringTaskRaw> = sqlx::query_as(SQL).bind(ids).fetch_all(pool).await?;
    Ok(crate::rows::typed(rows)?)
}

pub(crate) async fn instances_of(
    pool: &PgPool,
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

/// A recurring task read with one of its occurrences and that occurrence's instance.
#[derive(sqlx_macros::FromRow)]
struct WithInstance {
    #[sqlx(flatten)]
    recurring: RecurringTaskRaw,
    occurrence: DateTime<Utc>,
    instance_id: Option<i64>,
}

/// The recurring tasks of a batch with each occurrence's instance, if any (one statement).
pub const RECURRING_STATE: &str = "SELECT r.id, r.user_id, r.title, r.description, \
     r.priority, r.rrule, r.timezone, r.dtstart, r.next_occurrence, r.active, r.catch_up, \
     r.reminder_offsets, r.series_cursor, k.occ AS occurrence, t.id AS instance_id \
     FROM UNNEST($1::bigint[], $2::timestamptz[]) AS k(rt, occ) \
     JOIN recurring_tasks r ON r.id = k.rt \
     LEFT JOIN tasks t ON t.recurring_task_id = k.rt AND t.occurrence_at = k.occ";

/// The recurring tasks of `occurrences` with each one's instance, if any: one statement.
pub(crate) async fn recurring_state(
    conn: &mut PgConnection,
    occurrences: &[Occurrence],
) -> Result<RecurringState, StoreError> {
    let ids: Vec<i64> = occurrences.iter().map(|(id, _)| id.get()).collect();
    let ats: Vec<DateTime<Utc>> = occurrences.iter().map(|(_, at)| *at).collect();
    let rows: Vec<WithInstance> = sqlx::query_as(RECURRING_STATE)
        .bind(ids)
        .bind(ats)
        .fetch_all(conn)
        .await?;
    let mut state = RecurringState {
        tasks: HashMap::with_capacity(rows.len()),
        instances: HashMap::new(),
    };
    for row in rows {
        let id = read::recurring_task_id(row.recurring.id)?;
        if let Some(instance) = row.instance_id {
            state
                .instances
                .insert((id, row.occurrence), read::task_id(instance)?);
        }
        state.tasks.insert(id, RecurringTaskRow::try_from(row.recurring));
    }
    Ok(state)
}

/// The instances, their reminders and the advance of a batch (one statement).
pub const INSTANTIATE: &str = "WITH v AS ( \
       SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::timestamptz[], $7::timestamptz[], $8::bool[], $12::text[]) \
         AS v(rt, u, ti, d, p, occ, next, active, cursor)), \
     created AS ( \
       INSERT INTO tasks (user_id, title, description, status, priority, due_at, \
         recurring_task_id, occurrence_at, created_at, updated_at) \
       SELECT u, ti, d, 'todo', p, occ, rt, occ, $11, $11 FROM v \
       ON CONFLICT (recurring_task_id, occurrence_at) DO NOTHING \
       RETURNING id, recurring_task_id, user_id), \
     reminded AS ( \
       INSERT INTO reminders (task_id, user_id, remind_at, channels, state, created_at, updated_at) \
       SELECT c.id, c.user_id, w.at, 'email', 'pending', $11, $11 \
       FROM UNNEST($9::bigint[], $10::timestamptz[]) AS w(rt, at) \
       JOIN created c ON c.recurring_task_id = w.rt), \
     advanced AS ( \
       UPDATE recurring_tasks r SET next_occurrence = v.next, active = v.active, \
         series_cursor = v.cursor, updated_at = $11 \
       FROM v WHERE r.id = v.rt AND r.next_occurrence = v.occ RETURNING r.id) \
     SELECT v.rt, c.id, e.id, a.id IS NOT NULL \
     FROM v LEFT JOIN created c ON c.recurring_task_id = v.rt \
     LEFT JOIN tasks e ON e.recurring_task_id = v.rt AND e.occurrence_at = v.occ \
     LEFT JOIN advanced a ON a.id = v.rt";

/// One statement, whatever the batch size: the instances, their reminders and the advance
/// are data-modifying CTEs over the bound arrays, so the batch costs one round trip and is
/// atomic without a transaction of its own. All parts see the snapshot from before the
/// statement, so `existing` finds only instances that were there already.
pub(crate) async fn instantiate(
    conn: &mut PgConnection,
    jobs: &[Instantiate<'_>],
) -> Result<Vec<Instantiated>, StoreError> {
    let (mut reminder_rt, mut reminder_at) = (Vec::new(), Vec::new());
    for job in jobs {
        for at in &job.reminders {
            reminder_rt.push(job.recurring.id.get());
            reminder_at.push(*at);
        }
    }
    let column = |f: fn(&Instantiate<'_>) -> i64| jobs.iter().map(f).collect::<Vec<_>>();
    let text = |f: for<'j> fn(&'j Instantiate<'_>) -> &'j str| jobs.iter().map(f).collect::<Vec<_>>();
    let rows: Vec<(i64, Option<i64>, Option<i64>, bool)> = sqlx::query_as(INSTANTIATE)
        .bind(column(|j| j.recurring.id.get()))
        .bind(column(|j| j.recurring.user_id.get()))
        .bind(text(|j| &j.recurring.title))
        .bind(text(|j| &j.recurring.description))
        .bind(text(|j| j.recurring.priority.as_str()))
        .bind(jobs.iter().map(|j| j.occurrence).collect::<Vec<_>>())
        // When the rule has ended the task keeps its last occurrence and goes inactive.
        .bind(
            jobs.iter()
                .map(|j| j.next.unwrap_or(j.occurrence))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.next.is_some()).collect::<Vec<_>>())
        .bind(reminder_rt)
        .bind(reminder_at)
        .bind(jobs[0].now)
        .bind(jobs.iter().map(|j| j.cursor.as_deref()).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    results(jobs, rows)
}

/// One result per job, in order, from the statement's `(recurring task, created, existing,
/// advanced)` rows.
fn results(
    jobs: &[Instantiate<'_>],
    rows: Vec<(i64, Option<i64>, Option<i64>, bool)>,
) -> Result<Vec<Instantiated>, StoreError> {
    let by_task: HashMap<i64, (Option<i64>, Option<i64>, bool)> = rows
        .into_iter()
        .map(|(rt, created, existing, advanced)| (rt, (created, existing, advanced)))
        .collect();
    jobs.iter()
        .map(|j| {
            let id = j.recurring.id.get();
            let (created, existing, advanced) = by_task
                .get(&id)
                .copied()
                .ok_or_else(|| StoreError::Other(format!("no result for recurring task {id}")))?;
            Ok(read::instantiated(
                created,
                existing,
                advanced,
                j.reminders.len(),
            )?)
        })
        .collect()
}
