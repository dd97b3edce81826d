//! The recur logic: one occurrence event in, at most one task instance out.
//!
//! A batch of events of distinct recurring tasks (HTTP hands over one, the consumer what a
//! partition has queued) goes through three steps over one connection: read (the batch's
//! recurring tasks and existing instances, in one statement), [`decide`] each event (pure and
//! silent: its [`Decision`] carries the instance job it acts on, or the answer and what the
//! log should say), write (the batch's instances in one transaction). A batch never holds two events of one
//! recurring task (the host splits it, see `Function::Key`), so each event is decided
//! against the row as its predecessor left it.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{EventKind, RecurringTaskDue, RecurringTaskId, TaskId};
use todo_events_host::config::DEFAULT_CLOCK_SKEW_TOLERANCE;
use todo_events_host::{Answers, Event, Failure, Function, Outcome, Reply};
use todo_events_store::recur::{Instantiate, Instantiated, RecurringState};
use todo_events_store::{Malformed, RecurringTaskRow, Store};

pub struct Recur {
    store: Store,
    /// How long before its occurrence an event may arrive and still be acted on
    /// (`CLOCK_SKEW_TOLERANCE`).
    clock_skew: Duration,
}

impl Recur {
    /// recur on `store`, with the default clock-skew tolerance.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            clock_skew: DEFAULT_CLOCK_SKEW_TOLERANCE,
        }
    }

    /// The same with `CLOCK_SKEW_TOLERANCE` set (what the binary reads).
    pub fn with_clock_skew(self, clock_skew: Duration) -> Self {
        Self { clock_skew, ..self }
    }
}

/// What one event needs, decided from the rows read for it.
enum Decision<'a> {
    /// Nothing to create: the answer is known (skipped, duplicate), and what the log says.
    Answer(Reply, Option<Log>),
    /// Create the instance and advance the recurring task it names.
    Create(Instantiate<'a>),
}

/// What the log says about an answered event, written by the caller ([`Log::write`]) so that
/// [`decide`] stays pure and silent. The texts hold what is stored; the answer never does.
enum Log {
    /// Skipped: why, with what is stored.
    Skipped(String),
    /// The stored row cannot be read.
    Malformed(String),
    /// Before its time.
    Early(DateTime<Utc>),
}

impl Log {
    fn write(&self, due: &RecurringTaskDue) {
        let id = due.recurring_task_id;
        match self {
            Self::Skipped(detail) => tracing::info!(recurring_task_id = %id, "occurrence skipped: {detail}"),
            Self::Malformed(detail) => {
                tracing::error!(recurring_task_id = %id, "stored row cannot be read: {detail}")
            }
            Self::Early(occurrence) => tracing::warn!(
                recurring_task_id = %id,
                "occurrence event before its time, nothing created: occurrence_at {} is later than now \
                 (beyond CLOCK_SKEW_TOLERANCE); the scheduler publishes it when it is due",
                rfc3339(*occurrence)
            ),
        }
    }
}

fn details_of(due: &RecurringTaskDue) -> serde_json::Value {
    json!({
        "recurring_task_id": due.recurring_task_id, "user_id": due.user_id,
        "occurrence_at": rfc3339(due.occurrence_at),
    })
}

/// `skipped`, telling the caller `reason` (what was wrong with the request, never what is
/// stored: another owner, the rule, the next occurrence) and the log `detail`.
fn skip<'a>(due: &RecurringTaskDue, reason: &str, detail: String) -> Result<Decision<'a>, Failure> {
    let reply = Reply::new(Outcome::Skipped, reason, details_of(due));
    Ok(Decision::Answer(reply, Some(Log::Skipped(detail))))
}

/// The answer to an event whose ids match no recurring task, whether none exists or it
/// belongs to another user: the two are told apart only in the log.
const NO_SUCH_TASK: &str = "no recurring task matches the event's recurring_task_id and user_id";

