//! Step 2, decide and plan: what each event asks for, from its reminder's row and the clock.
//!
//! [`decide`] is pure: skip (the reminder is gone, cancelled, its task closed, or the ids
//! name another one), moved, done (its occurrence was sent or failed for good: the
//! reminder's own state says so, whether or not its deliveries are still kept), not due
//! yet, or send. A moved reminder's event is a duplicate
//! when its own time was delivered already, which the read found out with the reminder
//! ([`Found`]), else stale ([`moved`]); a reminder to send is planned ([`crate::plan`], pure)
//! into its deliveries. So the step reads nothing. An event answered here never reaches the
//! later steps, and what its answer says to the log is written here, by the step
//! ([`Answer::logged`]).
//!
//! An answer goes back to whoever sent the event, so what it says names only what was wrong
//! with the request (an id that matches nothing, a `remind_at` that is not the reminder's),
//! never what is stored (another time, another owner); the stored side goes to the log.

use super::answer::{details_of, Answer};
use super::delivery::Planned;
use super::log::Log;
use super::preferences::{deferred, preference_problems, quiet_until};
use super::{Contexts, Notify};
use crate::plan::{plan, Plan};
use chrono::{DateTime, Duration, Utc};
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::ReminderDue;
use todo_events_host::{Event, Failure, Outcome, Reply};
use todo_events_store::notify::Found;
use todo_events_store::{Channel, Malformed, ReminderContext, ReminderState};

#[cfg(test)]
mod tests;

/// What a reminder event asks for, decided from its reminder's row and the clock alone.
#[derive(Debug, PartialEq)]
enum Decision<'c> {
    /// Nothing to send: what the caller is told, and what the log gets beside it.
    Skip { reason: &'static str, detail: String },
    /// The reminder is due later than now (beyond the clock-skew tolerance): nothing is sent
    /// and nothing written, so the scheduler still sends it at its time.
    NotDue,
    /// The reminder was moved (`to`): the event is stale, or a duplicate if its own time
    /// was delivered already (`sent`).
    Moved { to: DateTime<Utc>, sent: bool },
    /// The reminder's occurrence at the event's time is over (`sent`, or `failed` for
    /// good): the event is a duplicate. Decided from the reminder's state, so it holds after
    /// the retention has deleted the occurrence's deliveries (docs/DESIGN.md, "History").
    Done { state: ReminderState },
    /// The reminder came due inside its user's quiet hours: put it off to their end
    /// (written once, by [`super::Notify::defer`]).
    Defer { until: DateTime<Utc> },
    /// Put off before, to `until`, which is still ahead: nothing sent, nothing written.
    Deferred { until: DateTime<Utc> },
    /// Plan, claim and make the deliveries of this reminder.
    Send(&'c ReminderContext),
}

/// An event once decided: answered already, or its deliveries are planned.
pub(super) enum Decided<'c> {
    /// Skipped, not due, moved, or nothing to deliver (its log written).
    Answered(Result<Reply, Failure>),
    /// Answered from its deliveries' ends ([`super::Notify::answer`]).
    Delivering(Delivering<'c>),
    /// To be put off to the end of its user's quiet hours ([`super::Notify::defer`]).
    Deferring(&'c ReminderDue, DateTime<Utc>),
}

/// An event whose deliveries are planned: its reminder, what waits, what leads nowhere.
pub(super) struct Delivering<'c> {
    pub due: &'c ReminderDue,
    pub ctx: &'c ReminderContext,
    /// Deliveries this notify cannot make now (Web Push without a key): why.
    pub held: Option<String>,
    /// What the reminder names that leads nowhere (an unknown channel, a channel without
    /// endpoints).
    pub notes: Vec<String>,
}

/// The answer to an event whose ids match no reminder, whether none exists or it belongs to
/// another task or user: the two are told apart only in the log.
const NO_SUCH_REMINDER: &str = "no reminder matches the event's reminder_id, task_id and user_id";

/// Decides one event from its reminder as read (`None`: no such reminder) at `now`,
/// allowing `tolerance` of clock skew.
fn decide<'c>(
    due: &ReminderDue,
    found: Option<&'c Found>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Decision<'c> {
    let ctx = match readable(due, found.map(|f| &f.context)) {
        Ok(ctx) => ctx,
        Err(skip) => return skip,
    };
    if let Some(skip) = not_relevant(due, ctx) {
        return skip;
    }
    if ctx.remind_at != due.remind_at {
        let sent = found.is_some_and(|f| f.sent_at_event_time);
        return Decision::Moved {
            to: ctx.remind_at,
            sent,
        };
    }
    if matches!(ctx.state, ReminderState::Sent | ReminderState::Failed) {
        return Decision::Done { state: ctx.state };
    }
    if ctx.remind_at > now + tolerance {
        return Decision::NotDue;
    }
    match ctx.deferred_until {
        // Put off once: when its time has come it goes out, quiet hours or not.
        Some(until) if until > now + tolerance => Decision::Deferred { until },
        Some(_) => Decision::Send(ctx),
        None => match quiet_until(ctx, now.max(ctx.remind_at)) {
            Some(until) => Decision::Defer { until },
            None => Decision::Send(ctx),
        },
    }
}

/// The event's reminder, or the skip when there is none: it does not exist, or its stored
/// row cannot be read.
fn readable<'c>(
    due: &ReminderDue,
    row: Option<&'c Result<ReminderContext, Malformed>>,
) -> Result<&'c ReminderContext, Decision<'c>> {
    match row {
        None => Err(Decision::Skip {
            reason: NO_SUCH_REMINDER,
            detail: format!("reminder {} does not exist (deleted?)", due.reminder_id),
        }),
        Some(Err(malformed)) => Err(Decision::Skip {
            reason: "the stored reminder cannot be read (the function's log says why)",
            detail: format!("the stored reminder cannot be read: {malformed}"),
        }),
        Some(Ok(ctx)) => Ok(ctx),
    }
}

