//! The scheduler's rows: what a claim returns, reminders due and occurrences due. Apart
//! because only the scheduler's claims return them.

use super::recur::StoredRule;
use super::{id, parse, Malformed};
use chrono::{DateTime, Utc};
use todo_events_domain::{CatchUp, RecurringTaskId, ReminderId, Schedule, TaskId, UserId};

/// A claimed reminder, ready to become a `dev.todo.reminder.due` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedReminder {
    pub id: ReminderId,
    pub task_id: TaskId,
    pub user_id: UserId,
    pub remind_at: DateTime<Utc>,
    /// Published before, without effect after the republish delay.
    pub again: bool,
}

/// [`ClaimedReminder`] as both backends return it.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct ClaimedReminderRaw {
    id: i64,
    task_id: i64,
    user_id: i64,
    remind_at: DateTime<Utc>,
    again: bool,
}

impl TryFrom<ClaimedReminderRaw> for ClaimedReminder {
    type Error = Malformed;
    fn try_from(r: ClaimedReminderRaw) -> Result<Self, Malformed> {
        const T: &str = "reminders";
        let row = r.id;
        Ok(Self {
            id: id(T, row, "id", r.id, ReminderId::new)?,
            task_id: id(T, row, "task_id", r.task_id, TaskId::new)?,
            user_id: id(T, row, "user_id", r.user_id, UserId::new)?,
            remind_at: r.remind_at,
            again: r.again,
        })
    }
}

/// A claimed recurring task whose `next_occurrence` is due.
#[derive(Debug, Clone)]
pub struct ClaimedOccurrence {
    pub id: RecurringTaskId,
    pub user_id: UserId,
    pub schedule: Schedule,
    pub next_occurrence: DateTime<Utc>,
    pub catch_up: CatchUp,
    /// This occurrence was published before, without effect after the republish delay.
    pub again: bool,
}

/// [`ClaimedOccurrence`] as both backends return it.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct ClaimedOccurrenceRaw {
    pub(crate) id: i64,
    user_id: i64,
    #[sqlx(flatten)]
    rule: StoredRule,
    pub(crate) next_occurrence: DateTime<Utc>,
    catch_up: String,
    again: bool,
}

impl TryFrom<ClaimedOccurrenceRaw> for ClaimedOccurrence {
    type Error = Malformed;
    fn try_from(r: ClaimedOccurrenceRaw) -> Result<Self, Malformed> {
        const T: &str = "recurring_tasks";
        let row = r.id;
        Ok(Self {
            id: id(T, row, "id", r.id, RecurringTaskId::new)?,
            user_id: id(T, row, "user_id", r.user_id, UserId::new)?,
            schedule: r.rule.schedule(T, row)?,
            next_occurrence: r.next_occurrence,
            catch_up: parse(T, row, "catch_up", &r.catch_up)?,
            again: r.again,
        })
    }
}
