//! Step 2 of an agenda, decide (pure): what an agenda event asks for, from its user as read
//! and the clock. The event is a claim checked against the database: the user must exist and
//! have an agenda, the event must come at the agenda's time as the stored preferences give it
//! (not early, not once the next day's is due), something must be due, and each delivery of
//! that date is made once (done before: duplicate; held by another call: in progress).
//!
//! Answers name only what was wrong with the request; what is stored goes to the log lines
//! the verdict carries, which the caller writes.

use crate::plan::{plan_routes, Checks, Recipient, Target};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use todo_events_domain::agenda::{instant, AgendaDue};
use todo_events_domain::recurrence::Zone;
use todo_events_domain::time::rfc3339;
use todo_events_domain::QuietHours;
use todo_events_host::{Failure, Outcome, Reply};
use todo_events_store::agenda::AgendaContext;
use todo_events_store::notify::Route;
use todo_events_store::{DeliveryStatus, Malformed};

/// A delivery of an agenda to make: where it goes.
#[derive(Debug)]
pub(super) struct Planned<'c> {
    pub event_id: &'c str,
    pub due: &'c AgendaDue,
    pub ctx: &'c AgendaContext,
    pub route: Route,
    pub target: Target,
}

/// An agenda event decided.
#[derive(Debug)]
pub(super) enum Verdict<'c> {
    /// Answered without a delivery.
    Answered(Result<Reply, Failure>),
    /// Deliveries to claim and make; how many of its routes were done before, whether one
    /// is held by another call, and what leads nowhere.
    Send {
        deliveries: Vec<Planned<'c>>,
        done_before: usize,
        in_progress: bool,
        held: Option<String>,
    },
}

/// What the caller is to log beside the verdict (what is stored).
pub(super) type Logs = Vec<String>;

/// The answers' details: the user and the date, never what is stored.
pub(super) fn details(due: &AgendaDue) -> serde_json::Value {
    json!({ "user_id": due.user_id, "date": due.date.format("%Y-%m-%d").to_string() })
}

fn skipped(due: &AgendaDue, reason: &str) -> Verdict<'static> {
    Verdict::Answered(Ok(Reply::new(Outcome::Skipped, reason, details(due))))
}

/// Decides one agenda event at `now`, allowing `tolerance` of clock skew; its endpoints are
/// checked with `checks`.
pub(super) fn decide<'c>(
    (event_id, due): (&'c str, &'c AgendaDue),
    found: Option<&'c Result<AgendaContext, Malformed>>,
    (now, tolerance): (DateTime<Utc>, Duration),
    checks: Checks<'_>,
) -> (Verdict<'c>, Logs) {
    let ctx = match found {
        None => return (skipped(due, "no user matches the event's user_id"), vec![]),
        Some(Err(e)) => {
            let reason = "the user's stored data cannot be read; the function's log says why";
            let reply = Reply::new(Outcome::Failed, reason, details(due));
            return (Verdict::Answered(Ok(reply)), vec![e.to_string()]);
        }
        Some(Ok(ctx)) => ctx,
    };
    let mut logs = Vec::new();
    let at = match &ctx.agenda_at {
        None => return (skipped(due, "the user has no daily agenda"), logs),
        Some(Err(e)) => {
            logs.push(e.to_string());
            return (
                skipped(
                    due,
                    "the user's agenda time cannot be read; the function's log says why",
                ),
                logs,
            );
        }
        Some(Ok(at)) => *at,
    };
    let (zone, quiet) = zone_and_quiet_hours(ctx, &mut logs);
    let its_time = instant(&zone, due.date, at, quiet.as_ref());
    if its_time > now + tolerance {
        let reason = format!("the agenda of {} is due at {}", due.date, rfc3339(its_time));
        return (
            Verdict::Answered(Ok(Reply::not_due_yet(reason, details(due)))),
            logs,
        );
    }
    if instant(&zone, due.date + Duration::days(1), at, quiet.as_ref()) <= now {
        return (
            skipped(due, "the next day's agenda is due: this one is stale"),
            logs,
        );
    }
    if ctx.due_count == 0 {
        return (skipped(due, "nothing is due that day"), logs);
    }
    let (verdict, more) = routes((event_id, due), ctx, now, checks);
    logs.extend(more);
    (verdict, logs)
}

/// The user's zone (UTC when unknown) and quiet hours (none when they cannot be read), each
/// fallback said in `logs`.
fn zone_and_quiet_hours(ctx: &AgendaContext, logs: &mut Logs) -> (Zone, Option<QuietHours>) {
    let zone = Zone::parse(&ctx.timezone).unwrap_or_else(|e| {
        logs.push(format!("user {}: agenda in UTC: {e}", ctx.user_id));
        Zone::parse("UTC").expect("UTC is a zone")
    });
    let quiet = ctx.quiet_hours.clone().unwrap_or_else(|e| {
        logs.push(format!("user {}: agenda without quiet hours: {e}", ctx.user_id));
        None
    });
    (zone, quiet)
}

/// The deliveries of an agenda that is to go out: its user's channels and endpoints, each
/// delivery not made before (nor held by another call until after `now`).
fn routes<'c>(
    (event_id, due): (&'c str, &'c AgendaDue),
    ctx: &'c AgendaContext,
    now: DateTime<Utc>,
    checks: Checks<'_>,
) -> (Verdict<'c>, Logs) {
    let to = Recipient {
        user_id: ctx.user_id,
        channels: &ctx.channels,
        endpoints: &ctx.endpoints,
        column: "user_preferences.channels",
    };
    let plan = plan_routes(&to, checks);
    if plan.deliveries.is_empty() && plan.held.is_none() {
        let reason = format!("nothing to deliver to: {}", plan.notes.join("; "));
        return (skipped(due, &reason), plan.log);
    }
    let (mut deliveries, mut done_before, mut in_progress) = (Vec::new(), 0, false);
    for (route, target) in plan.deliveries {
        let endpoint_id = route.endpoint.map_or(0, |e| e.get());
        let before = ctx
            .deliveries
            .iter()
            .find(|d| d.channel == route.channel && d.endpoint_id == endpoint_id);
        match before {
            Some(d) if d.status != DeliveryStatus::Sending => done_before += 1,
            Some(d) if d.lease_until > now => in_progress = true,
            _ => deliveries.push(Planned {
                event_id,
                due,
                ctx,
                route,
                target,
            }),
        }
    }
    let verdict = Verdict::Send {
        deliveries,
        done_before,
        in_progress,
        held: plan.held,
    };
    (verdict, plan.log)
}

#[cfg(test)]
mod tests;
