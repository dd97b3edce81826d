//! recur's rows: a recurring task with its parsed rule and reminder offsets. The stored rule
//! ([`StoredRule`]) lives here, beside the row that reads it first; the scheduler's claimed
//! occurrences read the same columns.

use super::{id, parse, Malformed, Priority};
use chrono::{DateTime, Duration, Utc};
use todo_events_domain::recurrence::parse_local;
use todo_events_domain::{CatchUp, RecurringTaskId, Schedule, UserId};

/// Seconds before each occurrence at which its instance gets a reminder, stored as a JSON
/// array of whole seconds (`[900]`: fifteen minutes before).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReminderOffsets(Vec<Duration>);

impl ReminderOffsets {
    pub fn from_seconds(seconds: &[i64]) -> Self {
        Self(seconds.iter().map(|s| Duration::seconds(*s)).collect())
    }

    /// The reminder instants of an occurrence.
    pub fn before(&self, occurrence: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.0.iter().map(|offset| occurrence - *offset).collect()
    }

    pub(crate) fn to_json(&self) -> String {
        let seconds: Vec<i64> = self.0.iter().map(|d| d.num_seconds()).collect();
        serde_json::to_string(&seconds).expect("integers serialize")
    }

    fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str::<Vec<i64>>(text)
            .map(|s| Self::from_seconds(&s))
            .map_err(|e| format!("reminder_offsets {text:?} is not a JSON array of seconds: {e}"))
    }
}

/// The stored rule of a recurring task (the same columns in every read of one).
#[derive(sqlx_macros::FromRow)]
pub(crate) struct StoredRule {
    rrule: String,
    timezone: String,
    dtstart: String,
    series_cursor: Option<String>,
}

impl StoredRule {
    /// The rule parsed: rule, local DTSTART and zone, resuming from its series cursor
    /// (`Schedule::with_cursor`: one that does not fit is not used).
    pub(super) fn schedule(&self, table: &'static str, row: i64) -> Result<Schedule, Malformed> {
        parse_local(&self.dtstart)
            .and_then(|dtstart| Schedule::parse(&self.rrule, dtstart, &self.timezone))
            .map(|schedule| schedule.with_cursor(self.series_cursor.as_deref()))
            .map_err(|e| Malformed::new(table, row, format!("the stored rule cannot be evaluated: {e}")))
    }
}

/// A recurring task as recur reads it.
#[derive(Debug, Clone)]
pub struct RecurringTaskRow {
    pub id: RecurringTaskId,
    pub user_id: UserId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub schedule: Schedule,
    pub next_occurrence: Option<DateTime<Utc>>,
    pub active: bool,
    pub catch_up: CatchUp,
    pub reminder_offsets: ReminderOffsets,
}

/// [`RecurringTaskRow`] as both backends return it.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct RecurringTaskRaw {
    pub(crate) id: i64,
    user_id: i64,
    title: String,
    description: String,
    priority: String,
    #[sqlx(flatten)]
    rule: StoredRule,
    next_occurrence: Option<DateTime<Utc>>,
    active: bool,
    catch_up: String,
    reminder_offsets: String,
}

impl TryFrom<RecurringTaskRaw> for RecurringTaskRow {
    type Error = Malformed;
    fn try_from(r: RecurringTaskRaw) -> Result<Self, Malformed> {
        const T: &str = "recurring_tasks";
        let row = r.id;
        Ok(Self {
            id: id(T, row, "id", r.id, RecurringTaskId::new)?,
            user_id: id(T, row, "user_id", r.user_id, UserId::new)?,
            title: r.title,
            description: r.description,
            priority: parse(T, row, "priority", &r.priority)?,
            schedule: r.rule.schedule(T, row)?,
            next_occurrence: r.next_occurrence,
            active: r.active,
            catch_up: parse(T, row, "catch_up", &r.catch_up)?,
            reminder_offsets: ReminderOffsets::from_json(&r.reminder_offsets)
                .map_err(|e| Malformed::new(T, row, e))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_offsets_are_seconds_before_and_malformed_json_is_an_error() {
        let offsets = ReminderOffsets::from_json("[900, 0]").unwrap();
        let t = DateTime::<Utc>::from_timestamp(10_000, 0).unwrap();
        assert_eq!(offsets.before(t), [t - Duration::seconds(900), t]);
        assert_eq!(offsets.to_json(), "[900,0]");
        assert!(ReminderOffsets::from_json("[\"15m\"]").is_err());
        assert!(ReminderOffsets::from_json("").is_err());
    }
}
