//! Writes the todo application itself would make: users, tasks, reminders and recurring
//! tasks. Used by `todo-events seed` and `demo`, and by tests to set up their world.
//!
//! The statements are in `postgres/seed.rs` and `sqlite/seed.rs`, and the [`crate::Store`]
//! methods that pick one in `store/seed.rs`; this module holds what they take (and the SQL
//! text both backends share) and calls no backend, so the backends import it without a
//! circle.

use crate::error::StoreError;
use crate::rows::Channel;
use chrono::{DateTime, Utc};
use todo_events_domain::recurrence::parse_local;
use todo_events_domain::{CatchUp, Schedule, UserId};

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub timezone: &'a str,
}

#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub user_id: UserId,
    pub title: &'a str,
    pub description: &'a str,
    pub due_at: Option<DateTime<Utc>>,
}

/// An endpoint as the app registers it (docs/CHANNELS.md): a webhook (`target` URL,
/// `format`, optional `secret`) or a Web Push subscription (`target` the push service's
/// endpoint, `p256dh` and `auth` from the browser's `PushSubscription`).
#[derive(Clone)]
pub struct NewEndpoint<'a> {
    pub user_id: UserId,
    pub channel: Channel,
    pub target: &'a str,
    pub format: &'a str,
    pub secret: Option<&'a str>,
    pub p256dh: Option<&'a str>,
    pub auth: Option<&'a str>,
}

pub(crate) const INSERT_ENDPOINT: &str = "INSERT INTO channel_endpoints \
     (user_id, channel, target, format, secret, p256dh, auth) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
pub(crate) const ENDPOINT_ACTIVE: &str = "SELECT active FROM channel_endpoints WHERE id = $1";
pub(crate) const SET_REMINDER_CHANNELS: &str = "UPDATE reminders SET channels = $2 WHERE id = $1";

/// A user's preferences as the app writes them (docs/PREFERENCES.md): `None` leaves the
/// quiet hours off (both times) or the days at their default (every day).
#[derive(Debug, Clone)]
pub struct Preferences<'a> {
    pub quiet_start: Option<&'a str>,
    pub quiet_end: Option<&'a str>,
    pub quiet_days: Option<&'a str>,
    pub locale: &'a str,
    pub channels: &'a str,
    /// The daily agenda's local time (`HH:MM`); `None`: no agenda.
    pub agenda_at: Option<&'a str>,
}

/// Writes a user's preferences, replacing those stored (the same text on both backends).
pub(crate) const SET_PREFERENCES: &str = "INSERT INTO user_preferences \
     (user_id, quiet_start, quiet_end, quiet_days, locale, channels, agenda_at) \
     VALUES ($1, $2, $3, COALESCE($4, 'mon,tue,wed,thu,fri,sat,sun'), $5, $6, $7) \
     ON CONFLICT (user_id) DO UPDATE SET quiet_start = excluded.quiet_start, \
       quiet_end = excluded.quiet_end, quiet_days = excluded.quiet_days, \
       locale = excluded.locale, channels = excluded.channels, agenda_at = excluded.agenda_at";

/// A recurring task as the app submits it: the rule as text, checked before it is stored.
#[derive(Debug, Clone)]
pub struct NewRecurringTask<'a> {
    pub user_id: UserId,
    pub title: &'a str,
    pub description: &'a str,
    /// Normalised RRULE text (see `todo_events_domain::Schedule::rule`).
    pub rrule: &'a str,
    pub timezone: &'a str,
    /// Local wall-clock DTSTART, `YYYY-MM-DDTHH:MM:SS`.
    pub dtstart: &'a str,
    pub next_occurrence: DateTime<Utc>,
    pub catch_up: CatchUp,
    /// Seconds before each occurrence at which its instance gets a reminder.
    pub reminder_offsets: &'a [i64],
}

impl NewRecurringTask<'_> {
    /// A rule, zone or DTSTART that cannot describe a recurrence (malformed, forbidden by
    /// RFC 5545, unknown zone, or never producing an occurrence) is refused with the reason,
    /// before anything is written.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let refused = |e: todo_events_domain::RecurrenceError| {
            StoreError::Invalid(format!("recurring task refused: {e}"))
        };
        let dtstart = parse_local(self.dtstart).map_err(refused)?;
        Schedule::parse(self.rrule, dtstart, self.timezone).map_err(refused)?;
        Ok(())
    }
}

/// Bulk synthetic data for trials and benchmarks: `users` users, each reminder on its own
/// task, all due at `due_at`.
#[derive(Debug, Clone)]
pub struct Bulk<'a> {
    pub users: usize,
    pub reminders: usize,
    pub recurring: usize,
    pub due_at: DateTime<Utc>,
    pub recurring_rule: &'a str,
    pub recurring_dtstart: &'a str,
}
