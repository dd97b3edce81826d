//! The todo database, on PostgreSQL (production) or SQLite (the embedded default), with one
//! behaviour on both: the same tables, the same claims, the same once-only effects.
//!
//! Each backend has its own module, `postgres/` and `sqlite/`, where every statement is
//! written once for that backend as plain code; where the dialects differ (row locks,
//! arrays, set-based batches against row loops) each says it in its own SQL. [`Store`] is
//! the one place that picks the backend: each of its methods matches on the pool and calls
//! the backend's function. The conformance suite (`tests/conformance.rs`) runs every
//! statement on both backends and expects the same results.
//!
//! Rows come out typed ([`rows`]): ids, states, statuses, the catch-up policy, reminder
//! offsets and the parsed rule. A stored value that does not parse is a [`Malformed`] error
//! naming its row.

mod error;
pub mod notify;
mod postgres;
pub mod recur;
pub mod rows;
pub mod scheduler;
pub mod seed;
mod sqlite;

/// The PostgreSQL statements of the functions' hot paths, exactly as they are sent. The
/// benchmarks build their pgbench scripts from these (bench/src/scripts.rs), so each limit
/// they report is measured on the same SQL the function runs, with the same round trips.
pub mod statements {
    pub use crate::postgres::notify::{CLAIM_NEW_DELIVERIES, FINISH_DELIVERIES, REMINDER_CONTEXTS};
    pub use crate::postgres::recur::{INSTANTIATE, RECURRING_STATE};
}

pub use error::StoreError;
pub use rows::*;

use chrono::{DateTime, Duration, Utc};
use recur::Session;
use scheduler::ClaimRequest;
use seed::{Bulk, NewEndpoint, NewRecurringTask, NewTask, NewUser};
use sqlx::{PgPool, SqlitePool};
use std::time::Duration as StdDuration;
use todo_events_domain::{EndpointId, RecurringTaskId, ReminderId, TaskId, UserId};

/// A handle on the database; cheap to clone (pools are shared).
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// How to reach the database. `Debug` hides the password.
#[derive(Clone)]
pub struct StoreOptions {
    /// `postgres://…` or `sqlite://…` (a path; the file is created when missing).
    pub url: String,
    /// PostgreSQL pool size. SQLite always uses one connection: it has a single writer, and
    /// one connection turns writer contention into a queue instead of `SQLITE_BUSY` errors.
    pub max_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: StdDuration,
    /// PostgreSQL: plan each statement once per connection (`plan_cache_mode =
    /// force_generic_plan`) instead of at every execution. The functions' statements take
    /// their rows by key from bound arrays (`UNNEST($1::bigint[])`), so one plan fits every
    /// call, yet PostgreSQL's default keeps re-planning them (the generic plan's row estimate
    /// for an array looks costlier than a fresh plan for the values at hand), and planning
    /// cost more than executing (docs/PERFORMANCE.md, "What the figures say, and what was
    /// done about them", item 9). Off for the scheduler, whose claims filter by time ranges
    /// where a plan for the actual values can matter.
    pub generic_plans: bool,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &todo_events_domain::redact::passwords(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("generic_plans", &self.generic_plans)
            .finish()
    }
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: StdDuration::from_secs(3),
            generic_plans: false,
        }
    }
}

