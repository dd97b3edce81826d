//! Rows as the functions read them.

use chrono::{DateTime, Utc};

/// A reminder with its task and recipient: everything notify needs, read in one query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReminderContext {
    pub reminder_id: i64,
    pub task_id: i64,
    pub user_id: i64,
    pub remind_at: DateTime<Utc>,
    pub state: String,
    pub task_title: String,
    pub task_description: String,
    pub task_status: String,
    pub task_due_at: Option<DateTime<Utc>>,
    pub email: String,
    pub display_name: String,
    pub timezone: String,
}

/// A recurring task as recur and the scheduler read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecurringTaskRow {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub description: String,
    pub priority: String,
    pub rrule: String,
    pub timezone: String,
    pub dtstart: String,
    pub next_occurrence: Option<DateTime<Utc>>,
    pub active: bool,
    pub catch_up: String,
    pub reminder_offsets: String,
}

impl RecurringTaskRow {
    /// Reminder offsets in seconds before each occurrence.
    pub fn reminder_offsets(&self) -> Vec<i64> {
        serde_json::from_str(&self.reminder_offsets).unwrap_or_default()
    }
}

/// A delivery record (one per reminder occurrence and channel).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub reminder_id: i64,
    pub remind_at: DateTime<Utc>,
    pub event_id: String,
    pub status: String,
    pub attempts: i32,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
    pub detail: Option<String>,
}
