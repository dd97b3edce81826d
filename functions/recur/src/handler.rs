//! The recur logic: one occurrence event in, at most one task instance out.

use chrono::Duration;
use serde_json::json;
use todo_events_domain::recurrence::parse_local;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{EventKind, RecurringTaskDue, Schedule};
use todo_events_host::{Failure, Function, Outcome, Reply};
use todo_events_store::recur::Instantiate;
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

impl Function for Recur {
    const NAME: &'static str = "recur";
    const ACCEPTS: EventKind = EventKind::RecurringTaskDue;
    const REPLY_PREFIX: &'static str = "dev.todo.task-instance";
    type Data = RecurringTaskDue;

    async fn handle(&self, _event_id: &str, due: RecurringTaskDue) -> Result<Reply, Failure> {
        let occurrence = due.occurrence_at;
        let mut details = json!({
            "recurring_task_id": due.recurring_task_id, "user_id": due.user_id,
            "occurrence_at": rfc3339(occurrence),
        });
        let skip = |reason: String, details: &serde_json::Value| {
            tracing::info!(recurring_task_id = %due.recurring_task_id, "occurrence skipped: {reason}");
            Ok(Reply::new(Outcome::Skipped, reason, details.clone()))
        };
        let Some(rt) = self.store.recurring_task(due.recurring_task_id.get()).await? else {
            return skip(
                format!(
                    "recurring task {} does not exist (deleted?)",
                    due.recurring_task_id
                ),
                &details,
            );
        };
        if rt.user_id != due.user_id.get() {
            return skip(
                format!(
                    "the event names user {}, but recurring task {} belongs to user {}",
                    due.user_id, rt.id, rt.user_id
                ),
                &details,
            );
        }
        let existing = self.store.instance_of(rt.id, occurrence).await?;
        if let Some(task_id) = existing.filter(|_| !rt.active) {
            details["task_id"] = json!(task_id);
            return Ok(Reply::new(
                Outcome::Duplicate,
                "the instance exists already",
                details,
            ));
        }
        if !rt.active {
            return skip(
                format!(
                    "recurring task {} is no longer active (its rule ended or it was stopped)",
                    rt.id
                ),
                &details,
            );
        }
        let schedule = match schedule_of(&rt) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(recurring_task_id = rt.id, "stored rule cannot be evaluated: {e}");
                return skip(
                    format!("the stored rule of recurring task {} is invalid: {e}", rt.id),
                    &details,
                );
            }
        };
        let is_occurrence = schedule
            .is_occurrence(occurrence)
            .map_err(|e| Failure::Internal(e.to_string()))?;
        if !is_occurrence {
            return skip(
                format!(
                    "{} is not an occurrence of the rule {}",
                    rfc3339(occurrence),
                    rt.rrule
                ),
                &details,
            );
        }
        if existing.is_none() && rt.next_occurrence.is_some_and(|next| occurrence < next) {
            return skip(
                format!(
                    "stale: the recurring task has moved on to {} (missed occurrences are caught up by policy {})",
                    rt.next_occurrence.map(rfc3339).unwrap_or_default(),
                    rt.catch_up
                ),
                &details,
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
        let done = self
            .store
            .instantiate(&Instantiate {
                recurring: &rt,
                occurrence,
                reminders,
                next,
                now: now(),
            })
            .await?;
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
                Ok(Reply::new(
                    Outcome::Done("created"),
                    format!("instance created; {then}"),
                    details,
                )
                .due_at(occurrence))
            }
            None => {
                details["task_id"] = json!(done.existing_task_id);
                tracing::info!(
                    recurring_task_id = rt.id,
                    "duplicate occurrence event for {}",
                    rfc3339(occurrence)
                );
                Ok(Reply::new(
                    Outcome::Duplicate,
                    "the instance exists already",
                    details,
                ))
            }
        }
    }

    async fn ready(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}
