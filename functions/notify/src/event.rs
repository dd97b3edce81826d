//! What notify accepts: a due reminder (`dev.todo.reminder.due`) or a user's daily agenda
//! (`dev.todo.agenda.due`), both on the reminders' stream. The host parses each by its
//! CloudEvent type ([`EventData`]); the handler sends each kind through its own steps.

use todo_events_domain::{AgendaDue, EventKind, ReminderDue, ReminderId, UserId};
use todo_events_host::decode::parse_data;
use todo_events_host::{EventData, Problem};

/// An event notify handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    Reminder(ReminderDue),
    Agenda(AgendaDue),
}

/// The row an event changes: a reminder's deliveries, or a user's agenda of a date (one
/// agenda event per user in a batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyKey {
    Reminder(ReminderId),
    Agenda(UserId),
}

impl EventData for NotifyEvent {
    const KINDS: &'static [EventKind] = &[EventKind::ReminderDue, EventKind::AgendaDue];

    fn parse(kind: EventKind, data: serde_json::Value) -> Result<Self, Problem> {
        match kind {
            EventKind::AgendaDue => parse_data(data).map(Self::Agenda),
            _ => parse_data(data).map(Self::Reminder),
        }
    }
}

impl From<ReminderDue> for NotifyEvent {
    fn from(due: ReminderDue) -> Self {
        Self::Reminder(due)
    }
}

impl From<AgendaDue> for NotifyEvent {
    fn from(due: AgendaDue) -> Self {
        Self::Agenda(due)
    }
}