/// Decides one event from its recurring task (if it exists) and its existing instance, at
/// `now` with `tolerance` of clock skew: an occurrence later than that creates nothing and
/// moves nothing (the scheduler publishes it when it is due).
fn decide<'a>(
    due: &RecurringTaskDue,
    row: Option<&'a Result<RecurringTaskRow, Malformed>>,
    existing: Option<TaskId>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Decision<'a>, Failure> {
    let occurrence = due.occurrence_at;
    let rt = match row {
        None => {
            return skip(
                due,
                NO_SUCH_TASK,
                format!(
                    "recurring task {} does not exist (deleted?)",
                    due.recurring_task_id
                ),
            )
        }
        Some(Err(malformed)) => {
            let reply = Reply::new(
                Outcome::Skipped,
                "the stored recurring task cannot be read (the function's log says why)",
                details_of(due),
            );
            return Ok(Decision::Answer(
                reply,
                Some(Log::Malformed(malformed.to_string())),
            ));
        }
        Some(Ok(rt)) => rt,
    };
    if rt.user_id != due.user_id {
        return skip(
            due,
            NO_SUCH_TASK,
            format!(
                "the event names user {}, but recurring task {} belongs to user {}",
                due.user_id, rt.id, rt.user_id
            ),
        );
    }
    if occurrence > now + tolerance {
        let reply = Reply::not_due_yet(
            "the occurrence is not due yet: occurrence_at is later than now; it is created when due",
            details_of(due),
        );
        return Ok(Decision::Answer(reply, Some(Log::Early(occurrence))));
    }
    if let Some(task_id) = existing.filter(|_| !rt.active) {
        let mut details = details_of(due);
        details["task_id"] = json!(task_id);
        let reply = Reply::new(Outcome::Duplicate, "the instance exists already", details);
        return Ok(Decision::Answer(reply, None));
    }
    if !rt.active {
        return skip(
            due,
            "the recurring task is no longer active",
            format!(
                "recurring task {} is no longer active (its rule ended or it was stopped)",
                rt.id
            ),
        );
    }
    let schedule = &rt.schedule;
    let is_occurrence = schedule
        .is_occurrence(occurrence)
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if !is_occurrence {
        return skip(
            due,
            "occurrence_at is not an occurrence of the recurring task",
            format!(
                "{} is not an occurrence of the rule {}",
                rfc3339(occurrence),
                schedule.rule()
            ),
        );
    }
    if existing.is_none() && rt.next_occurrence.is_some_and(|next| occurrence < next) {
        return skip(
            due,
            "stale: the recurring task has moved past occurrence_at",
            format!(
                "stale: the recurring task has moved on to {} (missed occurrences are caught up by policy {})",
                rt.next_occurrence.map(rfc3339).unwrap_or_default(),
                rt.catch_up
            ),
        );
    }
    let next = schedule
        .next_after(occurrence)
        .map_err(|e| Failure::Internal(e.to_string()))?;
    let cursor = match next {
        Some(next) => schedule
            .cursor_for(next)
            .map_err(|e| Failure::Internal(e.to_string()))?,
        None => None,
    };
    Ok(Decision::Create(Instantiate {
        recurring: rt,
        occurrence,
        reminders: rt.reminder_offsets.before(occurrence),
        next,
        cursor,
        now,
    }))
}

/// The answer once the instance transaction ran `job`.
fn created(due: &RecurringTaskDue, job: &Instantiate<'_>, done: Instantiated) -> Reply {
    let (rt, next, occurrence) = (job.recurring, job.next, due.occurrence_at);
    let mut details = details_of(due);
    details["next_occurrence"] = json!(next.map(rfc3339));
    details["active"] = json!(next.is_some() || !done.advanced);
    match done.created_task_id {
        Some(task_id) => {
            details["task_id"] = json!(task_id);
            details["reminders_created"] = json!(done.reminders_created);
            let then = match (done.advanced, next) {
                (true, Some(n)) => format!("next occurrence {}", rfc3339(n)),
                (true, None) => "the rule has ended, recurring task deactivated".to_owned(),
                (false, _) => "next occurrence unchanged".to_owned(),
            };
            tracing::info!(
                recurring_task_id = rt.id.get(),
                task_id = task_id.get(),
                "task instance created: \"{}\" for {} (task {task_id}); {then}",
                rt.title,
                rfc3339(occurrence)
            );
            Reply::new(
                Outcome::Done("created"),
                format!("instance created; {then}"),
                details,
            )
            .due_at(occurrence)
        }
        None => {
            details["task_id"] = json!(done.existing_task_id);
            tracing::info!(
                recurring_task_id = rt.id.get(),
                "duplicate occurrence event for {}",
                rfc3339(occurrence)
            );
            Reply::new(Outcome::Duplicate, "the instance exists already", details)
        }
    }
}

