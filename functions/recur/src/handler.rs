//! The recur logic: one occurrence event in, at most one task instance out.
//!
//! Events are handled in batches (the consumer mode hands over what a partition has
//! queued; HTTP hands over one): the rows of the whole batch are read in one statement,
//! each event is decided in memory, and the instances of the batch are created in one
//! transaction, both over one connection. A batch never holds two events of one recurring task (see
//! [`distinct_runs`]), so each event is decided against the row as its predecessor left it.

use chrono::Duration;
use serde_json::json;
use todo_events_domain::recurrence::parse_local;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{EventKind, RecurringTaskDue, Schedule};
use todo_events_host::function::distinct_runs;
use todo_events_host::{Failure, Function, Outcome, Reply};
use todo_events_store::recur::{Instantiate, Instantiated, RecurringState};
use todo_events_store::{RecurringTaskRow, Store};

pub struct Recur {
    store: Store,
}

impl Recur {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// The stored rule of a recurring task, parsed.
pub fn schedule_of(rt: &RecurringTaskRow) -> Result<Schedule, String> {
    let dtstart = parse_local(&rt.dtstart).map_err(|e| e.to_string())?;
    Schedule::parse(&rt.rrule, dtstart, &rt.timezone).map_err(|e| e.to_string())
}

/// What one event needs, decided from the rows read for it.
enum Decision {
    /// Nothing to create: the answer is known (skipped, duplicate).
    Answer(Reply),
    /// Create the instance and advance to `next` (`None`: the rule has ended).
    Create {
        next: Option<chrono::DateTime<chrono::Utc>>,
        reminders: Vec<chrono::DateTime<chrono::Utc>>,
    },
}

fn details_of(due: &RecurringTaskDue) -> serde_json::Value {
    json!({
        "recurring_task_id": due.recurring_task_id, "user_id": due.user_id,
        "occurrence_at": rfc3339(due.occurrence_at),
    })
}

fn skip(due: &RecurringTaskDue, reason: String) -> Result<Decision, Failure> {
    tracing::info!(recurring_task_id = %due.recurring_task_id, "occurrence skipped: {reason}");
    Ok(Decision::Answer(Reply::new(
        Outcome::Skipped,
        reason,
        details_of(due),
    )))
}

/// Decides one event from its recurring task (if it exists) and its existing instance.
fn decide(
    due: &RecurringTaskDue,
    rt: Option<&RecurringTaskRow>,
    existing: Option<i64>,
) -> Result<Decision, Failure> {
    let occurrence = due.occurrence_at;
    let Some(rt) = rt else {
        return skip(
            due,
            format!(
                "recurring task {} does not exist (deleted?)",
                due.recurring_task_id
            ),
        );
    };
    if rt.user_id != due.user_id.get() {
        return skip(
            due,
            format!(
                "the event names user {}, but recurring task {} belongs to user {}",
                due.user_id, rt.id, rt.user_id
            ),
        );
    }
    if let Some(task_id) = existing.filter(|_| !rt.active) {
        let mut details = details_of(due);
        details["task_id"] = json!(task_id);
        return Ok(Decision::Answer(Reply::new(
            Outcome::Duplicate,
            "the instance exists already",
            details,
        )));
    }
    if !rt.active {
        return skip(
            due,
            format!(
                "recurring task {} is no longer active (its rule ended or it was stopped)",
                rt.id
            ),
        );
    }
    let schedule = match schedule_of(rt) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(recurring_task_id = rt.id, "stored rule cannot be evaluated: {e}");
            return skip(
                due,
                format!("the stored rule of recurring task {} is invalid: {e}", rt.id),
            );
        }
    };
    let is_occurrence = schedule
        .is_occurrence(occurrence)
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if !is_occurrence {
        return skip(
            due,
            format!(
                "{} is not an occurrence of the rule {}",
                rfc3339(occurrence),
                rt.rrule
            ),
        );
    }
    if existing.is_none() && rt.next_occurrence.is_some_and(|next| occurrence < next) {
        return skip(
            due,
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
    let reminders = rt
        .reminder_offsets()
        .into_iter()
        .map(|secs| occurrence - Duration::seconds(secs))
        .collect();
    Ok(Decision::Create { next, reminders })
}

/// The answer once the instance transaction ran.
fn created(
    due: &RecurringTaskDue,
    rt: &RecurringTaskRow,
    next: Option<chrono::DateTime<chrono::Utc>>,
    done: Instantiated,
) -> Reply {
    let occurrence = due.occurrence_at;
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
                recurring_task_id = rt.id,
                task_id,
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
                recurring_task_id = rt.id,
                "duplicate occurrence event for {}",
                rfc3339(occurrence)
            );
            Reply::new(Outcome::Duplicate, "the instance exists already", details)
        }
    }
}

