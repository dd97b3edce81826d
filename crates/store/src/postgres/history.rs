//! The retention's statements on PostgreSQL (`crate::history` says what they are for; the
//! [`crate::Store`] runs them, `store/history.rs`). Each deletes one batch, oldest first, and
//! skips rows another transaction holds (`SKIP LOCKED`): two schedulers pruning at once
//! split the work, and neither waits for a claim notify holds.

use crate::history::PruneSql;

pub(crate) const PRUNE: PruneSql = PruneSql {
    // Deliveries finished before `$1`, up to `$2`.
    finished: "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
         WHERE status <> 'sending' AND completed_at < $1 \
         ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    // Deliveries left `sending` whose lease ended before `$1` and whose reminder is no
    // longer at their time waiting for them (moved, cancelled, or settled): nothing takes
    // them over any more. One whose reminder still waits stays, however old: it is the
    // scheduler's retry pass's and the claim that makes its event once.
    abandoned: "DELETE FROM deliveries WHERE id IN (SELECT d.id FROM deliveries d \
         WHERE d.status = 'sending' AND d.lease_until < $1 \
         AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.id = d.reminder_id \
           AND r.remind_at = d.remind_at AND r.state IN ('pending', 'publishing', 'published')) \
         ORDER BY d.lease_until LIMIT $2 FOR UPDATE OF d SKIP LOCKED)",
    // Agenda deliveries of the days before `$1`, up to `$2`.
    agendas: "DELETE FROM agenda_deliveries WHERE id IN (SELECT id FROM agenda_deliveries \
         WHERE agenda_date < $1 ORDER BY agenda_date LIMIT $2 FOR UPDATE SKIP LOCKED)",
    // Status events recorded before `$1`, up to `$2` (the scheduler's claims of unpublished
    // ones are skipped, not waited for).
    statuses: "DELETE FROM notification_events WHERE id IN (SELECT id FROM notification_events \
         WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
};
