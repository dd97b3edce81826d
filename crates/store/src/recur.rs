//! recur's side of the database: the instance transaction.
//!
//! One transaction inserts the task instance (unique on recurring task + occurrence) with
//! its reminders and moves `next_occurrence` only if it still equals the event's occurrence.
//! Redelivered, reordered and concurrent events therefore create no second instance and
//! never move the schedule backwards. The consumer mode hands over whole batches: on
//! PostgreSQL a batch (or a single event) is one statement over bound arrays (`UNNEST`), so a
//! hundred events cost about what one does, and one event costs one round trip.

use crate::{RecurringTaskRow, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

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

const RECURRING_BY_IDS_PG: &str = "SELECT id, user_id, title, description, priority, rrule, \
     timezone, dtstart, next_occurrence, active, catch_up, reminder_offsets FROM recurring_tasks \
     WHERE id = ANY($1)";
const RECURRING_BY_IDS_SQLITE: &str = "SELECT id, user_id, title, description, priority, rrule, \
     timezone, dtstart, next_occurrence, active, catch_up, reminder_offsets FROM recurring_tasks \
     WHERE id IN (SELECT value FROM json_each($1))";
const INSTANCE: &str = "SELECT id FROM tasks WHERE recurring_task_id = $1 AND occurrence_at = $2";
/// The recurring tasks of `(task, occurrence)` pairs with each pair's instance, if any.
const RECURRING_WITH_INSTANCES_PG: &str = "SELECT r.id, r.user_id, r.title, r.description, \
     r.priority, r.rrule, r.timezone, r.dtstart, r.next_occurrence, r.active, r.catch_up, \
     r.reminder_offsets, k.occ AS occurrence, t.id AS instance_id \
     FROM UNNEST($1::bigint[], $2::timestamptz[]) AS k(rt, occ) \
     JOIN recurring_tasks r ON r.id = k.rt \
     LEFT JOIN tasks t ON t.recurring_task_id = k.rt AND t.occurrence_at = k.occ";

#[derive(sqlx::FromRow)]
struct WithInstance {
    #[sqlx(flatten)]
    recurring: RecurringTaskRow,
    occurrence: DateTime<Utc>,
    instance_id: Option<i64>,
}

/// What recur reads before deciding: the recurring tasks, and the instances that exist for
/// the occurrences asked about.
pub struct RecurringState {
    pub tasks: HashMap<i64, RecurringTaskRow>,
    pub instances: HashMap<(i64, DateTime<Utc>), i64>,
}

impl Store {
    pub async fn recurring_task(&self, id: i64) -> Result<Option<RecurringTaskRow>, StoreError> {
        Ok(self.recurring_tasks(&[id]).await?.pop())
    }

    /// The recurring tasks among `ids`, in one statement (those that do not exist are
    /// absent).
    pub async fn recurring_tasks(&self, ids: &[i64]) -> Result<Vec<RecurringTaskRow>, StoreError> {
        Ok(match self {
            Store::Postgres(pool) => {
                sqlx::query_as(RECURRING_BY_IDS_PG)
                    .bind(ids)
                    .fetch_all(pool)
                    .await?
            }
            Store::Sqlite(pool) => {
                sqlx::query_as(RECURRING_BY_IDS_SQLITE)
                    .bind(serde_json::to_string(ids).expect("integers serialize"))
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// The instance of `recurring_task_id` for `occurrence`, if it exists.
    pub async fn instance_of(
        &self,
        recurring_task_id: i64,
        occurrence: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .instances_at(&[(recurring_task_id, occurrence)])
            .await?
            .remove(&(recurring_task_id, occurrence)))
    }

    /// The connection a run of events reads and writes over (see [`RunConnection`]).
    pub async fn run_connection(&self) -> Result<RunConnection, StoreError> {
        Ok(match self {
            Store::Postgres(pool) => RunConnection::Postgres(pool.acquire().await?),
            Store::Sqlite(pool) => RunConnection::Sqlite(pool.clone()),
        })
    }

    pub async fn instances_at(
        &self,
        pairs: &[(i64, DateTime<Utc>)],
    ) -> Result<HashMap<(i64, DateTime<Utc>), i64>, StoreError> {
        let mut found = HashMap::new();
        match self {
            Store::Postgres(pool) => {
                let (ids, occurrences): (Vec<i64>, Vec<DateTime<Utc>>) = pairs.iter().copied().unzip();
                let rows: Vec<(i64, DateTime<Utc>, i64)> = sqlx::query_as(
                    "SELECT t.recurring_task_id, t.occurrence_at, t.id FROM tasks t \
                     JOIN UNNEST($1::bigint[], $2::timestamptz[]) AS k(rt, occ) \
                     ON t.recurring_task_id = k.rt AND t.occurrence_at = k.occ",
                )
                .bind(&ids)
                .bind(&occurrences)
                .fetch_all(pool)
                .await?;
                found.extend(rows.into_iter().map(|(rt, occ, id)| ((rt, occ), id)));
            }
            // In-process: one indexed lookup per pair costs no round trip.
            Store::Sqlite(pool) => {
                for &(rt, occ) in pairs {
                    let id: Option<i64> = sqlx::query_scalar(INSTANCE)
                        .bind(rt)
                        .bind(occ)
                        .fetch_optional(pool)
                        .await?;
                    if let Some(id) = id {
                        found.insert((rt, occ), id);
                    }
                }
            }
        }
        Ok(found)
    }

    /// Creates the instance for one occurrence (once) and advances the recurring task.
    pub async fn instantiate(&self, job: &Instantiate<'_>) -> Result<Instantiated, StoreError> {
        Ok(self
            .run_connection()
            .await?
            .instantiate_many(std::slice::from_ref(job))
            .await?
            .pop()
            .expect("one result per job"))
    }
}

/// One connection for a run of recur's events: the read before deciding and the write
/// after go over it. On PostgreSQL that is one checkout instead of one per statement, and
/// one release: sqlx tests every released connection with a round trip of its own, so a
/// checkout per statement cost an event two extra round trips (PostgreSQL woken for each).
/// SQLite, in-process and with one connection, keeps using its pool.
pub enum RunConnection {
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    Sqlite(sqlx::SqlitePool),
}

impl RunConnection {
    /// The recurring tasks of `pairs` (recurring task, occurrence) and the instances that
    /// exist for them: one statement on PostgreSQL, two lookups on SQLite (in-process, no
    /// round trip to save).
    pub async fn recurring_state(
        &mut self,
        pairs: &[(i64, DateTime<Utc>)],
    ) -> Result<RecurringState, StoreError> {
        match self {
            RunConnection::Postgres(conn) => {
                let (ids, occurrences): (Vec<i64>, Vec<DateTime<Utc>>) = pairs.iter().copied().unzip();
                let rows: Vec<WithInstance> = sqlx::query_as(RECURRING_WITH_INSTANCES_PG)
                    .bind(&ids)
                    .bind(&occurrences)
                    .fetch_all(&mut **conn)
                    .await?;
                let mut state = RecurringState {
                    tasks: HashMap::with_capacity(rows.len()),
                    instances: HashMap::new(),
                };
                for row in rows {
                    if let Some(instance) = row.instance_id {
                        state
                            .instances
                            .insert((row.recurring.id, row.occurrence), instance);
                    }
                    state.tasks.insert(row.recurring.id, row.recurring);
                }
                Ok(state)
            }
            RunConnection::Sqlite(pool) => {
                let store = Store::Sqlite(pool.clone());
                let ids: Vec<i64> = pairs.iter().map(|p| p.0).collect();
                Ok(RecurringState {
                    tasks: store
                        .recurring_tasks(&ids)
                        .await?
                        .into_iter()
                        .map(|r| (r.id, r))
                        .collect(),
                    instances: store.instances_at(pairs).await?,
                })
            }
        }
    }

    /// [`Store::instantiate`] for several occurrences of distinct recurring tasks, in one
    /// transaction (consumer mode: one commit for a whole batch of events). One result per
    /// job, in order.
    pub async fn instantiate_many(
        &mut self,
        jobs: &[Instantiate<'_>],
    ) -> Result<Vec<Instantiated>, StoreError> {
        debug_assert!(
            jobs.iter()
                .map(|j| j.recurring.id)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == jobs.len(),
            "one job per recurring task in a batch"
        );
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            RunConnection::Postgres(conn) => instantiate_pg(conn, jobs).await,
            RunConnection::Sqlite(pool) => instantiate_sqlite(pool, jobs).await,
        }
    }
}

/// PostgreSQL: one statement, whatever the batch size: the instances, their reminders and
/// the advance are data-modifying CTEs over the bound arrays, so the batch costs one round
/// trip and is atomic without a transaction of its own. All parts see the snapshot from
/// before the statement, so `existing` finds only instances that were there already.
async fn instantiate_pg(
    conn: &mut sqlx::PgConnection,
    jobs: &[Instantiate<'_>],
) -> Result<Vec<Instantiated>, StoreError> {
    const INSTANTIATE: &str = "WITH v AS ( \
           SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::timestamptz[], $7::timestamptz[], $8::bool[]) AS v(rt, u, ti, d, p, occ, next, active)), \
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
           UPDATE recurring_tasks r SET next_occurrence = v.next, active = v.active, updated_at = $11 \
           FROM v WHERE r.id = v.rt AND r.next_occurrence = v.occ RETURNING r.id) \
         SELECT v.rt, c.id, e.id, a.id IS NOT NULL \
         FROM v LEFT JOIN created c ON c.recurring_task_id = v.rt \
         LEFT JOIN tasks e ON e.recurring_task_id = v.rt AND e.occurrence_at = v.occ \
         LEFT JOIN advanced a ON a.id = v.rt";
    let (mut reminder_rt, mut reminder_at) = (Vec::new(), Vec::new());
    for job in jobs {
        for at in &job.reminders {
            reminder_rt.push(job.recurring.id);
            reminder_at.push(*at);
        }
    }
    let rows: Vec<(i64, Option<i64>, Option<i64>, bool)> = sqlx::query_as(INSTANTIATE)
        .bind(jobs.iter().map(|j| j.recurring.id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.recurring.user_id).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.recurring.title.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|j| j.recurring.description.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|j| j.recurring.priority.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.occurrence).collect::<Vec<_>>())
        // When the rule has ended the task keeps its last occurrence and goes inactive.
        .bind(
            jobs.iter()
                .map(|j| j.next.unwrap_or(j.occurrence))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.next.is_some()).collect::<Vec<_>>())
        .bind(&reminder_rt)
        .bind(&reminder_at)
        .bind(jobs[0].now)
        .fetch_all(conn)
        .await?;
    let by_rt: HashMap<i64, (Option<i64>, Option<i64>, bool)> = rows
        .into_iter()
        .map(|(rt, created, existing, advanced)| (rt, (created, existing, advanced)))
        .collect();
    jobs.iter()
        .map(|j| {
            let (created, existing, advanced) = by_rt.get(&j.recurring.id).copied().ok_or_else(|| {
                StoreError::Invalid(format!("no result for recurring task {}", j.recurring.id))
            })?;
            Ok(Instantiated {
                created_task_id: created,
                existing_task_id: if created.is_some() { None } else { existing },
                advanced,
                // A created instance gets all its reminders in the same statement.
                reminders_created: if created.is_some() { j.reminders.len() } else { 0 },
            })
        })
        .collect()
}

/// SQLite (in-process, no round trips): the same statements row by row, in one transaction.
async fn instantiate_sqlite(
    pool: &sqlx::SqlitePool,
    jobs: &[Instantiate<'_>],
) -> Result<Vec<Instantiated>, StoreError> {
    const INSERT_TASK: &str = "INSERT INTO tasks (user_id, title, description, status, priority, \
         due_at, recurring_task_id, occurrence_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'todo', $4, $5, $6, $5, $7, $7) \
         ON CONFLICT (recurring_task_id, occurrence_at) DO NOTHING RETURNING id";
    const INSERT_REMINDER: &str = "INSERT INTO reminders (task_id, user_id, remind_at, channels, \
         state, created_at, updated_at) VALUES ($1, $2, $3, 'email', 'pending', $4, $4)";
    const ADVANCE: &str = "UPDATE recurring_tasks SET next_occurrence = $3, active = $4, \
         updated_at = $5 WHERE id = $1 AND next_occurrence = $2";
    let mut tx = pool.begin().await?;
    let mut done = Vec::with_capacity(jobs.len());
    for job in jobs {
        let rt = job.recurring;
        let created: Option<i64> = sqlx::query_scalar(INSERT_TASK)
            .bind(rt.user_id)
            .bind(&rt.title)
            .bind(&rt.description)
            .bind(&rt.priority)
            .bind(job.occurrence)
            .bind(rt.id)
            .bind(job.now)
            .fetch_optional(&mut *tx)
            .await?;
        let mut reminders_created = 0;
        let mut existing_task_id = None;
        if let Some(task_id) = created {
            for remind_at in &job.reminders {
                sqlx::query(INSERT_REMINDER)
                    .bind(task_id)
                    .bind(rt.user_id)
                    .bind(*remind_at)
                    .bind(job.now)
                    .execute(&mut *tx)
                    .await?;
                reminders_created += 1;
            }
        } else {
            existing_task_id = sqlx::query_scalar(INSTANCE)
                .bind(rt.id)
                .bind(job.occurrence)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let next = job.next.unwrap_or(job.occurrence);
        let advanced = sqlx::query(ADVANCE)
            .bind(rt.id)
            .bind(job.occurrence)
            .bind(next)
            .bind(job.next.is_some())
            .bind(job.now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        done.push(Instantiated {
            created_task_id: created,
            existing_task_id,
            advanced,
            reminders_created,
        });
    }
    tx.commit().await?;
    Ok(done)
}
