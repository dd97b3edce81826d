//! The fourth kind of item: users' daily agendas (docs/PREFERENCES.md, "The daily agenda"),
//! one `dev.todo.agenda.due` per user and local date, on the reminders' stream (notify sends
//! them). A user whose next agenda is not computed yet (just opted in, or changed time, quiet
//! hours or zone) is only scheduled: the first agenda is the first one after that pass.
//!
//! Each claimed user is decided without writing ([`decide`], pure: the zone, the local date,
//! quiet hours, missed days); the writes are two named steps, both one statement per batch:
//! the users only scheduled, before publishing, and the users published, after the sink's
//! acknowledgement (their next agenda set). An agenda not acknowledged is claimed again after
//! its lease and published with the same id.

use crate::kind::{Db, Kind};
use crate::pass::{PassReport, LOG_TARGET};
use chrono::{DateTime, Duration, Utc};
use todo_events_domain::agenda::{due, next_after, AgendaDue};
use todo_events_domain::events::Outgoing;
use todo_events_domain::recurrence::Zone;
use todo_events_domain::time::now;
use todo_events_store::agenda::{AgendaNext, ClaimedAgenda};
use todo_events_store::scheduler::ClaimRequest;
use todo_events_store::{Malformed, StoreError};

/// What to do with a claimed user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Publish this agenda; after its acknowledgement the next one is `then`.
    Publish { agenda: AgendaDue, then: AgendaNext },
    /// Nothing due: only set the next agenda.
    Schedule(AgendaNext),
}

/// Decides one claimed user at `now` (pure). A zone the database of zones does not know is
/// read as UTC; quiet hours that cannot be read are ignored; a time that cannot be read (the
/// PostgreSQL check refuses it; SQLite's is looser) is looked at again a day later. Each of
/// these is said in the returned warning.
pub(crate) fn decide(user: &ClaimedAgenda, now: DateTime<Utc>) -> (Decision, Option<String>) {
    let id = user.user_id;
    let at = match &user.agenda_at {
        Ok(at) => *at,
        Err(e) => {
            let then = AgendaNext {
                user_id: id,
                date: now.date_naive(),
                at: now + Duration::days(1),
            };
            return (
                Decision::Schedule(then),
                Some(format!("user {id}: no agenda: {e}")),
            );
        }
    };
    let mut warning = None;
    let zone = Zone::parse(&user.timezone).unwrap_or_else(|e| {
        warning = Some(format!("user {id}: agenda in UTC: {e}"));
        Zone::parse("UTC").expect("UTC is a zone")
    });
    let quiet = user.quiet_hours.clone().unwrap_or_else(|e| {
        warning = Some(format!("user {id}: agenda without quiet hours: {e}"));
        None
    });
    let quiet = quiet.as_ref();
    let next = |after: DateTime<Utc>| {
        let (date, at) = next_after(&zone, at, quiet, after);
        AgendaNext {
            user_id: id,
            date,
            at,
        }
    };
    let decision = match user.next.and_then(|(from, _)| due(&zone, at, quiet, from, now)) {
        Some((date, agenda_at)) => Decision::Publish {
            agenda: AgendaDue {
                user_id: id,
                date,
                agenda_at,
            },
            then: next(now.max(agenda_at)),
        },
        None => Decision::Schedule(next(now)),
    };
    (decision, warning)
}

/// Daily agendas: one `dev.todo.agenda.due` each.
pub(crate) struct Agendas;

impl Kind for Agendas {
    type Claimed = Result<ClaimedAgenda, Malformed>;
    type Target = AgendaNext;
    const WHAT: &'static str = "agenda";

    async fn claim(&self, db: &Db<'_>, c: &ClaimRequest<'_>) -> Result<Vec<Self::Claimed>, StoreError> {
        db.store.claim_agendas(c.owner, c.now, c.lease, c.limit).await
    }

    fn again(_: &[Self::Claimed]) -> usize {
        0
    }

