//! The missed-occurrence policy as a decision: what to do with each claimed recurring task,
//! decided without the store or the clock (`now` comes in). The pass then makes the writes
//! a decision names (fast-forward, deactivate) in claim order, as named steps of its own
//! (`kind.rs`).
//!
//! Apart because deciding used to write as it went: its cases (the `all` policy, nothing
//! missed, missed occurrences skipped, an unusable rule, a malformed row) could be tried only
//! against a database; here each is a row of a table test.

use chrono::{DateTime, Utc};
use todo_events_domain::{CatchUp, RecurringTaskDue};
use todo_events_store::scheduler::ClaimedOccurrence;
use todo_events_store::Malformed;

/// What to do with one claimed recurring task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Publish the occurrence claimed.
    Publish(RecurringTaskDue),
    /// `latest` policy with occurrences missed: move the task's next occurrence from the one
    /// claimed (`due`) forward to `latest` and publish `latest`, `skipped` missed occurrences
    /// counted (those before `latest`, the one claimed included). Should the row have moved
    /// meanwhile (recur advanced it), publish `due` as claimed and count nothing.
    FastForward {
        due: RecurringTaskDue,
        latest: DateTime<Utc>,
        skipped: usize,
    },
    /// Deactivate the task (the row's id as stored): its row or its rule cannot be used, and
    /// it would be claimed again at every pass.
    Deactivate { id: i64, reason: String },
}

/// The decision for each claimed row, in claim order.
pub fn decide_all(claimed: &[Result<ClaimedOccurrence, Malformed>], now: DateTime<Utc>) -> Vec<Decision> {
    claimed.iter().map(|c| decide(c, now)).collect()
}

/// The decision for one claimed row: its next occurrence, or under the `latest` policy the
/// latest one already due at `now` (skipping the missed ones before it).
pub fn decide(claimed: &Result<ClaimedOccurrence, Malformed>, now: DateTime<Utc>) -> Decision {
    let c = match claimed {
        Ok(c) => c,
        Err(malformed) => {
            return Decision::Deactivate {
                id: malformed.id,
                reason: malformed.to_string(),
            }
        }
    };
    let due = RecurringTaskDue {
        recurring_task_id: c.id,
        user_id: c.user_id,
        occurrence_at: c.next_occurrence,
    };
    if c.catch_up == CatchUp::All {
        return Decision::Publish(due);
    }
    let latest = match c.schedule.latest_due(c.next_occurrence, now) {
        Ok(latest) => latest,
        Err(e) => {
            return Decision::Deactivate {
                id: c.id.get(),
                reason: e.to_string(),
            }
        }
    };
    if latest == c.next_occurrence {
        return Decision::Publish(due);
    }
    let skipped = c
        .schedule
        .occurrences(Some(c.next_occurrence))
        .take_while(|t| t.as_ref().is_ok_and(|t| *t < latest))
        .count()
        + 1;
    Decision::FastForward { due, latest, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use todo_events_domain::recurrence::parse_local;
    use todo_events_domain::{RecurringTaskId, Schedule, UserId};
    use CatchUp::{All, Latest};

    const HOURLY: &str = "FREQ=HOURLY";
    const DAILY: &str = "FREQ=DAILY";

    /// `h` hours and `m` minutes after the series' start, 2026-01-05 09:00 UTC.
    fn at(h: i64, m: i64) -> DateTime<Utc> {
        let start = parse_local("2026-01-05T09:00:00").unwrap().and_utc();
        start + Duration::hours(h) + Duration::minutes(m)
    }

    /// Task 7 of user 3: `rule` in UTC from the series' start, claimed `next` hours after it.
    fn task(rule: &str, catch_up: CatchUp, next: i64) -> Result<ClaimedOccurrence, Malformed> {
        let dtstart = parse_local("2026-01-05T09:00:00").unwrap();
        Ok(ClaimedOccurrence {
            id: RecurringTaskId::new(7).unwrap(),
            user_id: UserId::new(3).unwrap(),
            schedule: Schedule::parse(rule, dtstart, "UTC").unwrap(),
            next_occurrence: at(next, 0),
            catch_up,
            again: false,
        })
    }

    fn due(h: i64) -> RecurringTaskDue {
        RecurringTaskDue {
            recurring_task_id: RecurringTaskId::new(7).unwrap(),
            user_id: UserId::new(3).unwrap(),
            occurrence_at: at(h, 0),
        }
    }

    fn publish(h: i64) -> Decision {
        Decision::Publish(due(h))
    }

    fn forward(claimed: i64, latest: i64, skipped: usize) -> Decision {
        let (due, latest) = (due(claimed), at(latest, 0));
        Decision::FastForward { due, latest, skipped }
    }

    fn malformed(id: i64) -> Result<ClaimedOccurrence, Malformed> {
        let detail = "rrule: not a rule".into();
        Err(Malformed {
            table: "recurring_tasks",
            id,
            detail,
        })
    }

    fn deactivate(id: i64) -> Decision {
        let reason = format!("recurring_tasks row {id}: rrule: not a rule");
        Decision::Deactivate { id, reason }
    }

    /// (case, claimed row, now, decision)
    type Row = (
        &'static str,
        Result<ClaimedOccurrence, Malformed>,
        DateTime<Utc>,
        Decision,
    );

    #[rustfmt::skip] // a table: one row a line
    fn rows() -> Vec<Row> {
        vec![
            ("all: each missed one in turn", task(HOURLY, All, 0), at(3, 30), publish(0)),
            ("latest, due just now", task(HOURLY, Latest, 0), at(0, 0), publish(0)),
            ("latest, the next not due yet", task(HOURLY, Latest, 0), at(0, 59), publish(0)),
            ("latest, the next due now", task(HOURLY, Latest, 0), at(1, 0), forward(0, 1, 1)),
            ("latest, three hours missed", task(HOURLY, Latest, 0), at(3, 30), forward(0, 3, 3)),
            ("latest, three days down", task(DAILY, Latest, 0), at(72, 30), forward(0, 72, 3)),
            ("latest, claimed mid-series", task(DAILY, Latest, 48), at(97, 0), forward(48, 96, 2)),
            ("latest, rule ended", task("FREQ=HOURLY;COUNT=3", Latest, 0), at(6, 0), forward(0, 2, 2)),
            ("a malformed row", malformed(12), at(0, 0), deactivate(12)),
            ("a malformed row, no usable id", malformed(0), at(0, 0), deactivate(0)),
        ]
    }

    #[test]
    fn each_claimed_row_gets_its_decision() {
        let mut checked = 0;
        for (case, claimed, now, expected) in rows() {
            assert_eq!(decide(&claimed, now), expected, "{case}");
            checked += 1;
        }
        assert_eq!(checked, 10, "every row checked");
    }

    #[test]
    fn a_batch_is_decided_row_by_row_in_claim_order() {
        let claimed: Vec<_> = rows().into_iter().map(|(_, claimed, _, _)| claimed).collect();
        let now = at(3, 30);
        let decided = decide_all(&claimed, now);
        assert_eq!(decided.len(), 10, "one decision per claimed row");
        for (decision, claimed) in decided.iter().zip(&claimed) {
            assert_eq!(*decision, decide(claimed, now));
        }
        assert_eq!(
            decided[4],
            forward(0, 3, 3),
            "the fifth row is the fifth decision"
        );
    }
}
