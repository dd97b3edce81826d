//! Step 6's rules: the answer to an event from how its deliveries ended (pure and silent).
//!
//! Any delivery still to be made (a retry, or one held back) makes the event come again,
//! after the others are recorded (they answer "duplicate" then). Else: `sent` when a delivery
//! was made now; `skipped` when none was and a webhook or push waits for its own retry or is
//! still sending on its own (nothing delivered now, the event need not come again); `failed` when none was and one
//! failed for good now; `duplicate` when all were done before.
//!
//! The rules also say what the log gets beside the answer ([`Log`]); the step that answers
//! writes it ([`Answer::logged`]). The log keeps what is stored (the address, the task's
//! title, the targets); an answer leaves with those replaced by names ([`hide_stored`]).

use super::delivery::Ended;
use super::log::Log;
use crate::hide::Hidden;
use serde_json::json;
use todo_events_domain::time::rfc3339;
use todo_events_domain::ReminderDue;
use todo_events_host::{Failure, Outcome, Reply};
use todo_events_store::notify::Route;
use todo_events_store::{Channel, DeliveryStatus, ReminderContext};

#[cfg(test)]
mod tests;

/// An event's answer and what the log says about it.
#[derive(Debug)]
pub(super) struct Answer {
    pub reply: Result<Reply, Failure>,
    pub logs: Vec<Log>,
}

impl Answer {
    /// An answer the log need not hear about.
    pub fn silent(reply: Result<Reply, Failure>) -> Self {
        Self {
            reply,
            logs: Vec::new(),
        }
    }

    /// Writes what the log gets about `due`'s answer, and gives the answer.
    pub fn logged(self, due: &ReminderDue) -> Result<Reply, Failure> {
        for log in &self.logs {
            log.write(due);
        }
        self.reply
    }
}

/// The details every answer to `due` carries: the ids and time it names.
pub(super) fn details_of(due: &ReminderDue) -> serde_json::Value {
    json!({
        "reminder_id": due.reminder_id, "task_id": due.task_id,
        "user_id": due.user_id, "remind_at": rfc3339(due.remind_at),
    })
}

/// The answer to event `due` of reminder `ctx` from how each of its deliveries ended
/// (`ended`, by route), what waits (`held`) and the plan's `notes`: see the module docs.
pub(super) fn answer(
    due: &ReminderDue,
    ctx: &ReminderContext,
    ended: &[(Route, Ended)],
    held: Option<&str>,
    notes: &[String],
) -> Answer {
    let retry = ended.iter().find_map(|(_, end)| match end {
        Ended::Retry(failure) => Some(failure.clone()),
        _ => None,
    });
    if let Some(failure) = retry.or_else(|| held.map(Failure::unavailable)) {
        return Answer::silent(Err(failure));
    }
    let details = details(due, ended, notes);
    let ends = Ends::of(ended);
    if !ends.sent.is_empty() {
        return sent(ctx, ended, &ends, details);
    }
    if !ends.scheduled.is_empty() || !ends.sending.is_empty() {
        let reason = format!("nothing delivered now{}", ends.others());
        return Answer {
            reply: Ok(Reply::new(Outcome::Skipped, reason.clone(), details)),
            logs: vec![Log::Answered(reason)],
        };
    }
    if !ends.failed.is_empty() {
        return failed(ended, &ends, details);
    }
    duplicate(ended, details)
}

/// The answer's details: the event's, each delivery's end, the plan's notes, and the
/// e-mail's Message-ID when it was sent now.
fn details(due: &ReminderDue, ended: &[(Route, Ended)], notes: &[String]) -> serde_json::Value {
    let mut details = details_of(due);
    details["deliveries"] = ended.iter().map(|(route, end)| delivery(*route, end)).collect();
    if !notes.is_empty() {
        details["notes"] = json!(notes);
    }
    if let Some((_, Ended::Sent { message_id, .. })) = ended.iter().find(|(r, _)| *r == Route::EMAIL) {
        details["message_id"] = json!(message_id);
    }
    details
}

/// One delivery in the answer's details.
fn delivery(route: Route, end: &Ended) -> serde_json::Value {
    let mut d = json!({
        "channel": route.channel.as_str(),
        "endpoint_id": route.endpoint,
        "outcome": end.word(),
    });
    match end {
        Ended::Sent { message_id, .. } => d["message_id"] = json!(message_id),
        Ended::Failed(why) | Ended::Gone(why) => d["detail"] = json!(why),
        Ended::Duplicate { status, detail } => {
            d["status"] = json!(status.as_str());
            d["detail"] = json!(detail);
        }
        Ended::Retry(failure) => d["detail"] = json!(failure.to_string()),
        Ended::Scheduled(why) | Ended::Sending(why) => d["detail"] = json!(why),
    }
    d
}

/// An event's deliveries as the reason names them, by how they ended now.
struct Ends<'e> {
    /// The routes sent now.
    sent: Vec<String>,
    /// `route: why` of each failed for good (or gone).
    failed: Vec<String>,
    /// Why each retried on its own schedule waits.
    scheduled: Vec<&'e str>,
    /// Each still sending without the batch.
    sending: Vec<&'e str>,
}