    /// Decides each user, then step "schedule": the users with nothing due get their next
    /// agenda, in one statement.
    async fn events(
        &self,
        db: &Db<'_>,
        claimed: Vec<Self::Claimed>,
        _: &mut PassReport,
    ) -> Result<Vec<(AgendaNext, Outgoing)>, StoreError> {
        let current = now();
        let (mut publish, mut schedule) = (Vec::new(), Vec::new());
        for user in claimed {
            let user = match user {
                Ok(user) => user,
                Err(e) => {
                    tracing::error!(target: LOG_TARGET, "agenda not computed: {e}");
                    continue;
                }
            };
            let (decision, warning) = decide(&user, current);
            if let Some(warning) = warning {
                tracing::warn!(target: LOG_TARGET, "{warning}");
            }
            match decision {
                Decision::Publish { agenda, then } => publish.push((then, Outgoing::from(&agenda))),
                Decision::Schedule(next) => schedule.push(next),
            }
        }
        db.store.schedule_agendas(db.owner, &schedule).await?;
        Ok(publish)
    }

    fn acknowledged(_: &AgendaNext, event: &Outgoing) {
        tracing::debug!(target: LOG_TARGET, event_id = %event.id, "agenda is due: event published");
    }

    /// Step "mark": the published users' next agendas, in one statement.
    async fn mark(&self, db: &Db<'_>, acked: &[AgendaNext], _: DateTime<Utc>) -> Result<(), StoreError> {
        db.store.schedule_agendas(db.owner, acked).await?;
        Ok(())
    }

    fn count(acked: &[AgendaNext], report: &mut PassReport) {
        report.agendas_published += acked.len();
        if !acked.is_empty() {
            tracing::info!(target: LOG_TARGET, "{} daily agenda(s) published", acked.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use todo_events_domain::agenda::agenda_time;
    use todo_events_domain::UserId;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn user(zone: &str, next: Option<(&str, &str)>) -> ClaimedAgenda {
        ClaimedAgenda {
            user_id: UserId::new(7).unwrap(),
            timezone: zone.into(),
            agenda_at: agenda_time("07:00"),
            quiet_hours: Ok(None),
            next: next.map(|(d, t)| (date(d), at(t))),
        }
    }

    #[test]
    fn a_new_user_is_scheduled_for_the_first_agenda_after_now() {
        let (d, warning) = decide(&user("Europe/Berlin", None), at("2026-12-07T05:59:00Z"));
        assert_eq!(warning, None);
        assert_eq!(
            d,
            Decision::Schedule(AgendaNext {
                user_id: UserId::new(7).unwrap(),
                date: date("2026-12-07"),
                at: at("2026-12-07T06:00:00Z"),
            })
        );
    }

    #[test]
    fn a_due_agenda_is_published_and_the_next_is_tomorrow_s_even_after_missed_days() {
        let u = user("Europe/Berlin", Some(("2026-12-04", "2026-12-04T06:00:00Z")));
        let (d, _) = decide(&u, at("2026-12-07T09:00:00Z"));
        let Decision::Publish { agenda, then } = d else {
            panic!("{d:?}")
        };
        assert_eq!(agenda.event_id(), "agenda/7/2026-12-07");
        assert_eq!(agenda.agenda_at, at("2026-12-07T06:00:00Z"));
        assert_eq!(
            (then.date, then.at),
            (date("2026-12-08"), at("2026-12-08T06:00:00Z"))
        );
    }

    #[test]
    fn an_unknown_zone_is_utc_and_says_so() {
        let (d, warning) = decide(&user("Mars/Olympus", None), at("2026-12-07T05:00:00Z"));
        assert!(warning.unwrap().contains("UTC"));
        let Decision::Schedule(next) = d else {
            panic!("{d:?}")
        };
        assert_eq!(next.at, at("2026-12-07T07:00:00Z"));
    }
}
