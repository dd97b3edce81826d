//! Channels beside e-mail: a reminder delivered to places the user registered
//! (`channel_endpoints`, docs/CHANNELS.md).
//!
//! - [`webhook`] — an HTTP `POST` in one of four shapes (our own JSON, Slack, Discord, ntfy),
//!   signed per the Standard Webhooks specification.
//! - [`guard`] — which targets may be reached at all: the URLs come from users, so each must
//!   be `https` and public (no cluster-internal or metadata address).
//!
//! A channel answers like the mailer does: delivered, failed for good (recorded, never
//! retried), or failed for now (the claim is given back and the event retried, not before
//! the receiver's `Retry-After`).

pub mod guard;
pub mod webhook;

use crate::mail::compose::{single_line, zoned};
use chrono::{DateTime, Utc};
use std::time::Duration;
use todo_events_domain::time::rfc3339;
use todo_events_domain::{ReminderId, TaskId, UserId};

/// Why a notice was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try (a timeout, a refused connection, `408`, `429`, `5xx`); not before
    /// `retry_after` when the receiver said so.
    #[error("temporary failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will never work (the target is not allowed, `4xx`, a redirect).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// What a reminder says, whatever the channel carries it.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub reminder_id: ReminderId,
    pub task_id: TaskId,
    pub user_id: UserId,
    pub remind_at: DateTime<Utc>,
    pub task_title: &'a str,
    pub task_due_at: Option<DateTime<Utc>>,
    /// The user's IANA zone; UTC when it is unknown.
    pub timezone: &'a str,
    /// The task in the todo app (`APP_URL/tasks/<id>`).
    pub task_url: String,
}

impl Notice<'_> {
    /// The task's title on one line.
    pub fn title(&self) -> String {
        single_line(self.task_title)
    }

    /// The due time in the user's zone as an RFC 3339 local time with its offset, and the
    /// zone it was shown in (UTC when the user's is unknown).
    pub fn due_local(&self) -> Option<(String, String)> {
        let due = self.task_due_at?;
        let (local, zone) = zoned(due, self.timezone).ok()?;
        Some((
            local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            zone.to_owned(),
        ))
    }

    /// One sentence for chat-like channels: "Reminder: Water the plants (due Monday 30
    /// November 2026, 10:00 CET)".
    pub fn sentence(&self) -> String {
        let due = self
            .task_due_at
            .and_then(|due| zoned(due, self.timezone).ok())
            .map(|(local, _)| format!(" (due {})", local.strftime("%A %-d %B %Y, %H:%M %Z")))
            .unwrap_or_default();
        format!("Reminder: {}{due}", self.title())
    }

    /// The deterministic id of this notice's delivery to `endpoint`: the same on every
    /// retry, so a receiver recognises a second copy (`webhook-id`).
    pub fn delivery_id(&self, endpoint: i64) -> String {
        format!(
            "msg_reminder-{}-{}-endpoint-{endpoint}",
            self.reminder_id,
            self.remind_at.timestamp_micros()
        )
    }

    pub fn remind_at_text(&self) -> String {
        rfc3339(self.remind_at)
    }
}
