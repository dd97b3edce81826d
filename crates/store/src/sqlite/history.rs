//! The retention's statements on SQLite (`crate::history` says what they are for; PostgreSQL's,
//! with row locks, are in `postgres/history.rs`). SQLite has one writer: each batch is a short
//! write of its own, between which notify's writes go.

use crate::history::PruneSql;

pub(crate) const PRUNE: PruneSql = PruneSql {
    finished: "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
         WHERE status <> 'sending' AND completed_at < $1 ORDER BY completed_at LIMIT $2)",
    // See PostgreSQL's: a delivery left `sending` goes only once its reminder no longer
    // waits for it.
    abandoned: "DELETE FROM deliveries WHERE id IN (SELECT d.id FROM deliveries d \
         WHERE d.status = 'sending' AND d.lease_until < $1 \
         AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.id = d.reminder_id \
           AND r.remind_at = d.remind_at AND r.state IN ('pending', 'publishing', 'published')) \
         ORDER BY d.lease_until LIMIT $2)",
    agendas: "DELETE FROM agenda_deliveries WHERE id IN (SELECT id FROM agenda_deliveries \
         WHERE agenda_date < $1 ORDER BY agenda_date LIMIT $2)",
    statuses: crate::status::EXPIRE,
};
