//! Fixtures: the rows a test needs before its first event (a user with a task and a due
//! reminder, a recurring task), written through the store as the todo app would, and the
//! event data that points at them.
//!
//! Its own module because these rows are the shared starting point of the functions' tests:
//! one way to make them keeps the tests' data alike and their events consistent with it.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use todo_events_domain::{EndpointId, RecurringTaskId, ReminderDue, ReminderId, TaskId, UserId};
use todo_events_store::seed::{NewEndpoint, NewRecurringTask, NewTask, NewUser};
use todo_events_store::{Channel, Store};

/// A user with one task and one pending reminder due at `remind_at`.
pub struct ReminderFixture {
    pub user_id: UserId,
    pub task_id: TaskId,
    pub reminder_id: ReminderId,
    pub remind_at: DateTime<Utc>,
}

impl ReminderFixture {
    /// The event for this reminder, as notify receives it: its id and data.
    pub fn due(&self) -> (String, ReminderDue) {
        let due = ReminderDue {
            reminder_id: self.reminder_id,
            task_id: self.task_id,
            user_id: self.user_id,
            remind_at: self.remind_at,
        };
        (due.event_id(), due)
    }

    /// The `dev.todo.reminder.due` data for this reminder.
    pub fn data(&self) -> Value {
        serde_json::json!({
            "reminder_id": self.reminder_id, "task_id": self.task_id, "user_id": self.user_id,
            "remind_at": todo_events_domain::time::rfc3339(self.remind_at),
        })
    }
    pub fn event_id(&self) -> String {
        format!(
            "reminder/{}/{}",
            self.reminder_id,
            todo_events_domain::time::rfc3339(self.remind_at)
        )
    }
}

pub async fn user(store: &Store, email: &str, timezone: &str) -> UserId {
    store
        .insert_user(&NewUser {
            email,
            display_name: "Test User",
            timezone,
        })
        .await
        .expect("user inserted")
}

pub async fn reminder(store: &Store, title: &str, remind_at: DateTime<Utc>) -> ReminderFixture {
    let user_id = user(store, "ada@example.test", "Europe/Berlin").await;
    let task_id = store
        .insert_task(&NewTask {
            user_id,
            title,
            description: "",
            due_at: Some(remind_at + Duration::minutes(15)),
        })
        .await
        .expect("task inserted");
    let reminder_id = store
        .insert_reminder(task_id, user_id, remind_at)
        .await
        .expect("reminder inserted");
    ReminderFixture {
        user_id,
        task_id,
        reminder_id,
        remind_at,
    }
}

/// A recurring task with `rule` from local `dtstart` in `tz`; `next` is its next occurrence.
pub struct RecurringFixture {
    pub user_id: UserId,
    pub id: RecurringTaskId,
}

impl RecurringFixture {
    pub fn data(&self, occurrence: DateTime<Utc>) -> Value {
        serde_json::json!({
            "recurring_task_id": self.id, "user_id": self.user_id,
            "occurrence_at": todo_events_domain::time::rfc3339(occurrence),
        })
    }
}

/// A reminder due a second ago (on `channels`) whose user has one webhook endpoint at `url`
/// (`standard` format, signed with `secret` when given): what the webhook tests start from.
pub async fn reminder_with_webhook(
    store: &Store,
    title: &str,
    channels: &str,
    url: &str,
    secret: Option<&str>,
) -> ReminderFixture {
    let due = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0) - Duration::seconds(1);
    let r = reminder(store, title, due).await;
    store
        .set_reminder_channels(r.reminder_id, channels)
        .await
        .expect("channels set");
    webhook_endpoint(store, r.user_id, url, secret).await;
    r
}

/// A webhook endpoint of `user` at `url` (`standard` format, signed with `secret` when
/// given).
pub async fn webhook_endpoint(store: &Store, user: UserId, url: &str, secret: Option<&str>) -> EndpointId {
    store
        .insert_endpoint(&NewEndpoint {
            user_id: user,
            channel: Channel::Webhook,
            target: url,
            format: "standard",
            secret,
            p256dh: None,
            auth: None,
        })
        .await
        .expect("endpoint inserted")
}

#[allow(clippy::too_many_arguments)]
pub async fn recurring(
    store: &Store,
    rule: &str,
    dtstart: &str,
    tz: &str,
    next: DateTime<Utc>,
    catch_up: &str,
    reminder_offsets: &[i64],
) -> RecurringFixture {
    let user_id = user(store, "grace@example.test", tz).await;
    let id = store
        .insert_recurring_task(&NewRecurringTask {
            user_id,
            title: "Recurring chore",
            description: "",
            rrule: rule,
            timezone: tz,
            dtstart,
            next_occurrence: next,
            catch_up: catch_up.parse().expect("catch-up policy latest or all"),
            reminder_offsets,
        })
        .await
        .expect("recurring task inserted");
    RecurringFixture { user_id, id }
}

/// Parses an RFC 3339 instant (test shorthand).
pub fn at(s: &str) -> DateTime<Utc> {
    todo_events_domain::time::parse_instant(s).expect("valid instant")
}
