//! What notify accepts: a due reminder (`dev.todo.reminder.due`) or a user's daily agenda
//! (`dev.todo.agenda.due`), both on the reminders' stream. The host parses each by its
//! CloudEvent type ([`EventData`]); the handler sends each kind through its own steps.

use todo_events_domain::{AgendaDue, EventKind, ReminderDue, ReminderId, UserId};
use todo_events_host::decode::parse_data;
use todo_events_host::{Event, EventData, Problem};

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

/// A batch's events by kind, each kind with the events' positions in the batch.
pub(crate) struct ByKind {
    pub reminders: (Vec<usize>, Vec<Event<ReminderDue>>),
    pub agendas: (Vec<usize>, Vec<Event<AgendaDue>>),
}

impl ByKind {
    pub fn of(events: &[Event<NotifyEvent>]) -> Self {
        let mut by = Self {
            reminders: (Vec::new(), Vec::new()),
            agendas: (Vec::new(), Vec::new()),
        };
        for (i, (id, event)) in events.iter().enumerate() {
            match event {
                NotifyEvent::Reminder(due) => {
                    by.reminders.0.push(i);
                    by.reminders.1.push((id.clone(), due.clone()));
                }
                NotifyEvent::Agenda(due) => {
                    by.agendas.0.push(i);
                    by.agendas.1.push((id.clone(), due.clone()));
                }
            }
        }
        by
    }
}
