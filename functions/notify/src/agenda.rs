//! notify's second event: a user's daily agenda (`dev.todo.agenda.due`; docs/PREFERENCES.md,
//! "The daily agenda"), sent once per user and local date on the user's preferred channels.
//!
//! The same steps as a reminder's, each one statement for the batch: read (the users with
//! their tasks due before each day's end and the date's deliveries so far) → decide (pure,
//! [`decide`]) → claim (`agenda_deliveries`, one row per user, date, channel and endpoint:
//! the once) → send (e-mails together, webhooks and pushes beside them) → record (the ends,
//! fenced by the claim) → answer. A transient failure is not recorded: its claim runs out
//! after `DELIVERY_LEASE` and the event, answered as unavailable, comes again.

mod answer;
mod decide;
mod send;
mod shape;

use crate::channels::SendError;
use crate::handler::Notify;
use crate::mail::compose::agenda::agenda_message_id;
use crate::plan::Target;
use answer::{answer, split};
use chrono::{Duration, NaiveDate};
use decide::{decide, Planned, Verdict};
use std::collections::HashMap;
use todo_events_domain::agenda::AgendaDue;
use todo_events_domain::recurrence::Zone;
use todo_events_domain::time::now;
use todo_events_domain::UserId;
use todo_events_host::{Answers, Event, Failure, Reply};
use todo_events_store::agenda::{AgendaAsked, AgendaClaim, AgendaContext, AgendaFinished, AgendaHeld};
use todo_events_store::{Channel, DeliveryStatus, Malformed};

/// How many tasks an agenda lists; the rest are counted ("…and 12 more").
const LISTED: i64 = 50;

/// The batch's users as read, by user (a batch holds one event per user).
type Contexts = HashMap<UserId, Result<AgendaContext, Malformed>>;

/// A delivery claimed, then what its channel said.
struct Attempt<'c> {
    planned: Planned<'c>,
    held: AgendaHeld,
    sent: Result<String, SendError>,
}

impl Notify {
    /// Read → decide → claim → send → record → answer, for a batch of agenda events of
    /// distinct users.
    pub(crate) async fn agendas(&self, events: &[Event<AgendaDue>]) -> Vec<Result<Reply, Failure>> {
        if events.is_empty() {
            return Vec::new();
        }
        let contexts = match self.read_agendas(events).await {
            Ok(contexts) => contexts,
            Err(failure) => return Answers::all(events.len(), failure),
        };
        let clock = (now(), self.config.clock_skew);
        let verdicts: Vec<Verdict<'_>> = events
            .iter()
            .map(|(id, due)| {
                let (verdict, logs) = decide((id, due), contexts.get(&due.user_id), clock, self.checks());
                logs.iter()
                    .for_each(|l| tracing::warn!(event_id = %id, "agenda: {l}"));
                verdict
            })
            .collect();
        let (verdicts, planned) = split(verdicts);
        let attempts = match self.claim_agendas(planned).await {
            Ok(claimed) => self.send_agendas(claimed).await,
            Err(failure) => return Answers::all(events.len(), failure),
        };
        if let Err(failure) = self.record_agendas(&attempts).await {
            return Answers::all(events.len(), failure);
        }
        answer(events, verdicts, &attempts)
    }

    /// Step 1: each event's user, tasks due before the end of its day (in the user's zone)
    /// and the day's deliveries so far, in one statement.
    async fn read_agendas(&self, events: &[Event<AgendaDue>]) -> Result<Contexts, Failure> {
        let asked: Vec<AgendaAsked> = events.iter().map(|(_, due)| asked(due)).collect();
        let found = self.store.agenda_contexts(&asked, LISTED).await?;
        let user = |c: &Result<AgendaContext, Malformed>| match c {
            Ok(c) => UserId::new(c.user_id.get()),
            Err(m) => UserId::new(m.id),
        };
        Ok(found
            .into_iter()
            .map(|c| {
                c.map(|c| {
                    let end = end_of_day(&c, c.date);
                    c.within(end)
                })
            })
            .filter_map(|c| Some((user(&c)?, c)))
            .collect())
    }

