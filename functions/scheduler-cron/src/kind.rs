//! The two kinds of item the scheduler publishes — due reminders and due recurring-task
//! occurrences — behind one [`Kind`]: how a batch is claimed, which events it gives, what an
//! acknowledged event marks, and how that is counted and logged.
//!
//! Apart so that the claim → publish → mark loop (`pass.rs`) is written once: what differs
//! between the kinds is here, what they share (the acknowledgements, the failures, when a
//! loop stops) there. The occurrences' catch-up is decided in `catch_up.rs`, without writing;
//! its writes are the named steps at the end of this file.

use crate::catch_up::{decide_all, Decision};
use crate::pass::{PassReport, LOG_TARGET};
use chrono::{DateTime, Utc};
use todo_events_domain::events::Outgoing;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{RecurringTaskDue, RecurringTaskId, ReminderDue, ReminderId};
use todo_events_store::recur::Occurrence;
use todo_events_store::scheduler::{ClaimRequest, ClaimedOccurrence, ClaimedReminder};
use todo_events_store::{Malformed, Store, StoreError};

/// The store as one scheduler writes it: its claims are `owner`'s.
pub(crate) struct Db<'a> {
    pub(crate) store: &'a Store,
    pub(crate) owner: &'a str,
}

/// One kind of item: what the loop in `pass.rs` needs to know of it.
pub(crate) trait Kind {
    /// A claimed row.
    type Claimed;
    /// What an acknowledged event marks published.
    type Target;
    /// The item's name in the "published again" warning.
    const WHAT: &'static str;

    /// Claims a batch of due rows.
    async fn claim(&self, db: &Db<'_>, claim: &ClaimRequest<'_>) -> Result<Vec<Self::Claimed>, StoreError>;
    /// How many of the claimed rows are published again.
    fn again(claimed: &[Self::Claimed]) -> usize;
    /// The batch's events, in claim order, each with what it marks; the writes the batch
    /// needs before publishing made.
    async fn events(
        &self,
        db: &Db<'_>,
        claimed: Vec<Self::Claimed>,
        report: &mut PassReport,
    ) -> Result<Vec<(Self::Target, Outgoing)>, StoreError>;
    /// Logs one acknowledged event.
    fn acknowledged(target: &Self::Target, event: &Outgoing);
    /// Marks the acknowledged items published, where `db.owner` still holds their claims.
    async fn mark(&self, db: &Db<'_>, acked: &[Self::Target], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Counts (and logs) the items marked.
    fn count(acked: &[Self::Target], report: &mut PassReport);
}

/// Due reminders: one `dev.todo.reminder.due` each.
pub(crate) struct Reminders;

impl Kind for Reminders {
    type Claimed = ClaimedReminder;
    type Target = ReminderId;
    const WHAT: &'static str = "reminder";

    async fn claim(&self, db: &Db<'_>, c: &ClaimRequest<'_>) -> Result<Vec<ClaimedReminder>, StoreError> {
        (db.store)
            .claim_reminders(c.owner, c.now, c.lease, c.limit, c.republish_after)
            .await
    }

    fn again(claimed: &[ClaimedReminder]) -> usize {
        claimed.iter().filter(|r| r.again).count()
    }

    async fn events(
        &self,
        _: &Db<'_>,
        claimed: Vec<ClaimedReminder>,
        _: &mut PassReport,
    ) -> Result<Vec<(ReminderId, Outgoing)>, StoreError> {
        let event = |r: &ClaimedReminder| {
            Outgoing::from(&ReminderDue {
                reminder_id: r.id,
                task_id: r.task_id,
                user_id: r.user_id,
                remind_at: r.remind_at,
            })
        };
        Ok(claimed.iter().map(|r| (r.id, event(r))).collect())
    }

    fn acknowledged(id: &ReminderId, event: &Outgoing) {
        tracing::debug!(target: LOG_TARGET, event_id = %event.id, "reminder {id} is due: event published");
    }

    /// Marks even an empty batch, as the reminders always did (a statement without rows).
    async fn mark(&self, db: &Db<'_>, acked: &[ReminderId], now: DateTime<Utc>) -> Result<(), StoreError> {
        db.store.mark_reminders_published(db.owner, acked, now).await?;
        Ok(())
    }

