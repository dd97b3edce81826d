//! Step 6 of an agenda, answer: one answer per event, from its verdict and what came of its
//! deliveries (pure).

use super::decide::{details, Planned, Verdict};
use super::Attempt;
use crate::channels::SendError;
use chrono::NaiveDate;
use serde_json::json;
use todo_events_domain::agenda::AgendaDue;
use todo_events_host::{Event, Failure, Outcome, Reply};

/// The verdicts, with the deliveries to claim taken out of them.
pub(super) fn split(verdicts: Vec<Verdict<'_>>) -> (Vec<Verdict<'_>>, Vec<Planned<'_>>) {
    let mut planned = Vec::new();
    let verdicts = verdicts
        .into_iter()
        .map(|v| match v {
            Verdict::Send {
                deliveries,
                done_before,
                in_progress,
                held,
            } => {
                planned.extend(deliveries);
                Verdict::Send {
                    deliveries: Vec::new(),
                    done_before,
                    in_progress,
                    held,
                }
            }
            answered => answered,
        })
        .collect();
    (verdicts, planned)
}

/// Step 6: one answer per event, from its verdict and its deliveries' attempts.
pub(super) fn answer(
    events: &[Event<AgendaDue>],
    verdicts: Vec<Verdict<'_>>,
    attempts: &[Attempt<'_>],
) -> Vec<Result<Reply, Failure>> {
    events
        .iter()
        .zip(verdicts)
        .map(|((_, due), verdict)| match verdict {
            Verdict::Answered(answer) => answer,
            Verdict::Send {
                done_before,
                in_progress,
                held,
                ..
            } => {
                let mine: Vec<&Attempt<'_>> = attempts
                    .iter()
                    .filter(|a| a.planned.due.user_id == due.user_id)
                    .collect();
                one_answer(due, &mine, done_before, in_progress, held)
            }
        })
        .collect()
}

/// The answer to one agenda event: sent when a delivery went out now; else the event must
/// come again when one is held elsewhere, failed transiently or waits for Web Push; else
/// failed when one failed for good now; else duplicate.
fn one_answer(
    due: &AgendaDue,
    mine: &[&Attempt<'_>],
    done_before: usize,
    in_progress: bool,
    held: Option<String>,
) -> Result<Reply, Failure> {
    let ends: Vec<_> = mine
        .iter()
        .map(|a| json!({ "channel": a.planned.route.channel.as_str(), "route": a.planned.route.to_string(),
            "outcome": match &a.sent { Ok(_) => "sent", Err(SendError::Transient { .. }) => "retry", Err(_) => "failed" } }))
        .collect();
    let mut details = details(due);
    details["deliveries"] = json!(ends);
    let date: NaiveDate = due.date;
    if mine.iter().any(|a| a.sent.is_ok()) {
        let reason = format!("the agenda of {date} went out");
        return Ok(Reply::new(Outcome::Done("sent"), reason, details).due_at(due.agenda_at));
    }
    if let Some(a) = mine
        .iter()
        .find(|a| matches!(a.sent, Err(SendError::Transient { .. })))
    {
        let why = a.sent.as_ref().err().map(ToString::to_string).unwrap_or_default();
        return Err(Failure::unavailable(format!(
            "an agenda delivery failed transiently: {why}"
        )));
    }
    if in_progress {
        return Err(Failure::InProgress(format!(
            "the agenda of {date} is being sent by another delivery"
        )));
    }
    if let Some(why) = held {
        return Err(Failure::unavailable(why));
    }
    if let Some(a) = mine.iter().find(|a| a.sent.is_err()) {
        let why = a.sent.as_ref().err().map(ToString::to_string).unwrap_or_default();
        return Ok(Reply::new(
            Outcome::Failed,
            format!("the agenda could not be delivered: {why}"),
            details,
        ));
    }
    let reason = format!("the agenda of {date} was sent before ({done_before} delivery(ies))");
    Ok(Reply::new(Outcome::Duplicate, reason, details))
}