impl Recur {
    /// One run of events of distinct recurring tasks: one read, one transaction, over one
    /// connection.
    async fn handle_run(&self, events: &[(String, RecurringTaskDue)]) -> Vec<Result<Reply, Failure>> {
        let all_fail = |f: Failure| events.iter().map(|_| Err(f.clone())).collect();
        let mut conn = match self.store.run_connection().await {
            Ok(conn) => conn,
            Err(e) => return all_fail(e.into()),
        };
        let pairs: Vec<_> = events
            .iter()
            .map(|(_, d)| (d.recurring_task_id.get(), d.occurrence_at))
            .collect();
        let RecurringState {
            tasks: rows,
            instances: existing,
        } = match conn.recurring_state(&pairs).await {
            Ok(state) => state,
            Err(e) => return all_fail(e.into()),
        };
        let mut answers: Vec<Option<Result<Reply, Failure>>> = Vec::with_capacity(events.len());
        let mut plans = Vec::new();
        let mut jobs = Vec::new();
        let now = now();
        for (i, (_, due)) in events.iter().enumerate() {
            let id = due.recurring_task_id.get();
            let rt = rows.get(&id);
            match decide(due, rt, existing.get(&(id, due.occurrence_at)).copied()) {
                Ok(Decision::Answer(reply)) => answers.push(Some(Ok(reply))),
                Err(failure) => answers.push(Some(Err(failure))),
                Ok(Decision::Create { next, reminders }) => {
                    let rt = rt.expect("decided to create for an existing row");
                    answers.push(None);
                    plans.push((i, rt, next));
                    jobs.push(Instantiate {
                        recurring: rt,
                        occurrence: due.occurrence_at,
                        reminders,
                        next,
                        now,
                    });
                }
            }
        }
        match conn.instantiate_many(&jobs).await {
            Ok(done) => {
                for ((i, rt, next), done) in plans.into_iter().zip(done) {
                    answers[i] = Some(Ok(created(&events[i].1, rt, next, done)));
                }
            }
            Err(e) => {
                let failure = Failure::from(e);
                for (i, _, _) in plans {
                    answers[i] = Some(Err(failure.clone()));
                }
            }
        }
        answers
            .into_iter()
            .map(|a| a.expect("every event answered"))
            .collect()
    }
}

impl Function for Recur {
    const NAME: &'static str = "recur";
    const ACCEPTS: EventKind = EventKind::RecurringTaskDue;
    const REPLY_PREFIX: &'static str = "dev.todo.task-instance";
    type Data = RecurringTaskDue;

    async fn handle(&self, event_id: &str, due: RecurringTaskDue) -> Result<Reply, Failure> {
        self.handle_run(&[(event_id.to_owned(), due)])
            .await
            .pop()
            .expect("one answer per event")
    }

    async fn handle_batch(&self, events: Vec<(String, RecurringTaskDue)>) -> Vec<Result<Reply, Failure>> {
        let mut answers = Vec::with_capacity(events.len());
        for run in distinct_runs(&events, |(_, d)| d.recurring_task_id.get()) {
            answers.extend(self.handle_run(run).await);
        }
        answers
    }

    async fn ready(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}
