//! Rows as the functions read them, typed once at the edge of the store.
//!
//! The database keeps states, statuses, policies and rules as text (readable with `psql`,
//! the same on both backends). Each backend reads a row into a private raw shape, and
//! [`TryFrom`] turns that into the typed row here: an id is a typed id, a state is an
//! enum, the rule is a parsed [`Schedule`](todo_events_domain::Schedule). A stored value
//! that does not parse is a [`Malformed`] error naming the table and row, never a silent
//! default; code past the store never compares string literals or re-parses a rule.
//!
//! One module per concern, each re-exported here (so every type keeps its `rows::X` and
//! crate-root path): `values` (the stored states, statuses and channels as enums),
//! `notify` (the reminder context, the delivery records), `recur` (the recurring task and
//! its rule), `scheduler` (claimed reminders and occurrences). This module keeps what they
//! all use to read a row: [`Malformed`] and the `parse` / `id` / `typed` helpers. Nothing
//! here calls a backend; the backends import these rows.

mod notify;
mod recur;
mod scheduler;
mod values;

pub(crate) use notify::{endpoints, DeliveryRaw, ReminderContextRaw};
pub use notify::{DeliveryRow, Endpoint, ReminderContext};
pub(crate) use recur::RecurringTaskRaw;
pub use recur::{RecurringTaskRow, ReminderOffsets};
pub use scheduler::{ClaimedOccurrence, ClaimedReminder};
pub(crate) use scheduler::{ClaimedOccurrenceRaw, ClaimedReminderRaw};
pub use values::{Channel, Channels, DeliveryStatus, Priority, ReminderState, TaskStatus};

use std::fmt;

/// A stored value that cannot be read as what it stands for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} row {id}: {detail}")]
pub struct Malformed {
    pub table: &'static str,
    pub id: i64,
    pub detail: String,
}

impl Malformed {
    pub(crate) fn new(table: &'static str, id: i64, detail: impl fmt::Display) -> Self {
        Self {
            table,
            id,
            detail: detail.to_string(),
        }
    }
}

/// Reads a stored value with its `FromStr`, naming the row when it does not parse.
pub(crate) fn parse<T: std::str::FromStr>(
    table: &'static str,
    id: i64,
    column: &str,
    text: &str,
) -> Result<T, Malformed> {
    text.parse()
        .map_err(|_| Malformed::new(table, id, format!("{column} {text:?} is not a known value")))
}

/// Reads a stored id (ids are positive).
pub(crate) fn id<T>(
    table: &'static str,
    row: i64,
    column: &str,
    value: i64,
    new: fn(i64) -> Option<T>,
) -> Result<T, Malformed> {
    new(value).ok_or_else(|| Malformed::new(table, row, format!("{column} {value} is not an id")))
}

/// Converts every raw row, failing with the first malformed one (for reads whose rows
/// must all be usable).
pub(crate) fn typed<R, T: TryFrom<R, Error = Malformed>>(rows: Vec<R>) -> Result<Vec<T>, Malformed> {
    rows.into_iter().map(T::try_from).collect()
}
