//! Step 6, answer: the deliveries' ends back with their events, and one answer per event.
//!
//! The ends find their events by reminder (a batch's reminders are distinct: see
//! `Function::Key`), sorted by route. A reminder whose deliveries were all done before may
//! have been left without its final state (two deliveries of one occurrence finished at once
//! on PostgreSQL, each before seeing the other's commit): those of the batch are settled
//! together, in one statement, before the answers. Then, in the batch's order, each event's
//! ends are counted, its reminder's settling written to the log, and the answer's rules
//! applied ([`answer`]) with their log.

use super::answer::{all_done_before, answer, hide_stored};
use super::decide::{Decided, Delivering};
use super::delivery::{End, Ended};
use super::Notify;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use todo_events_domain::time::now;
use todo_events_domain::ReminderId;
use todo_events_host::{Failure, Reply};
use todo_events_store::notify::Route;
use todo_events_store::{ReminderContext, ReminderState, StoreError};

/// An event on its way to its answer: answered when it was decided, or delivering with its
/// deliveries' ends, sorted by route.
enum Answering<'c> {
    Answered(Result<Reply, Failure>),
    Delivering(Delivering<'c>, Vec<(Route, Ended)>),
}

/// The reminders settled by this batch, or why none could be.
type Settled = Result<HashSet<ReminderId>, StoreError>;

impl Notify {
    /// Step 6: one answer per event, in the batch's order (see the module docs).
    pub(super) async fn answer(
        &self,
        decided: Vec<Decided<'_>>,
        ended: Vec<End>,
    ) -> Vec<Result<Reply, Failure>> {
        let events = with_ends(decided, ended);
        let unsettled: Vec<(ReminderId, DateTime<Utc>)> = events
            .iter()
            .filter_map(|event| match event {
                Answering::Delivering(d, ends) if unsettled(d, ends) => {
                    Some((d.ctx.reminder_id, d.ctx.remind_at))
                }
                _ => None,
            })
            .collect();
        let settled: Settled = self
            .store
            .settle_reminders(&unsettled, now())
            .await
            .map(|moved| moved.into_iter().collect());
        let answer = |event| match event {
            Answering::Answered(answer) => answer,
            Answering::Delivering(d, ends) => self.answer_delivering(d, ends, &settled),
        };
        events.into_iter().map(answer).collect()
    }

    /// The answer to an event from its deliveries' ends: each end counted, its reminder's
    /// settling logged (when it was to be settled), the answer's rules applied ([`answer`])
    /// and their log written, what is stored hidden.
    fn answer_delivering(
        &self,
        event: Delivering<'_>,
        ends: Vec<(Route, Ended)>,
        settled: &Settled,
    ) -> Result<Reply, Failure> {
        for (route, end) in &ends {
            self.metrics.count(route.channel, end.word());
        }
        if unsettled(&event, &ends) {
            log_settled(event.ctx, settled);
        }
        let Delivering {
            due,
            ctx,
            held,
            notes,
        } = event;
        let answered = answer(due, ctx, &ends, held.as_deref(), &notes).logged(due);
        hide_stored(ctx, answered)
    }
}

/// The events with their deliveries' ends, found by reminder and sorted by route (pure).
fn with_ends(decided: Vec<Decided<'_>>, ended: Vec<End>) -> Vec<Answering<'_>> {
    let mut by_reminder: HashMap<ReminderId, Vec<(Route, Ended)>> = HashMap::new();
    for End {
        reminder_id,
        route,
        ended,
    } in ended
    {
        by_reminder.entry(reminder_id).or_default().push((route, ended));
    }
    let with = |event| match event {
        Decided::Answered(answer) => Answering::Answered(answer),
        // Step 2b answers every deferral; one left here is a bug, not a deferral.
        Decided::Deferring(..) => Answering::Answered(Err(Failure::Internal(
            "a deferral reached the answers without being written".into(),
        ))),
        Decided::Delivering(event) => {
            let mut ends = by_reminder.remove(&event.ctx.reminder_id).unwrap_or_default();
            ends.sort_by_key(|(route, _)| *route);
            Answering::Delivering(event, ends)
        }
    };
    decided.into_iter().map(with).collect()
}

/// Whether `event`'s reminder is to be settled (pure): every delivery was done before, and
/// its state does not say so (see `Store::settle_reminders`).
fn unsettled(event: &Delivering<'_>, ends: &[(Route, Ended)]) -> bool {
    all_done_before(ends, event.held.as_deref())
        && !matches!(event.ctx.state, ReminderState::Sent | ReminderState::Failed)
}

/// Says how settling `ctx`'s reminder went: moved on (or not, silently), or why not.
fn log_settled(ctx: &ReminderContext, settled: &Settled) {
    match settled {
        Ok(moved) if moved.contains(&ctx.reminder_id) => tracing::info!(
            reminder_id = ctx.reminder_id.get(),
            "every delivery was finished: the reminder's state is set"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("could not settle reminder {}: {e}", ctx.reminder_id),
    }
}
