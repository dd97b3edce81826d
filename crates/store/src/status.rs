//! The status events notify records (`notification_events`, migration 0007) and the
//! scheduler publishes: what came of each reminder, for the todo app (docs/PREFERENCES.md,
//! "Delivery status"). Recorded at most once per id (the reply event's id, `<event id>/
//! <outcome>`), claimed with a lease and marked published like the due items, so a status
//! event is published at least once and always with the same id; deleted after the
//! retention.

use chrono::{DateTime, Utc};
use todo_events_domain::{ReminderId, TaskId, UserId};

/// A status event as notify records it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStatus {
    /// The reply event's id, `<event id>/<outcome>`.
    pub id: String,
    /// `dev.todo.notification.<outcome>`.
    pub ty: String,
    /// `sent`, `failed`, `deferred` or `skipped`.
    pub outcome: &'static str,
    pub reminder_id: ReminderId,
    pub task_id: TaskId,
    pub user_id: UserId,
    pub remind_at: DateTime<Utc>,
    pub reason: String,
    /// The reply event's data.
    pub data: serde_json::Value,
}

/// A status event claimed for publishing.
#[derive(Debug, Clone, PartialEq, sqlx_macros::FromRow)]
pub struct ClaimedStatus {
    pub id: String,
    #[sqlx(rename = "type")]
    pub ty: String,
    pub task_id: i64,
    pub user_id: i64,
    /// JSON text.
    pub data: String,
}

/// Deletes up to `$2` status events recorded before `$1` (the retention, `crate::history`),
/// oldest first: SQLite's (PostgreSQL's skips rows another transaction holds).
pub(crate) const EXPIRE: &str =
    "DELETE FROM notification_events WHERE id IN (SELECT id FROM notification_events \
     WHERE created_at < $1 ORDER BY created_at LIMIT $2)";
