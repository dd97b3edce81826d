//! The [`Store`]'s writes of the todo application itself (seed, demo, tests), and what tests
//! read back: each picks the backend's statement (`postgres/seed.rs`, `sqlite/seed.rs`).
//! Apart from `seed.rs`, which holds what they take, so that the backends import that
//! without importing the facade.

use crate::error::StoreError;
use crate::rows::{ReminderState, TaskStatus};
use crate::seed::{Bulk, NewEndpoint, NewRecurringTask, NewTask, NewUser, Preferences};
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Utc};
use todo_events_domain::{EndpointId, RecurringTaskId, ReminderId, TaskId, UserId};

impl Store {
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

    /// Writes a user's preferences as the app does (docs/PREFERENCES.md), replacing those
    /// stored; the database refuses malformed ones.
    pub async fn set_preferences(
        &self,
        user: UserId,
        preferences: &Preferences<'_>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Postgres(pool) => postgres::seed::set_preferences(pool, user, preferences).await,
            Self::Sqlite(pool) => sqlite::seed::set_preferences(pool, user, preferences).await,
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