/// The skip when reminder `ctx` is not the event's to send: it belongs to another task or
/// user, it was cancelled, or its task is closed.
fn not_relevant(due: &ReminderDue, ctx: &ReminderContext) -> Option<Decision<'static>> {
    if ctx.task_id != due.task_id || ctx.user_id != due.user_id {
        return Some(Decision::Skip {
            reason: NO_SUCH_REMINDER,
            detail: format!(
                "the event names task {} and user {}, but reminder {} belongs to task {} and user {}",
                due.task_id, due.user_id, due.reminder_id, ctx.task_id, ctx.user_id
            ),
        });
    }
    if ctx.state == ReminderState::Cancelled {
        return Some(Decision::Skip {
            reason: "the reminder was cancelled",
            detail: format!("reminder {} was cancelled", due.reminder_id),
        });
    }
    if ctx.task_status.is_closed() {
        return Some(Decision::Skip {
            reason: "the reminder's task is closed",
            detail: format!("task {} is {} already", ctx.task_id, ctx.task_status),
        });
    }
    None
}

/// `skipped` (pure), telling the caller `reason` and the log `detail`.
fn skipped(due: &ReminderDue, reason: &str, detail: String) -> Answer {
    Answer {
        reply: Ok(Reply::new(Outcome::Skipped, reason, details_of(due))),
        logs: vec![Log::Skipped(detail)],
    }
}

/// The answer to an event that came before its reminder was due (pure).
fn not_due_yet(due: &ReminderDue) -> Answer {
    let reply = Reply::not_due_yet(
        "the reminder is not due yet: remind_at is later than now; it is sent when due",
        details_of(due),
    );
    Answer {
        reply: Ok(reply),
        logs: vec![Log::Early],
    }
}

