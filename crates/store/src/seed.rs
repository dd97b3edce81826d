//! Writes the todo application itself would make: users, tasks, reminders and recurring
//! tasks. Used by `todo-events seed` and `demo`, and by tests to set up their world.

use crate::{on_pool, Store, StoreError};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub timezone: &'a str,
}

#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub user_id: i64,
    pub title: &'a str,
    pub description: &'a str,
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewRecurringTask<'a> {
    pub user_id: i64,
    pub title: &'a str,
    pub description: &'a str,
    /// Normalised RRULE text (see `todo_events_domain::Schedule::rule`).
    pub rrule: &'a str,
    pub timezone: &'a str,
    /// Local wall-clock DTSTART, `YYYY-MM-DDTHH:MM:SS`.
    pub dtstart: &'a str,
    pub next_occurrence: DateTime<Utc>,
    pub catch_up: &'a str,
    /// Seconds before each occurrence at which its instance gets a reminder.
    pub reminder_offsets: &'a [i64],
}

impl Store {
    pub async fn insert_user(&self, u: &NewUser<'_>) -> Result<i64, StoreError> {
        const SQL: &str =
            "INSERT INTO users (email, display_name, timezone) VALUES ($1, $2, $3) RETURNING id";
        Ok(on_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(u.email).bind(u.display_name).bind(u.timezone).fetch_one(pool).await?))
    }

    pub async fn insert_task(&self, t: &NewTask<'_>) -> Result<i64, StoreError> {
        const SQL: &str =
            "INSERT INTO tasks (user_id, title, description, due_at) VALUES ($1, $2, $3, $4) RETURNING id";
        Ok(on_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(t.user_id).bind(t.title).bind(t.description).bind(t.due_at).fetch_one(pool).await?))
    }

    pub async fn insert_reminder(
        &self,
        task_id: i64,
        user_id: i64,
        remind_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        const SQL: &str =
            "INSERT INTO reminders (task_id, user_id, remind_at) VALUES ($1, $2, $3) RETURNING id";
        Ok(on_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(task_id).bind(user_id).bind(remind_at).fetch_one(pool).await?))
    }

    /// Inserts a recurring task. A rule, zone or DTSTART that cannot describe a recurrence
    /// (malformed, forbidden by RFC 5545, unknown zone, or never producing an occurrence) is
    /// refused here with the reason, before anything is written.
    pub async fn insert_recurring_task(&self, r: &NewRecurringTask<'_>) -> Result<i64, StoreError> {
        let refused = |e: todo_events_domain::RecurrenceError| {
            StoreError::Invalid(format!("recurring task refused: {e}"))
        };
        let dtstart = todo_events_domain::recurrence::parse_local(r.dtstart).map_err(refused)?;
        todo_events_domain::Schedule::parse(r.rrule, dtstart, r.timezone).map_err(refused)?;
        const SQL: &str = "INSERT INTO recurring_tasks (user_id, title, description, rrule, timezone, \
             dtstart, next_occurrence, catch_up, reminder_offsets) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
        let offsets = serde_json::to_string(r.reminder_offsets).expect("integers serialize");
        Ok(on_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(r.user_id).bind(r.title).bind(r.description).bind(r.rrule).bind(r.timezone)
            .bind(r.dtstart).bind(r.next_occurrence).bind(r.catch_up).bind(offsets)
            .fetch_one(pool).await?))
    }

    /// Bulk synthetic data for trials and benchmarks: `users` users, each reminder on its own
    /// task, all due at `due_at`. Written in large transactions. Returns (users, reminders,
    /// recurring tasks) created.
    pub async fn seed_bulk(
        &self,
        users: usize,
        reminders: usize,
        recurring: usize,
        due_at: DateTime<Utc>,
        recurring_rule: &str,
        recurring_dtstart: &str,
    ) -> Result<(usize, usize, usize), StoreError> {
        const USER: &str =
            "INSERT INTO users (email, display_name, timezone) VALUES ($1, $2, 'UTC') RETURNING id";
        const TASK: &str = "INSERT INTO tasks (user_id, title, due_at) VALUES ($1, $2, $3) RETURNING id";
        const REMINDER: &str = "INSERT INTO reminders (task_id, user_id, remind_at) VALUES ($1, $2, $3)";
        const RECURRING: &str = "INSERT INTO recurring_tasks (user_id, title, rrule, timezone, dtstart, \
             next_occurrence) VALUES ($1, $2, $3, 'UTC', $4, $5)";
        let users = users.max(1);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut user_ids = Vec::with_capacity(users);
            for i in 0..users {
                let id: i64 = sqlx::query_scalar(USER)
                    .bind(format!("user{i}@example.test")).bind(format!("User {i}"))
                    .fetch_one(&mut *tx).await?;
                user_ids.push(id);
            }
            for i in 0..reminders {
                let user = user_ids[i % users];
                let task: i64 = sqlx::query_scalar(TASK)
                    .bind(user).bind(format!("Synthetic task {i}")).bind(due_at)
                    .fetch_one(&mut *tx).await?;
                sqlx::query(REMINDER).bind(task).bind(user).bind(due_at).execute(&mut *tx).await?;
            }
            for i in 0..recurring {
                sqlx::query(RECURRING)
                    .bind(user_ids[i % users]).bind(format!("Synthetic recurring task {i}"))
                    .bind(recurring_rule).bind(recurring_dtstart).bind(due_at)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok((users, reminders, recurring))
    }

    /// The todo app marks a task done (or any other status).
    pub async fn set_task_status(&self, task_id: i64, status: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE tasks SET status = $2 WHERE id = $1";
        on_pool!(self, pool => { sqlx::query(SQL).bind(task_id).bind(status).execute(pool).await?; });
        Ok(())
    }

    /// The todo app cancels a reminder (or sets another state).
    pub async fn set_reminder_state(&self, reminder_id: i64, state: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE reminders SET state = $2 WHERE id = $1";
        on_pool!(self, pool => { sqlx::query(SQL).bind(reminder_id).bind(state).execute(pool).await?; });
        Ok(())
    }

    /// A reminder's current state.
    pub async fn reminder_state(&self, reminder_id: i64) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT state FROM reminders WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query_scalar(SQL).bind(reminder_id).fetch_optional(pool).await?))
    }

    /// Instances created from a recurring task, as (task id, occurrence), oldest first.
    pub async fn instances_of(
        &self,
        recurring_task_id: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, StoreError> {
        const SQL: &str =
            "SELECT id, occurrence_at FROM tasks WHERE recurring_task_id = $1 ORDER BY occurrence_at";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).bind(recurring_task_id).fetch_all(pool).await?))
    }
}
