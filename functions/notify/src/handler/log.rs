//! What the log says about an answered event, beside its answer.
//!
//! The rules that answer an event ([`super::decide`]'s early answers, [`super::answer`]) are
//! pure and silent: they say what the log should get, and the step that applies them writes
//! it ([`super::answer::Answer::logged`]). The lines may name what is stored (the task's
//! title, where a delivery went, the stored side of a skip); the answer never does.

use todo_events_domain::time::rfc3339;
use todo_events_domain::ReminderDue;

/// A line for the log about an answered event, in words that may name what is stored.
#[derive(Debug, PartialEq)]
pub(super) enum Log {
    /// Skipped: why, with what is stored (info).
    Skipped(String),
    /// Before its time (warning).
    Early,
    /// A delivery made now: what, to whom, where (info, with the task and user: the event's
    /// ids, which [`super::decide`] found to be the reminder's).
    Sent(String),
    /// Nothing delivered now, a webhook or push retried on its own schedule (info).
    Answered(String),
    /// Failed for good (warning).
    Undeliverable(String),
    /// Done before (info).
    Duplicate(String),
    /// Put off to the end of the user's quiet hours, at this time (info).
    Deferred(String),
}

impl Log {
    /// Writes this line about `due`'s answer.
    pub fn write(&self, due: &ReminderDue) {
        let id = due.reminder_id;
        match self {
            Log::Skipped(detail) => tracing::info!(reminder_id = %id, "reminder skipped: {detail}"),
            Log::Early => tracing::warn!(
                reminder_id = %id,
                "reminder event before its time, nothing sent: remind_at {} is later than now \
                 (beyond CLOCK_SKEW_TOLERANCE); the scheduler sends it when it is due",
                rfc3339(due.remind_at)
            ),
            Log::Sent(what) => tracing::info!(
                reminder_id = id.get(),
                task_id = due.task_id.get(),
                user_id = due.user_id.get(),
                "{what}"
            ),
            Log::Answered(reason) => {
                tracing::info!(reminder_id = id.get(), "reminder event answered: {reason}")
            }
            Log::Undeliverable(reason) => tracing::warn!(
                reminder_id = id.get(),
                "reminder could not be delivered, for good: {reason}"
            ),
            Log::Duplicate(reason) => tracing::info!(reminder_id = %id, "duplicate reminder event: {reason}"),
            Log::Deferred(until) => tracing::info!(
                reminder_id = %id,
                "reminder due inside its user's quiet hours: sent at their end, {until}"
            ),
        }
    }
}