/// The answer to an event whose reminder was moved to `to` (pure): a duplicate if its own
/// time was delivered already (on any channel: `sent`), else stale (skipped).
fn moved(due: &ReminderDue, to: DateTime<Utc>, sent: bool) -> Answer {
    if sent {
        let reply = Reply::new(Outcome::Duplicate, "already sent for this time", details_of(due));
        return Answer::silent(Ok(reply));
    }
    skipped(
        due,
        "remind_at does not match the reminder (it was moved)",
        format!("reminder {} was moved to {}", due.reminder_id, rfc3339(to)),
    )
}

/// The answer to an event whose reminder's occurrence is over (pure): `duplicate`, saying
/// how it ended.
fn done(due: &ReminderDue, state: ReminderState) -> Answer {
    let reason = match state {
        ReminderState::Failed => "already failed for good for this time",
        _ => "already sent for this time",
    };
    Answer {
        reply: Ok(Reply::new(Outcome::Duplicate, reason, details_of(due))),
        logs: vec![Log::Duplicate(reason.to_owned())],
    }
}

/// The answer to a reminder whose channels lead nowhere (pure): skipped, saying what the
/// reminder names (the plan's notes), never an address or URL.
fn nothing_to_deliver(due: &ReminderDue, notes: &[String]) -> Answer {
    let reason = match notes.is_empty() {
        true => "the reminder names no channel".to_owned(),
        false => notes.join("; "),
    };
    let reason = format!("nothing to deliver: {reason}");
    skipped(due, &reason, reason.clone())
}

impl Notify {
    /// Step 2: decides each event ([`decide`]) and plans the deliveries of each one to send
    /// ([`Notify::planned`]). The events in their order, each answered or delivering, and
    /// every delivery planned.
    pub(super) fn decide<'c>(
        &self,
        events: &'c [Event<ReminderDue>],
        contexts: &'c Contexts,
    ) -> (Vec<Decided<'c>>, Vec<Planned<'c>>) {
        let clock = now();
        let (mut decided, mut planned) = (Vec::with_capacity(events.len()), Vec::new());
        for (event_id, due) in events {
            let answer = match decide(due, contexts.get(&due.reminder_id), clock, self.config.clock_skew) {
                Decision::Send(ctx) => match self.planned(event_id, due, ctx) {
                    Ok((delivering, deliveries)) => {
                        planned.extend(deliveries);
                        decided.push(Decided::Delivering(delivering));
                        continue;
                    }
                    Err(nothing) => nothing,
                },
                Decision::Skip { reason, detail } => skipped(due, reason, detail),
                Decision::NotDue => not_due_yet(due),
                Decision::Moved { to, sent } => moved(due, to, sent),
                Decision::Done { state } => done(due, state),
                Decision::Defer { until } => {
                    decided.push(Decided::Deferring(due, until));
                    continue;
                }
                Decision::Deferred { until } => deferred(due, until, "it was put off before"),
            };
            decided.push(Decided::Answered(answer.logged(due)));
        }
        (decided, planned)
    }

    /// The deliveries `ctx` asks for ([`plan`]; its notes go to the log) with the event they
    /// answer, or the event's answer when there is nothing to deliver.
    fn planned<'c>(
        &self,
        event_id: &'c str,
        due: &'c ReminderDue,
        ctx: &'c ReminderContext,
    ) -> Result<(Delivering<'c>, Vec<Planned<'c>>), Answer> {
        let Plan {
            deliveries,
            held,
            notes,
            log,
        } = plan(ctx, self.checks());
        for line in log.iter().chain(&preference_problems(ctx)) {
            tracing::warn!(reminder_id = %due.reminder_id, "{line}");
        }
        if deliveries.is_empty() && held.is_none() {
            return Err(nothing_to_deliver(due, &notes));
        }
        if held.is_some() {
            self.metrics.count(Channel::WebPush, "held");
        }
        let deliveries = deliveries.into_iter().map(|(route, target)| Planned {
            event_id,
            ctx,
            route,
            target,
        });
        Ok((
            Delivering {
                due,
                ctx,
                held,
                notes,
            },
            deliveries.collect(),
        ))
    }
}
