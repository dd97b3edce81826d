//! The shared vocabulary of todo-events: identifiers, the events on the bus, recurrence
//! rules and the small value types (durations, catch-up policy) every function needs, and
//! the one helper that hides URL passwords in texts ([`redact`]), which every crate shows.
//!
//! Nothing here does I/O. Each type parses its input once ("parse, don't validate"), so
//! code that holds a [`ReminderDue`] or a [`Schedule`] never re-checks it.

pub mod agenda;
pub mod duration;
pub mod events;
pub mod ids;
pub mod preferences;
pub mod recurrence;
pub mod redact;
pub mod retention;
pub mod time;

pub use agenda::AgendaDue;
pub use duration::HumanDuration;
pub use events::{EventKind, RecurringTaskDue, ReminderDue, EVENT_SOURCE};
pub use ids::{DeliveryId, EndpointId, RecurringTaskId, ReminderId, TaskId, UserId};
pub use preferences::{Days, PreferenceError, QuietHours};
pub use recurrence::{CatchUp, Pattern, RecurrenceError, Schedule};
pub use retention::{Retention, RetentionError};