    /// Step 3: the planned deliveries claimed, in one statement; those another call holds
    /// are dropped (their events answer "in progress").
    async fn claim_agendas<'c>(
        &self,
        planned: Vec<Planned<'c>>,
    ) -> Result<Vec<(Planned<'c>, AgendaHeld)>, Failure> {
        let claims: Vec<AgendaClaim> = planned.iter().map(claim).collect();
        let lease = Duration::from_std(self.config.delivery_lease.0).unwrap_or(Duration::minutes(2));
        let mut held = self.store.claim_agenda_deliveries(&claims, now(), lease).await?;
        Ok(planned
            .into_iter()
            .filter_map(|p| {
                let at = held.iter().position(|h| {
                    h.user_id == p.due.user_id.get()
                        && h.channel == p.route.channel.as_str()
                        && h.endpoint_id == p.route.endpoint.map_or(0, |e| e.get())
                })?;
                Some((p, held.swap_remove(at)))
            })
            .collect())
    }

    /// Step 5: the ends that are final (sent, failed for good) recorded in one statement,
    /// each where its claim is still the one held.
    async fn record_agendas(&self, attempts: &[Attempt<'_>]) -> Result<(), Failure> {
        for a in attempts {
            let (user, date, route) = (a.planned.due.user_id, a.planned.due.date, a.planned.route);
            match &a.sent {
                Ok(place) if route.channel == Channel::Email => {
                    tracing::info!(event_id = %a.planned.event_id, "daily agenda mailed to user {user} for {date} ({place})")
                }
                Ok(_) => {
                    tracing::info!(event_id = %a.planned.event_id, "daily agenda sent to user {user} for {date} ({route})")
                }
                Err(e) => {
                    tracing::warn!(event_id = %a.planned.event_id, "daily agenda of user {user} for {date} not sent ({route}): {e}")
                }
            }
        }
        let ends: Vec<AgendaFinished> = attempts.iter().filter_map(finished).collect();
        let recorded = self.store.finish_agenda_deliveries(&ends, now()).await?;
        if recorded < ends.len() as u64 {
            tracing::warn!(
                "{} agenda delivery end(s) not recorded: their claims were taken over",
                ends.len() as u64 - recorded
            );
        }
        Ok(())
    }
}

/// The read's request for one event. The user's zone is read with the user, so the day's
/// end is not known before: the read takes every end the date can have on Earth (UTC+14 to
/// UTC-12) and [`AgendaContext::within`] keeps what lies before the end in the user's zone.
fn asked(due: &AgendaDue) -> AgendaAsked {
    let next = (due.date + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    AgendaAsked {
        user_id: due.user_id,
        date: due.date,
        earliest_end: (next - Duration::hours(14)).and_utc(),
        latest_end: (next + Duration::hours(12)).and_utc(),
    }
}

/// When `date` ends in the user's zone (UTC when unknown): its next local midnight, or the
/// end of the gap it falls in.
fn end_of_day(ctx: &AgendaContext, date: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    let zone = Zone::parse(&ctx.timezone).unwrap_or_else(|_| Zone::parse("UTC").expect("UTC is a zone"));
    let next = (date + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    zone.first_at_or_after(next)
}

/// The claim of a planned delivery.
fn claim(p: &Planned<'_>) -> AgendaClaim {
    AgendaClaim {
        user_id: p.due.user_id,
        date: p.due.date,
        channel: p.route.channel,
        endpoint_id: p.route.endpoint.map_or(0, |e| e.get()),
        event_id: p.event_id.to_owned(),
        tasks: p.ctx.due_count.min(i64::from(i32::MAX)) as i32,
        recipient: match &p.target {
            Target::Email => p.ctx.email.clone(),
            _ => p.route.to_string(),
        },
    }
}

/// A final end as recorded; `None` for a transient failure (left to its lease).
fn finished(a: &Attempt<'_>) -> Option<AgendaFinished> {
    let (status, message_id, detail) = match &a.sent {
        Ok(place) => (DeliveryStatus::Sent, Some(message_id(&a.planned, place)), None),
        Err(SendError::Permanent(why) | SendError::Gone(why)) => {
            (DeliveryStatus::Failed, None, Some(why.clone()))
        }
        Err(SendError::Transient { .. }) => return None,
    };
    Some(AgendaFinished {
        id: a.held.id,
        claimed_at: a.held.claimed_at,
        status,
        message_id,
        detail,
    })
}

/// The id the receiver knows a sent delivery by: the mail's Message-ID, the webhook's id.
fn message_id(p: &Planned<'_>, place: &str) -> String {
    match p.target {
        Target::Email => agenda_message_id(p.due.user_id, p.due.date),
        _ => place.to_owned(),
    }
}