impl Store {
    /// Opens a pool without connecting: a function starts even while its database is down,
    /// and readiness reports it.
    pub fn open(opts: &StoreOptions) -> Result<Self, StoreError> {
        let url = opts.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(postgres::open(opts)?))
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(sqlite::open(opts)?))
        } else {
            Err(StoreError::Config(
                "DATABASE_URL must start with postgres:// or sqlite: (e.g. sqlite://todo-events.db)".into(),
            ))
        }
    }

    /// Applies the embedded migrations for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::migrate(pool).await,
            Self::Sqlite(pool) => sqlite::migrate(pool).await,
        }
    }

    /// One round trip: what readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::ping(pool).await,
            Self::Sqlite(pool) => sqlite::ping(pool).await,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    /// Row counts of every table, in a fixed order: what tests compare to prove that a
    /// rejected request wrote nothing.
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let counts = match self {
            Self::Postgres(pool) => postgres::table_counts(pool).await?,
            Self::Sqlite(pool) => sqlite::table_counts(pool).await?,
        };
        let tables = ["users", "tasks", "reminders", "recurring_tasks", "deliveries"];
        Ok(tables.into_iter().zip(counts).collect())
    }

    // recur

    /// The connection a batch of recur's events reads and writes over (see [`Session`]).
    pub async fn session(&self) -> Result<Session, StoreError> {
        Ok(match self {
            Self::Postgres(pool) => Session::Postgres(pool.acquire().await?),
            Self::Sqlite(pool) => Session::Sqlite(pool.clone()),
        })
    }

    /// Creates the instance for one occurrence (once) and advances its recurring task (see
    /// [`Session::instantiate`]).
    pub async fn instantiate(&self, job: &recur::Instantiate<'_>) -> Result<recur::Instantiated, StoreError> {
        let done = self
            .session()
            .await?
            .instantiate(std::slice::from_ref(job))
            .await?;
        done.into_iter()
            .next()
            .ok_or_else(|| StoreError::Other("the instance transaction gave no result".into()))
    }

    /// The recurring tasks among `ids`, in one statement (those that do not exist are
    /// absent; a malformed one is an error).
    pub async fn recurring_tasks(
        &self,
        ids: &[RecurringTaskId],
    ) -> Result<Vec<RecurringTaskRow>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::recur::recurring_tasks(pool, ids).await,
            Self::Sqlite(pool) => sqlite::recur::recurring_tasks(pool, ids).await,
        }
    }

    pub async fn recurring_task(&self, id: RecurringTaskId) -> Result<Option<RecurringTaskRow>, StoreError> {
        Ok(self.recurring_tasks(&[id]).await?.pop())
    }

    /// Instances created from a recurring task, as (task, occurrence), oldest first.
    pub async fn instances_of(
        &self,
        id: RecurringTaskId,
    ) -> Result<Vec<(TaskId, DateTime<Utc>)>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::recur::instances_of(pool, id).await,
            Self::Sqlite(pool) => sqlite::recur::instances_of(pool, id).await,
        }
    }

    // scheduler

    /// Claims up to `limit` due reminders (pending, or publishing with an expired lease) and,
    /// with `republish_after`, up to `limit` published that long ago and still not mailed
    /// (fewer than [`scheduler::PUBLISH_LIMIT`] times). Oldest first.
    pub async fn claim_reminders(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        republish_after: Option<Duration>,
    ) -> Result<Vec<ClaimedReminder>, StoreError> {
        let claim = ClaimRequest {
            owner,
            now,
            lease,
            limit,
            republish_after,
        };
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
    /// task has not moved on (fewer than [`scheduler::PUBLISH_LIMIT`] times). Each claimed
    /// row is typed, or why it cannot be (its claim is held: the caller deactivates it).
    /// Oldest first.
    pub async fn claim_occurrences(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        republish_after: Option<Duration>,
    ) -> Result<Vec<Result<ClaimedOccurrence, Malformed>>, StoreError> {
        let claim = ClaimRequest {
            owner,
            now,
            lease,
            limit,
            republish_after,
        };
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
        published: &[recur::Occurrence],
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

    // the app's writes (seed, demo, tests)

    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<UserId, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::insert_user(pool, user).await,
            Self::Sqlite(pool) => sqlite::seed::insert_user(pool, user).await,
        }
    }

    pub async fn insert_task(&self, task: &NewTask<'_>) -> Result<TaskId, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::insert_task(pool, task).await,
            Self::Sqlite(pool) => sqlite::seed::insert_task(pool, task).await,
        }
    }

    pub async fn insert_reminder(
        &self,
        task: TaskId,
        user: UserId,
        remind_at: DateTime<Utc>,
    ) -> Result<ReminderId, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::insert_reminder(pool, task, user, remind_at).await,
            Self::Sqlite(pool) => sqlite::seed::insert_reminder(pool, task, user, remind_at).await,
        }
    }

    /// Sets `reminders.channels` as the app writes it (a comma-separated subset of
    /// `email,webhook,webpush`; stored as given).
    pub async fn set_reminder_channels(
        &self,
        reminder: ReminderId,
        channels: &str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::set_reminder_channels(pool, reminder, channels).await,
            Self::Sqlite(pool) => sqlite::seed::set_reminder_channels(pool, reminder, channels).await,
        }
    }

    /// Registers an endpoint for a user, as the app does (docs/CHANNELS.md).
    pub async fn insert_endpoint(&self, endpoint: &NewEndpoint<'_>) -> Result<EndpointId, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::insert_endpoint(pool, endpoint).await,
            Self::Sqlite(pool) => sqlite::seed::insert_endpoint(pool, endpoint).await,
        }
    }

    /// Whether an endpoint is active (`None`: no such endpoint).
    pub async fn endpoint_active(&self, endpoint: EndpointId) -> Result<Option<bool>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::endpoint_active(pool, endpoint).await,
            Self::Sqlite(pool) => sqlite::seed::endpoint_active(pool, endpoint).await,
        }
    }

    /// Inserts a recurring task, refusing (with the reason, before anything is written) a
    /// rule, zone or DTSTART that cannot describe a recurrence.
    pub async fn insert_recurring_task(
        &self,
        task: &NewRecurringTask<'_>,
    ) -> Result<RecurringTaskId, StoreError> {
        task.check()?;
        match self {
            Self::Postgres(pool) => postgres::seed::insert_recurring_task(pool, task).await,
            Self::Sqlite(pool) => sqlite::seed::insert_recurring_task(pool, task).await,
        }
    }

    /// Bulk synthetic data (see [`Bulk`]), written in one transaction. Returns (users,
    /// reminders, recurring tasks) created.
    pub async fn seed_bulk(&self, bulk: &Bulk<'_>) -> Result<(usize, usize, usize), StoreError> {
        let bulk = Bulk {
            users: bulk.users.max(1),
            ..bulk.clone()
        };
        match self {
            Self::Postgres(pool) => postgres::seed::seed_bulk(pool, &bulk).await?,
            Self::Sqlite(pool) => sqlite::seed::seed_bulk(pool, &bulk).await?,
        }
        Ok((bulk.users, bulk.reminders, bulk.recurring))
    }

    /// The todo app marks a task done (or any other status).
    pub async fn set_task_status(&self, task: TaskId, status: TaskStatus) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::set_task_status(pool, task, status).await,
            Self::Sqlite(pool) => sqlite::seed::set_task_status(pool, task, status).await,
        }
    }

    /// The todo app cancels a reminder (or sets another state).
    pub async fn set_reminder_state(
        &self,
        reminder: ReminderId,
        state: ReminderState,
    ) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::set_reminder_state(pool, reminder, state).await,
            Self::Sqlite(pool) => sqlite::seed::set_reminder_state(pool, reminder, state).await,
        }
    }

    /// A reminder's current state.
    pub async fn reminder_state(&self, reminder: ReminderId) -> Result<Option<ReminderState>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::reminder_state(pool, reminder).await,
            Self::Sqlite(pool) => sqlite::seed::reminder_state(pool, reminder).await,
        }
    }
}

#[cfg(test)]
mod tests {
    /// The text redaction itself is tested where it lives (`todo_events_domain::redact`).
    #[test]
    fn debug_hides_the_password() {
        let opts = super::StoreOptions::new("postgres://app:s3cret@db/todo");
        assert!(!format!("{opts:?}").contains("s3cret"));
    }
}
