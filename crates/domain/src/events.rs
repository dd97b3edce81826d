//! The events on the bus and the rules that name them (DESIGN.md, "CloudEvents contract").
//!
//! Ids are deterministic: the same due item always produces the same CloudEvent `id`, so a
//! republished event is recognisably the one the consumers have already seen.

use crate::agenda::{AgendaDue, AGENDA_DUE};
use crate::ids::{RecurringTaskId, ReminderId, TaskId, UserId};
use crate::time::{rfc3339, serde_rfc3339};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// CloudEvents `source` of everything the scheduler publishes.
pub const EVENT_SOURCE: &str = "/todo/scheduler-cron";
/// CloudEvents `type` of a due reminder.
pub const REMINDER_DUE: &str = "dev.todo.reminder.due";
/// CloudEvents `type` of a due recurring-task occurrence.
pub const RECURRING_TASK_DUE: &str = "dev.todo.recurring-task.due";

/// Which of the scheduler's events a CloudEvent `type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ReminderDue,
    RecurringTaskDue,
    /// A user's daily agenda ([`crate::agenda`]): on the reminders' stream, for notify.
    AgendaDue,
}

impl EventKind {
    pub fn from_type(ty: &str) -> Option<Self> {
        match ty {
            REMINDER_DUE => Some(Self::ReminderDue),
            RECURRING_TASK_DUE => Some(Self::RecurringTaskDue),
            AGENDA_DUE => Some(Self::AgendaDue),
            _ => None,
        }
    }

    /// The type the seed system's Dapr envelope carries in `event_type`.
    pub fn from_legacy_type(ty: &str) -> Option<Self> {
        match ty {
            "reminder.due" => Some(Self::ReminderDue),
            "recurring_task.due" => Some(Self::RecurringTaskDue),
            _ => None,
        }
    }

    pub fn cloudevent_type(self) -> &'static str {
        match self {
            Self::ReminderDue => REMINDER_DUE,
            Self::RecurringTaskDue => RECURRING_TASK_DUE,
            Self::AgendaDue => AGENDA_DUE,
        }
    }
}

/// Data of `dev.todo.reminder.due`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderDue {
    pub reminder_id: ReminderId,
    pub task_id: TaskId,
    pub user_id: UserId,
    #[serde(with = "serde_rfc3339")]
    pub remind_at: DateTime<Utc>,
}

impl ReminderDue {
    pub fn event_id(&self) -> String {
        format!("reminder/{}/{}", self.reminder_id, rfc3339(self.remind_at))
    }
    pub fn subject(&self) -> String {
        format!("tasks/{}", self.task_id)
    }
}

/// Data of `dev.todo.recurring-task.due`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurringTaskDue {
    pub recurring_task_id: RecurringTaskId,
    pub user_id: UserId,
    #[serde(with = "serde_rfc3339")]
    pub occurrence_at: DateTime<Utc>,
}

impl RecurringTaskDue {
    pub fn event_id(&self) -> String {
        format!(
            "recurring-task/{}/{}",
            self.recurring_task_id,
            rfc3339(self.occurrence_at)
        )
    }
    pub fn subject(&self) -> String {
        format!("recurring-tasks/{}", self.recurring_task_id)
    }
}

/// The source of the status events notify's outcomes become (its replies' source).
pub const NOTIFY_SOURCE: &str = "/todo/notify";

/// Where an outgoing event goes: each stream is a Kafka topic or an HTTP sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// `dev.todo.reminder.due` and `dev.todo.agenda.due`, for notify.
    Reminders,
    /// `dev.todo.recurring-task.due`, for recur.
    TaskEvents,
    /// `dev.todo.notification.*`, for the todo app: what came of each reminder
    /// (docs/PREFERENCES.md, "Delivery status").
    Notifications,
}

impl From<EventKind> for Stream {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::ReminderDue | EventKind::AgendaDue => Self::Reminders,
            EventKind::RecurringTaskDue => Self::TaskEvents,
        }
    }
}

/// An event the scheduler is about to publish: everything a publisher needs, whichever
/// transport carries it (HTTP sink or Kafka).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub stream: Stream,
    /// The CloudEvents `type` and `source`.
    pub ty: String,
    pub source: &'static str,
    pub id: String,
    pub subject: String,
    /// Kafka message key: per-user ordering.
    pub key: String,
    pub data: serde_json::Value,
}

impl From<&ReminderDue> for Outgoing {
    fn from(e: &ReminderDue) -> Self {
        Self {
            stream: Stream::Reminders,
            ty: REMINDER_DUE.into(),
            source: EVENT_SOURCE,
            id: e.event_id(),
            subject: e.subject(),
            key: e.user_id.to_string(),
            data: serde_json::to_value(e).expect("plain struct serializes"),
        }
    }
}

impl From<&RecurringTaskDue> for Outgoing {
    fn from(e: &RecurringTaskDue) -> Self {
        Self {
            stream: Stream::TaskEvents,
            ty: RECURRING_TASK_DUE.into(),
            source: EVENT_SOURCE,
            id: e.event_id(),
            subject: e.subject(),
            key: e.user_id.to_string(),
            data: serde_json::to_value(e).expect("plain struct serializes"),
        }
    }
}

impl From<&AgendaDue> for Outgoing {
    fn from(e: &AgendaDue) -> Self {
        Self {
            stream: Stream::Reminders,
            ty: AGENDA_DUE.into(),
            source: EVENT_SOURCE,
            id: e.event_id(),
            subject: e.subject(),
            key: e.user_id.to_string(),
            data: serde_json::to_value(e).expect("plain struct serializes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_instant;

    #[test]
    fn ids_and_subjects_follow_the_contract() {
        let r = ReminderDue {
            reminder_id: ReminderId::new(12).unwrap(),
            task_id: TaskId::new(34).unwrap(),
            user_id: UserId::new(5).unwrap(),
            remind_at: parse_instant("2026-11-27T10:00:00+01:00").unwrap(),
        };
        assert_eq!(r.event_id(), "reminder/12/2026-11-27T09:00:00Z");
        assert_eq!(r.subject(), "tasks/34");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["remind_at"], "2026-11-27T09:00:00Z");
        assert_eq!(serde_json::from_value::<ReminderDue>(json).unwrap(), r);

        let o = RecurringTaskDue {
            recurring_task_id: RecurringTaskId::new(9).unwrap(),
            user_id: UserId::new(5).unwrap(),
            occurrence_at: parse_instant("2026-03-08T07:30:00Z").unwrap(),
        };
        assert_eq!(o.event_id(), "recurring-task/9/2026-03-08T07:30:00Z");
        assert_eq!(o.subject(), "recurring-tasks/9");
        assert_eq!(Outgoing::from(&o).key, "5");
    }

    #[test]
    fn data_without_offset_is_rejected() {
        let bad = serde_json::json!({"reminder_id": 1, "task_id": 2, "user_id": 3,
            "remind_at": "2026-11-27T10:00:00"});
        let err = serde_json::from_value::<ReminderDue>(bad).unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
