//! The app's writes on PostgreSQL (seed, demo, tests), and what tests read back.

use crate::error::StoreError;
use crate::rows::{id, parse, ReminderOffsets, ReminderState, TaskStatus};
use crate::seed::{
    Bulk, NewEndpoint, NewRecurringTask, NewTask, NewUser, Preferences, ENDPOINT_ACTIVE, INSERT_ENDPOINT,
    SET_PREFERENCES, SET_REMINDER_CHANNELS,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use todo_events_domain::{EndpointId, RecurringTaskId, ReminderId, TaskId, UserId};

pub(crate) async fn insert_user(pool: &PgPool, u: &NewUser<'_>) -> Result<UserId, StoreError> {
    const SQL: &str = "INSERT INTO users (email, display_name, timezone) VALUES ($1, $2, $3) RETURNING id";
    let new: i64 = sqlx::query_scalar(SQL)
        .bind(u.email)
        .bind(u.display_name)
        .bind(u.timezone)
        .fetch_one(pool)
        .await?;
    Ok(id("users", new, "id", new, UserId::new)?)
}

pub(crate) async fn insert_task(pool: &PgPool, t: &NewTask<'_>) -> Result<TaskId, StoreError> {
    const SQL: &str = "INSERT INTO tasks (user_id, title, description, due_at) \
         VALUES ($1, $2, $3, $4) RETURNING id";
    let new: i64 = sqlx::query_scalar(SQL)
        .bind(t.user_id.get())
        .bind(t.title)
        .bind(t.description)
        .bind(t.due_at)
        .fetch_one(pool)
        .await?;
    Ok(id("tasks", new, "id", new, TaskId::new)?)
}

pub(crate) async fn insert_reminder(
    pool: &PgPool,
    task: TaskId,
    user: UserId,
    remind_at: DateTime<Utc>,
) -> Result<ReminderId, StoreError> {
    const SQL: &str = "INSERT INTO reminders (task_id, user_id, remind_at) VALUES ($1, $2, $3) RETURNING id";
    let new: i64 = sqlx::query_scalar(SQL)
        .bind(task.get())
        .bind(user.get())
        .bind(remind_at)
        .fetch_one(pool)
        .await?;
    Ok(id("reminders", new, "id", new, ReminderId::new)?)
}

pub(crate) async fn insert_recurring_task(
    pool: &PgPool,
    r: &NewRecurringTask<'_>,
) -> Result<RecurringTaskId, StoreError> {
    const SQL: &str = "INSERT INTO recurring_tasks (user_id, title, description, rrule, \
         timezone, dtstart, next_occurrence, catch_up, reminder_offsets) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
    let new: i64 = sqlx::query_scalar(SQL)
        .bind(r.user_id.get())
        .bind(r.title)
        .bind(r.description)
        .bind(r.rrule)
        .bind(r.timezone)
        .bind(r.dtstart)
        .bind(r.next_occurrence)
        .bind(r.catch_up.as_str())
        .bind(ReminderOffsets::from_seconds(r.reminder_offsets).to_json())
        .fetch_one(pool)
        .await?;
    Ok(id("recurring_tasks", new, "id", new, RecurringTaskId::new)?)
}

/// Bulk rows in one transaction.
pub(crate) async fn seed_bulk(pool: &PgPool, bulk: &Bulk<'_>) -> Result<(), StoreError> {
    const USER: &str =
        "INSERT INTO users (email, display_name, timezone) VALUES ($1, $2, 'UTC') RETURNING id";
    const TASK: &str = "INSERT INTO tasks (user_id, title, due_at) VALUES ($1, $2, $3) RETURNING id";
    const REMINDER: &str = "INSERT INTO reminders (task_id, user_id, remind_at) VALUES ($1, $2, $3)";
    const RECURRING: &str = "INSERT INTO recurring_tasks (user_id, title, rrule, timezone, \
         dtstart, next_occurrence) VALUES ($1, $2, $3, 'UTC', $4, $5)";
    let mut tx = pool.begin().await?;
    let mut users = Vec::with_capacity(bulk.users);
    for i in 0..bulk.users {
        let user: i64 = sqlx::query_scalar(USER)
            .bind(format!("user{i}@example.test"))
            .bind(format!("User {i}"))
            .fetch_one(&mut *tx)
            .await?;
        users.push(user);
    }
    for i in 0..bulk.reminders {
        let user = users[i % users.len()];
        let task: i64 = sqlx::query_scalar(TASK)
            .bind(user)
            .bind(format!("Synthetic task {i}"))
            .bind(bulk.due_at)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(REMINDER)
            .bind(task)
            .bind(user)
            .bind(bulk.due_at)
            .execute(&mut *tx)
            .await?;
    }
    for i in 0..bulk.recurring {
        sqlx::query(RECURRING)
            .bind(users[i % users.len()])
            .bind(format!("Synthetic recurring task {i}"))
            .bind(bulk.recurring_rule)
            .bind(bulk.recurring_dtstart)
            .bind(bulk.due_at)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn set_task_status(
    pool: &PgPool,
    task: TaskId,
    status: TaskStatus,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE tasks SET status = $2 WHERE id = $1";
    sqlx::query(SQL)
        .bind(task.get())
        .bind(status.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn set_reminder_state(
    pool: &PgPool,
    reminder: ReminderId,
    state: ReminderState,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE reminders SET state = $2 WHERE id = $1";
    sqlx::query(SQL)
        .bind(reminder.get())
        .bind(state.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn reminder_state(
    pool: &PgPool,
    reminder: ReminderId,
) -> Result<Option<ReminderState>, StoreError> {
    const SQL: &str = "SELECT state FROM reminders WHERE id = $1";
    let state: Option<String> = sqlx::query_scalar(SQL)
        .bind(reminder.get())
        .fetch_optional(pool)
        .await?;
    Ok(state
        .map(|s| parse("reminders", reminder.get(), "state", &s))
        .transpose()?)
}

pub(crate) async fn set_reminder_channels(
    pool: &PgPool,
    reminder: ReminderId,
    channels: &str,
) -> Result<(), StoreError> {
    sqlx::query(SET_REMINDER_CHANNELS)
        .bind(reminder.get())
        .bind(channels)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn insert_endpoint(pool: &PgPool, e: &NewEndpoint<'_>) -> Result<EndpointId, StoreError> {
    let new: i64 = sqlx::query_scalar(INSERT_ENDPOINT)
        .bind(e.user_id.get())
        .bind(e.channel.as_str())
        .bind(e.target)
        .bind(e.format)
        .bind(e.secret)
        .bind(e.p256dh)
        .bind(e.auth)
        .fetch_one(pool)
        .await?;
    Ok(id("channel_endpoints", new, "id", new, EndpointId::new)?)
}

pub(crate) async fn endpoint_active(pool: &PgPool, endpoint: EndpointId) -> Result<Option<bool>, StoreError> {
    Ok(sqlx::query_scalar(ENDPOINT_ACTIVE)
        .bind(endpoint.get())
        .fetch_optional(pool)
        .await?)
}

pub(crate) async fn set_preferences(
    pool: &PgPool,
    user: UserId,
    p: &Preferences<'_>,
) -> Result<(), StoreError> {
    sqlx::query(SET_PREFERENCES)
        .bind(user.get())
        .bind(p.quiet_start)
        .bind(p.quiet_end)
        .bind(p.quiet_days)
        .bind(p.locale)
        .bind(p.channels)
        .bind(p.agenda_at)
        .execute(pool)
        .await?;
    Ok(())
}
