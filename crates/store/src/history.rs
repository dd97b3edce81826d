//! What todo-events keeps of what happened, and for how long (docs/DESIGN.md, "History:
//! retention, whose rows, erasing a user").
//!
//! Deliveries, the agendas' deliveries and the status events are todo-events' own record,
//! and without an end they grow by one row per reminder, channel and endpoint for ever. The
//! retention deletes them in bounded batches ([`Prune`]), each batch one short statement
//! that locks only the rows it deletes, skipping any another pruner holds: notify's claims
//! and records never wait for a batch (they touch `sending` rows, which a batch leaves alone
//! while their reminder is still at that time), and a batch never waits for them.
//!
//! "Once" does not rest on these rows alone: a reminder whose occurrence is done is `sent` or
//! `failed`, and notify answers an event for it `duplicate` from that state before it looks
//! for a delivery (functions/notify, `handler/decide.rs`); an event for an earlier time of a
//! moved reminder is `skipped` (stale) when the delivery that would have made it `duplicate`
//! was pruned; an agenda is stale once the next day's is due. So a redelivered or replayed
//! event older than the retention sends nothing.
//!
//! Erasing a user ([`Erased`]) removes or anonymises every row of todo-events' own that names
//! them or an address of theirs, and ends what would send to them (their open reminders
//! cancelled, their recurring tasks stopped). The todo app's rows (users, tasks, reminders,
//! recurring tasks) are the app's to delete; a deletion cascades to all of the above but the
//! status events, which carry no foreign key ([`ERASE_STATUSES`] is what an app that deletes
//! its users itself runs beside).

use chrono::{DateTime, NaiveDate, Utc};

/// One batch of the retention: what may go, and how many rows of each table at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Deliveries and agenda deliveries finished before this go (`None`: kept for good).
    pub deliveries_before: Option<DateTime<Utc>>,
    /// Status events recorded before this go (`None`: kept for good).
    pub statuses_before: Option<DateTime<Utc>>,
    /// Rows per table and batch.
    pub batch: i64,
}

impl Prune {
    /// The agendas' deliveries go by date: those of the days before the cutoff's (an agenda
    /// is stale once the next day's is due, wherever its user lives).
    pub(crate) fn agenda_before(&self) -> Option<NaiveDate> {
        self.deliveries_before
            .map(|at| at.date_naive().pred_opt().unwrap_or(at.date_naive()))
    }
}

/// The retention's statements of one backend (`$1` the cutoff, `$2` the batch), each
/// deleting one batch of its table, oldest first.
pub(crate) struct PruneSql {
    /// Deliveries finished before the cutoff.
    pub finished: &'static str,
    /// Deliveries left `sending` whose lease ended before the cutoff and whose reminder no
    /// longer waits for them.
    pub abandoned: &'static str,
    /// Agenda deliveries of the days before the cutoff's date.
    pub agendas: &'static str,
    /// Status events recorded before the cutoff.
    pub statuses: &'static str,
}

/// What one batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Deliveries finished before the cutoff, and those left `sending` whose reminder has
    /// moved on from their time (nothing will take them over).
    pub deliveries: u64,
    pub agenda_deliveries: u64,
    pub statuses: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.deliveries + self.agenda_deliveries + self.statuses
    }

    /// Whether any table had a whole batch to delete: there may be more.
    pub fn full(&self, batch: i64) -> bool {
        let batch = batch.max(1) as u64;
        self.deliveries >= batch || self.agenda_deliveries >= batch || self.statuses >= batch
    }

    pub fn add(&mut self, other: Pruned) {
        self.deliveries += other.deliveries;
        self.agenda_deliveries += other.agenda_deliveries;
        self.statuses += other.statuses;
    }
}

impl std::fmt::Display for Pruned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} deliveries, {} agenda deliveries, {} status events",
            self.deliveries, self.agenda_deliveries, self.statuses
        )
    }
}

/// What erasing a user changed, table by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Open reminders cancelled (pending, publishing or published).
    pub reminders_cancelled: u64,
    /// Active recurring tasks stopped.
    pub recurring_stopped: u64,
    /// Deliveries whose recipient and detail were removed (the rows stay: they are what
    /// answers a redelivered event `duplicate`).
    pub deliveries_anonymised: u64,
    pub agenda_deliveries: u64,
    pub statuses: u64,
    /// Endpoints deleted, with their URLs, secrets and keys.
    pub endpoints: u64,
    pub preferences: u64,
    /// The latest lease of a delivery of theirs still being sent when the erasure ran: what
    /// that send records afterwards (its recipient) is removed by erasing again after it.
    pub in_flight_until: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Erased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} reminders cancelled, {} recurring tasks stopped, {} deliveries anonymised, \
             {} agenda deliveries, {} status events, {} endpoints and {} preferences deleted",
            self.reminders_cancelled,
            self.recurring_stopped,
            self.deliveries_anonymised,
            self.agenda_deliveries,
            self.statuses,
            self.endpoints,
            self.preferences
        )
    }
}

/// The status events of user `$1`: what an app that deletes its users itself deletes in the
/// same transaction (everything else of todo-events' follows the user's row by its foreign
/// keys). The same text on both backends.
pub const ERASE_STATUSES: &str = "DELETE FROM notification_events WHERE user_id = $1";

/// The erasure's statements, the same on both backends, in the order they run: `$1` the
/// user, and `$2` now where the flag says so. The reminders first: from then on no event of
/// theirs sends.
pub(crate) const ERASE: [(&str, bool); 7] = [
    (
        "UPDATE reminders SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, \
         updated_at = $2 WHERE user_id = $1 AND state IN ('pending', 'publishing', 'published')",
        true,
    ),
    (
        "UPDATE recurring_tasks SET active = FALSE, lease_owner = NULL, lease_until = NULL, \
         updated_at = $2 WHERE user_id = $1 AND active",
        true,
    ),
    // A claim given back for a retry keeps a reason in `detail`, which is what marks it
    // given back: the reason goes, the mark stays.
    (
        "UPDATE deliveries SET recipient = NULL, \
         detail = CASE WHEN detail IS NULL THEN NULL ELSE 'erased on request' END \
         WHERE reminder_id IN (SELECT id FROM reminders WHERE user_id = $1) \
         AND (recipient IS NOT NULL OR (detail IS NOT NULL AND detail <> 'erased on request'))",
        false,
    ),
    ("DELETE FROM agenda_deliveries WHERE user_id = $1", false),
    (ERASE_STATUSES, false),
    ("DELETE FROM channel_endpoints WHERE user_id = $1", false),
    ("DELETE FROM user_preferences WHERE user_id = $1", false),
];

/// The latest lease of user `$1`'s deliveries still being sent at `$2`.
pub(crate) const IN_FLIGHT: &str = "SELECT MAX(d.lease_until) FROM deliveries d \
     WHERE d.reminder_id IN (SELECT id FROM reminders WHERE user_id = $1) \
     AND d.status = 'sending' AND d.detail IS NULL AND d.lease_until > $2";

impl Erased {
    /// The counts of [`ERASE`]'s statements, in order.
    pub(crate) fn of(counts: [u64; 7], in_flight_until: Option<DateTime<Utc>>) -> Self {
        let [reminders_cancelled, recurring_stopped, deliveries_anonymised, agenda_deliveries, statuses, endpoints, preferences] =
            counts;
        Erased {
            reminders_cancelled,
            recurring_stopped,
            deliveries_anonymised,
            agenda_deliveries,
            statuses,
            endpoints,
            preferences,
            in_flight_until,
        }
    }
}