    fn count(acked: &[ReminderId], report: &mut PassReport) {
        report.reminders_published += acked.len();
        if let (Some(first), Some(last)) = (acked.first(), acked.last()) {
            tracing::info!(
                target: LOG_TARGET,
                "{} due reminder(s) published (reminders {first} … {last}; each event id at debug level)",
                acked.len()
            );
        }
    }
}

/// Due recurring-task occurrences: one `dev.todo.recurring-task.due` each, after the
/// catch-up policy had its say.
pub(crate) struct Occurrences;

impl Kind for Occurrences {
    type Claimed = Result<ClaimedOccurrence, Malformed>;
    type Target = Occurrence;
    const WHAT: &'static str = "occurrence";

    async fn claim(&self, db: &Db<'_>, c: &ClaimRequest<'_>) -> Result<Vec<Self::Claimed>, StoreError> {
        (db.store)
            .claim_occurrences(c.owner, c.now, c.lease, c.limit, c.republish_after)
            .await
    }

    fn again(claimed: &[Self::Claimed]) -> usize {
        claimed
            .iter()
            .filter(|c| c.as_ref().is_ok_and(|c| c.again))
            .count()
    }

    /// Decides (`catch_up.rs`), then makes the writes decided, row by row in claim order.
    async fn events(
        &self,
        db: &Db<'_>,
        claimed: Vec<Self::Claimed>,
        report: &mut PassReport,
    ) -> Result<Vec<(Occurrence, Outgoing)>, StoreError> {
        let current = now();
        let mut due = Vec::with_capacity(claimed.len());
        for decision in decide_all(&claimed, current) {
            match decision {
                Decision::Publish(d) => due.push(d),
                Decision::FastForward {
                    due: d,
                    latest,
                    skipped,
                } => due.push(fast_forward(db, d, latest, skipped, current, report).await?),
                Decision::Deactivate { id, reason } => deactivate(db, id, &reason, current).await?,
            }
        }
        Ok(due
            .iter()
            .map(|d| ((d.recurring_task_id, d.occurrence_at), Outgoing::from(d)))
            .collect())
    }

    fn acknowledged((id, occurrence): &Occurrence, event: &Outgoing) {
        tracing::info!(
            target: LOG_TARGET,
            event_id = %event.id,
            "recurring task {} is due ({}): event published",
            id,
            rfc3339(*occurrence)
        );
    }

    /// One statement for the batch; none without an acknowledged event.
    async fn mark(&self, db: &Db<'_>, acked: &[Occurrence], now: DateTime<Utc>) -> Result<(), StoreError> {
        if !acked.is_empty() {
            db.store.mark_occurrences_published(db.owner, acked, now).await?;
        }
        Ok(())
    }

    fn count(acked: &[Occurrence], report: &mut PassReport) {
        report.occurrences_published += acked.len();
    }
}

/// Step "fast-forward": moves a claimed task past its missed occurrences (`latest` policy)
/// and returns what to publish: the latest occurrence, or the one claimed when the row
/// moved under us (recur advanced it).
async fn fast_forward(
    db: &Db<'_>,
    due: RecurringTaskDue,
    latest: DateTime<Utc>,
    skipped: usize,
    now: DateTime<Utc>,
    report: &mut PassReport,
) -> Result<RecurringTaskDue, StoreError> {
    let id = due.recurring_task_id;
    if !db
        .store
        .fast_forward(db.owner, id, due.occurrence_at, latest, now)
        .await?
    {
        return Ok(due);
    }
    report.occurrences_skipped += skipped;
    tracing::info!(
        target: LOG_TARGET,
        recurring_task_id = id.get(),
        "recurring task {} missed {skipped} occurrence(s); catching up with the latest only ({})",
        id,
        rfc3339(latest)
    );
    Ok(RecurringTaskDue {
        occurrence_at: latest,
        ..due
    })
}

/// Step "deactivate": a claimed recurring task whose stored row or rule cannot be used
/// would be claimed again at every pass. A row without a usable id is only logged.
async fn deactivate(db: &Db<'_>, id: i64, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    tracing::error!(target: LOG_TARGET, recurring_task_id = id, "recurring task deactivated: {reason}");
    match RecurringTaskId::new(id) {
        Some(id) => db.store.deactivate_recurring(db.owner, id, now).await,
        None => Ok(()),
    }
}