impl Recur {
    /// Read: the recurring tasks and existing instances of the batch, in one statement.
    async fn read(
        &self,
        session: &mut todo_events_store::recur::Session,
        events: &[Event<RecurringTaskDue>],
    ) -> Result<RecurringState, Failure> {
        let occurrences: Vec<(RecurringTaskId, _)> = events
            .iter()
            .map(|(_, due)| (due.recurring_task_id, due.occurrence_at))
            .collect();
        Ok(session.recurring_state(&occurrences).await?)
    }
}

impl Function for Recur {
    const NAME: &'static str = "recur";
    const ACCEPTS: EventKind = EventKind::RecurringTaskDue;
    const REPLY_PREFIX: &'static str = "dev.todo.task-instance";
    type Data = RecurringTaskDue;
    type Key = RecurringTaskId;

    fn key(due: &RecurringTaskDue) -> RecurringTaskId {
        due.recurring_task_id
    }

    fn store(&self) -> &Store {
        &self.store
    }

    /// Read → decide → write, over one connection.
    async fn handle_distinct(&self, events: &[Event<RecurringTaskDue>]) -> Vec<Result<Reply, Failure>> {
        let mut session = match self.store.session().await {
            Ok(session) => session,
            Err(e) => return Answers::all(events.len(), e.into()),
        };
        let state = match self.read(&mut session, events).await {
            Ok(state) => state,
            Err(failure) => return Answers::all(events.len(), failure),
        };
        let mut answers = Answers::new(events.len());
        let (mut creating, mut jobs) = (Vec::new(), Vec::new());
        let now = now();
        for (i, (_, due)) in events.iter().enumerate() {
            let row = state.tasks.get(&due.recurring_task_id);
            let existing = state.instances.get(&(due.recurring_task_id, due.occurrence_at));
            match decide(due, row, existing.copied(), now, self.clock_skew) {
                Ok(Decision::Create(job)) => {
                    creating.push(i);
                    jobs.push(job);
                }
                Ok(Decision::Answer(reply, log)) => {
                    if let Some(log) = log {
                        log.write(due);
                    }
                    answers.set(i, Ok(reply));
                }
                Err(failure) => answers.set(i, Err(failure)),
            }
        }
        // Write: the batch's instances in one transaction.
        match session.instantiate(&jobs).await {
            Ok(done) => {
                for ((i, job), done) in creating.into_iter().zip(&jobs).zip(done) {
                    answers.set(i, Ok(created(&events[i].1, job, done)));
                }
            }
            Err(e) => {
                let failure = Failure::from(e);
                creating
                    .iter()
                    .for_each(|i| answers.set(*i, Err(failure.clone())));
            }
        }
        answers.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use todo_events_domain::recurrence::parse_local;
    use todo_events_domain::{CatchUp, Schedule, UserId};
    use todo_events_store::{Priority, ReminderOffsets};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn due(occurrence: &str) -> RecurringTaskDue {
        RecurringTaskDue {
            recurring_task_id: RecurringTaskId::new(4).unwrap(),
            user_id: UserId::new(3).unwrap(),
            occurrence_at: at(occurrence),
        }
    }

    /// Every day at 09:00 in Berlin (08:00 UTC in winter), next due 2026-11-30.
    fn row() -> RecurringTaskRow {
        let dtstart = parse_local("2026-11-01T09:00:00").unwrap();
        RecurringTaskRow {
            id: RecurringTaskId::new(4).unwrap(),
            user_id: UserId::new(3).unwrap(),
            title: "Stand-up".into(),
            description: String::new(),
            priority: Priority::Medium,
            schedule: Schedule::parse("FREQ=DAILY", dtstart, "Europe/Berlin").unwrap(),
            next_occurrence: Some(at("2026-11-30T08:00:00Z")),
            active: true,
            catch_up: CatchUp::Latest,
            reminder_offsets: ReminderOffsets::from_seconds(&[900]),
        }
    }

    /// A minute after the task's next occurrence was due.
    fn clock() -> DateTime<Utc> {
        at("2026-11-30T08:01:00Z")
    }

    const TOLERANCE: chrono::Duration = chrono::Duration::seconds(10);

    fn decided(
        occurrence: &str,
        change: impl FnOnce(&mut RecurringTaskRow),
        existing: Option<i64>,
    ) -> String {
        let mut rt = row();
        change(&mut rt);
        let rt = Ok(rt);
        match decide(
            &due(occurrence),
            Some(&rt),
            existing.and_then(TaskId::new),
            clock(),
            TOLERANCE,
        ) {
            Ok(Decision::Create(job)) => format!(
                "create, next {}, reminders {:?}",
                job.next.map(rfc3339).unwrap_or_default(),
                job.reminders.iter().copied().map(rfc3339).collect::<Vec<_>>()
            ),
            Ok(Decision::Answer(reply, _)) => format!("{}: {}", reply.outcome.word(), reply.reason),
            Err(failure) => format!("failure: {failure}"),
        }
    }

    #[test]
    fn a_due_occurrence_is_created_with_its_reminders_and_the_next_one() {
        assert_eq!(
            decided("2026-11-30T08:00:00Z", |_| {}, None),
            "create, next 2026-12-01T08:00:00Z, reminders [\"2026-11-30T07:45:00Z\"]"
        );
    }

    #[test]
    fn stale_foreign_inactive_and_wrong_times_are_answered_without_a_write_or_telling_what_is_stored() {
        assert_eq!(
            decided("2026-11-29T08:00:00Z", |_| {}, None),
            "skipped: stale: the recurring task has moved past occurrence_at"
        );
        assert_eq!(
            decided("2026-11-30T07:30:00Z", |_| {}, None),
            "skipped: occurrence_at is not an occurrence of the recurring task"
        );
        assert_eq!(
            decided(
                "2026-11-30T08:00:00Z",
                |r| r.user_id = UserId::new(8).unwrap(),
                None
            ),
            format!("skipped: {NO_SUCH_TASK}")
        );
        assert_eq!(
            decided("2026-11-30T08:00:00Z", |r| r.active = false, None),
            "skipped: the recurring task is no longer active"
        );
        assert_eq!(
            decided("2026-11-30T08:00:00Z", |r| r.active = false, Some(12)),
            "duplicate: the instance exists already"
        );
    }

    #[test]
    fn an_occurrence_later_than_now_creates_nothing_and_moves_nothing() {
        let not_due =
            "skipped: the occurrence is not due yet: occurrence_at is later than now; it is created when due";
        // The next occurrence a day ahead, one 400 days ahead, one just beyond the tolerance.
        assert_eq!(decided("2026-12-01T08:00:00Z", |_| {}, None), not_due);
        assert_eq!(decided("2028-01-04T08:00:00Z", |_| {}, None), not_due);
        assert_eq!(
            decided("2026-11-30T08:01:11Z", |r| r.next_occurrence = None, None),
            not_due
        );
        let mut rt = row();
        rt.next_occurrence = Some(at("2026-12-01T08:00:00Z"));
        let rt = Ok(rt);
        let early = decide(&due("2026-12-01T08:00:00Z"), Some(&rt), None, clock(), TOLERANCE);
        assert!(matches!(
            early,
            Ok(Decision::Answer(Reply { early: true, .. }, Some(Log::Early(_))))
        ));
        // Within the tolerance it is acted on.
        assert!(decided("2026-11-30T08:00:00Z", |_| {}, None).starts_with("create"));
    }

    #[test]
    fn a_missing_or_malformed_row_is_skipped_without_its_content() {
        let d = due("2026-11-30T08:00:00Z");
        let reason = |r: Result<Decision, Failure>| match r {
            Ok(Decision::Answer(reply, _)) => reply.reason,
            _ => panic!("expected an answer"),
        };
        assert_eq!(reason(decide(&d, None, None, clock(), TOLERANCE)), NO_SUCH_TASK);
        let malformed = Err(Malformed {
            table: "recurring_tasks",
            id: 4,
            detail: "reminder_offsets \"x\" is not a JSON array of seconds".into(),
        });
        assert_eq!(
            reason(decide(&d, Some(&malformed), None, clock(), TOLERANCE)),
            "the stored recurring task cannot be read (the function's log says why)"
        );
    }
}
