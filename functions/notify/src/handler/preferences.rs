//! A user's preferences as notify's decisions use them (pure): whether a reminder falls in its
//! user's quiet hours and until when ([`quiet_until`]), the answer to one put off
//! ([`deferred`]), and what in the preferences cannot be used ([`preference_problems`]),
//! for the log: a preference that cannot be read never stops a reminder (docs/PREFERENCES.md,
//! "When a preference cannot be read").

use super::answer::{details_of, Answer};
use super::log::Log;
use chrono::{DateTime, Utc};
use todo_events_domain::recurrence::Zone;
use todo_events_domain::time::rfc3339;
use todo_events_domain::ReminderDue;
use todo_events_host::{Outcome, Reply};
use todo_events_store::ReminderContext;

/// The end of the quiet hours `at` lies in, for reminder `ctx` (not urgent) of a user with
/// quiet hours that can be read, in a zone that can be read; else `None`: it goes out now
/// ([`preference_problems`] says why when a preference cannot be read).
pub(super) fn quiet_until(ctx: &ReminderContext, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if ctx.urgent {
        return None;
    }
    let quiet = ctx.quiet_hours.as_ref().ok()?.as_ref()?;
    let zone = Zone::parse(&ctx.timezone).ok()?;
    quiet.deferral(&zone, at)
}

/// What in `ctx`'s user's preferences cannot be used, and the fallback taken, for the log
/// (pure): the stored values are the user's, so they go to the log only.
pub(super) fn preference_problems(ctx: &ReminderContext) -> Vec<String> {
    let mut problems = Vec::new();
    match &ctx.quiet_hours {
        Err(e) => problems.push(format!("{e}: the quiet hours are not applied")),
        Ok(Some(_)) if Zone::parse(&ctx.timezone).is_err() => problems.push(format!(
            "users.timezone {:?} is not a zone: the quiet hours are not applied",
            ctx.timezone
        )),
        Ok(_) => {}
    }
    if let Err(e) = &ctx.locale {
        problems.push(format!("{e}: messages are in English"));
    }
    problems
}

/// `deferred` (pure): the reminder goes out at `until`, the end of its user's quiet hours;
/// `how` says whether it was put off now or before.
pub(super) fn deferred(due: &ReminderDue, until: DateTime<Utc>, how: &str) -> Answer {
    let mut details = details_of(due);
    details["deferred_until"] = rfc3339(until).into();
    let reason =
        format!("the reminder is due inside its user's quiet hours: {how}, to their end, when it is sent");
    Answer {
        reply: Ok(Reply::new(Outcome::Deferred, reason, details)),
        logs: vec![Log::Deferred(rfc3339(until))],
    }
}
