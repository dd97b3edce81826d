//! Step 7, status: what came of each reminder recorded for the todo app, in one statement
//! (`notification_events`; docs/PREFERENCES.md, "Delivery status"), which the scheduler
//! publishes as CloudEvents of the reply's type and id.
//!
//! Only a reminder's own event says what came of it: one whose ids and time are the stored
//! reminder's. So an event for a moved reminder's old time, an early one, or one naming no
//! reminder records nothing (a sender that is not the scheduler cannot fill the todo app's
//! feed), and `duplicate` records nothing (the first answer did). The row's id is the reply
//! event's (`<event id>/<outcome>`) and the statement writes each id once, so a redelivery
//! that ends the same way adds nothing. A failure to record is logged and counted, never
//! answered: the reminder's effects are done, and a status lost must not make its event
//! come again.

use super::{Contexts, Notify};
use todo_events_domain::time::now;
use todo_events_domain::ReminderDue;
use todo_events_host::{Event, Failure, Outcome, Reply};
use todo_events_store::status::NewStatus;

/// The status events of a batch's answers (pure): see the module docs.
pub(super) fn statuses(
    events: &[Event<ReminderDue>],
    contexts: &Contexts,
    answers: &[Result<Reply, Failure>],
) -> Vec<NewStatus> {
    let own = |due: &ReminderDue| {
        matches!(contexts.get(&due.reminder_id).map(|f| &f.context), Some(Ok(ctx))
            if ctx.task_id == due.task_id && ctx.user_id == due.user_id && ctx.remind_at == due.remind_at)
    };
    events
        .iter()
        .zip(answers)
        .filter_map(|((event_id, due), answer)| {
            let reply = answer.as_ref().ok()?;
            let recorded = matches!(
                reply.outcome,
                Outcome::Done(_) | Outcome::Failed | Outcome::Deferred | Outcome::Skipped
            );
            (recorded && !reply.early && own(due)).then(|| NewStatus {
                id: reply.id_for(event_id),
                ty: format!("dev.todo.notification.{}", reply.outcome.word()),
                outcome: reply.outcome.word(),
                reminder_id: due.reminder_id,
                task_id: due.task_id,
                user_id: due.user_id,
                remind_at: due.remind_at,
                reason: reply.reason.clone(),
                data: reply.data_for(event_id),
            })
        })
        .collect()
}

impl Notify {
    /// Step 7 (see the module docs).
    pub(super) async fn record_statuses(
        &self,
        events: &[Event<ReminderDue>],
        contexts: &Contexts,
        answers: &[Result<Reply, Failure>],
    ) {
        let statuses = statuses(events, contexts, answers);
        if let Err(e) = self.store.record_statuses(&statuses, now()).await {
            self.metrics.status_lost(statuses.len());
            tracing::warn!(
                "{} status event(s) not recorded (the reminders' effects are done; the todo app \
                 will not see these outcomes): {e}",
                statuses.len()
            );
        }
    }
}
