//! recur's side of the database: the instance transaction.
//!
//! One transaction inserts the task instance (unique on recurring task + occurrence) with
//! its reminders and moves `next_occurrence` only if it still equals the event's occurrence.
//! Redelivered, reordered and concurrent events therefore create no second instance and
//! never move the schedule backwards. The consumer mode hands over whole batches: on
//! PostgreSQL a batch (or a single event) is one statement over bound arrays (`UNNEST`), so a
//! hundred events cost about what one does, and one event costs one round trip.
//!
//! The statements are in `postgres/recur.rs` and `sqlite/recur.rs`, and the methods that
//! pick one (the [`crate::Store`]'s and the [`Session`]'s) in `store/recur.rs`; this module
//! holds what both take and give, and the [`Session`] a batch reads and writes over, and
//! calls no backend, so the backends import it without a circle.

use crate::rows::{Malformed, RecurringTaskRow};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use todo_events_domain::{RecurringTaskId, TaskId};

/// What the instance transaction should do.
#[derive(Debug, Clone)]
pub struct Instantiate<'a> {
    pub recurring: &'a RecurringTaskRow,
    pub occurrence: DateTime<Utc>,
    /// Instants of the instance's reminders.
    pub reminders: Vec<DateTime<Utc>>,
    /// The occurrence after this one; `None` when the rule has ended (the recurring task
    /// is then deactivated).
    pub next: Option<DateTime<Utc>>,
    /// The series cursor to keep with the advanced task (`Schedule::cursor_for(next)`;
    /// `None` for rules without COUNT or once the rule has ended).
    pub cursor: Option<String>,
    pub now: DateTime<Utc>,
}

/// What the transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instantiated {
    /// The new task's id, or `None` when the instance already existed.
    pub created_task_id: Option<TaskId>,
    /// The existing instance's id when it already existed.
    pub existing_task_id: Option<TaskId>,
    /// Whether `next_occurrence` moved (it only moves from the event's occurrence).
    pub advanced: bool,
    pub reminders_created: usize,
}

/// A recurring task and an occurrence of it.
pub type Occurrence = (RecurringTaskId, DateTime<Utc>);

/// What recur reads before deciding: the recurring tasks (each typed, or why its row cannot
/// be read), and the instances that exist for the occurrences asked about.
#[derive(Debug, Default)]
pub struct RecurringState {
    pub tasks: HashMap<RecurringTaskId, Result<RecurringTaskRow, Malformed>>,
    pub instances: HashMap<Occurrence, TaskId>,
}

/// One connection for a batch of recur's events: the read before deciding and the write
/// after go over it. On PostgreSQL that is one checkout instead of one per statement, and
/// one release: sqlx tests every released connection with a round trip of its own, so a
/// checkout per statement cost an event two extra round trips (PostgreSQL woken for each).
/// SQLite, in-process and with one connection, keeps using its pool. Its methods, which
/// pick the backend, are in `store/recur.rs`.
pub enum Session {
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    Sqlite(sqlx::SqlitePool),
}

/// Rows of the recur statements, typed (both backends return the same shapes).
pub(crate) mod read {
    use super::Instantiated;
    use crate::rows::{id, Malformed};
    use todo_events_domain::{RecurringTaskId, TaskId};

    pub(crate) fn task_id(raw: i64) -> Result<TaskId, Malformed> {
        id("tasks", raw, "id", raw, TaskId::new)
    }

    pub(crate) fn recurring_task_id(raw: i64) -> Result<RecurringTaskId, Malformed> {
        id("recurring_tasks", raw, "id", raw, RecurringTaskId::new)
    }

    /// What the instance statement returned for one job.
    pub(crate) fn instantiated(
        created: Option<i64>,
        existing: Option<i64>,
        advanced: bool,
        reminders: usize,
    ) -> Result<Instantiated, Malformed> {
        let created_task_id = created.map(task_id).transpose()?;
        Ok(Instantiated {
            existing_task_id: if created.is_some() {
                None
            } else {
                existing.map(task_id).transpose()?
            },
            created_task_id,
            advanced,
            // A created instance gets all its reminders in the same transaction.
            reminders_created: if created.is_some() { reminders } else { 0 },
        })
    }
}