impl<'e> Ends<'e> {
    fn of(ended: &'e [(Route, Ended)]) -> Self {
        let mut ends = Self {
            sent: Vec::new(),
            failed: Vec::new(),
            scheduled: Vec::new(),
            sending: Vec::new(),
        };
        for (route, end) in ended {
            match end {
                Ended::Sent { .. } => ends.sent.push(route.to_string()),
                Ended::Failed(why) | Ended::Gone(why) => ends.failed.push(format!("{route}: {why}")),
                Ended::Scheduled(why) => ends.scheduled.push(why),
                Ended::Sending(why) => ends.sending.push(why),
                Ended::Duplicate { .. } | Ended::Retry(_) => {}
            }
        }
        ends
    }

    /// The reason's tail beside what was sent (or not): what failed for good, what is
    /// retried on its own schedule.
    fn others(&self) -> String {
        let mut tail = String::new();
        if !self.failed.is_empty() {
            tail += &format!("; failed for good: {}", self.failed.join("; "));
        }
        if !self.scheduled.is_empty() {
            tail += &format!("; retried on its own schedule: {}", self.scheduled.join("; "));
        }
        if !self.sending.is_empty() {
            tail += &format!("; still sending: {}", self.sending.join("; "));
        }
        tail
    }
}

/// Whether the event's one delivery is its e-mail (its answer then speaks of the e-mail).
fn only_email(ended: &[(Route, Ended)]) -> bool {
    ended.len() == 1 && ended[0].0 == Route::EMAIL
}

/// `sent`: a delivery was made now. The log gets a line for each one made, and where it
/// went.
fn sent(
    ctx: &ReminderContext,
    ended: &[(Route, Ended)],
    ends: &Ends<'_>,
    details: serde_json::Value,
) -> Answer {
    let head = match only_email(ended) {
        true => "the reminder e-mail was sent".to_owned(),
        false => format!("the reminder was sent by {}", ends.sent.join(", ")),
    };
    let logs = ended.iter().filter_map(|(route, end)| {
        let Ended::Sent { place, .. } = end else {
            return None;
        };
        let how = match route.channel {
            Channel::Email => "mailed".to_owned(),
            _ => format!("sent by {route}"),
        };
        let (title, user) = (&ctx.task_title, ctx.user_id);
        Some(Log::Sent(format!(
            "reminder {how}: \"{title}\" to user {user} ({place})"
        )))
    });
    let reason = format!("{head}{}", ends.others());
    Answer {
        reply: Ok(Reply::new(Outcome::Done("sent"), reason, details).due_at(ctx.due_at())),
        logs: logs.collect(),
    }
}

/// `failed`: nothing was made now and a delivery failed for good. A reminder's one e-mail
/// answers with why it failed, as the relay said.
fn failed(ended: &[(Route, Ended)], ends: &Ends<'_>, details: serde_json::Value) -> Answer {
    let reason = match (ended, only_email(ended)) {
        ([(_, Ended::Failed(why) | Ended::Gone(why))], true) => why.clone(),
        _ => format!("failed for good: {}", ends.failed.join("; ")),
    };
    Answer {
        reply: Ok(Reply::new(Outcome::Failed, reason.clone(), details)),
        logs: vec![Log::Undeliverable(reason)],
    }
}

/// `duplicate`: every delivery was done before (or is being done by another).
fn duplicate(ended: &[(Route, Ended)], details: serde_json::Value) -> Answer {
    let reason = match ended {
        [(_, Ended::Duplicate { status, detail })] => match (status, detail) {
            (DeliveryStatus::Failed, Some(d)) => format!("already failed for good: {d}"),
            _ => format!("already {status}"),
        },
        _ => {
            let each: Vec<String> = ended
                .iter()
                .filter_map(|(r, e)| match e {
                    Ended::Duplicate { status, .. } => Some(format!("{r} {status}")),
                    _ => None,
                })
                .collect();
            format!("already done: {}", each.join(", "))
        }
    };
    Answer {
        reply: Ok(Reply::new(Outcome::Duplicate, reason.clone(), details)),
        logs: vec![Log::Duplicate(reason)],
    }
}

/// Whether every delivery of the event was finished before this call (nothing held back):
/// then its reminder's state may need settling (`Store::settle_reminders`).
pub(super) fn all_done_before(ended: &[(Route, Ended)], held: Option<&str>) -> bool {
    !ended.is_empty()
        && held.is_none()
        && ended
            .iter()
            .all(|(_, e)| matches!(e, Ended::Duplicate { status, .. } if *status != DeliveryStatus::Sending))
}

/// The answer as the caller may see it: the recipient's address and endpoints' targets, which
/// the texts of mail servers and endpoints repeat, replaced by names ([`Hidden`]); the log
/// and the deliveries table keep them.
pub(super) fn hide_stored(ctx: &ReminderContext, answer: Result<Reply, Failure>) -> Result<Reply, Failure> {
    let hidden = Hidden::of(ctx);
    match answer {
        Ok(mut reply) => {
            reply.reason = hidden.in_text(&reply.reason);
            hidden.in_json(&mut reply.details);
            Ok(reply)
        }
        Err(Failure::Unavailable { detail, cause }) => Err(Failure::Unavailable {
            detail: hidden.in_text(&detail),
            cause,
        }),
        Err(Failure::InProgress(detail)) => Err(Failure::InProgress(hidden.in_text(&detail))),
        Err(other) => Err(other),
    }
}
