//! The agenda's rules, one row each: what an event is answered, or which deliveries it asks
//! for, from the user as read and the clock.

use super::*;
use crate::channels::guard::Guard;
use chrono::NaiveDate;
use todo_events_domain::agenda::agenda_time;
use todo_events_domain::{TaskId, UserId};
use todo_events_store::agenda::{AgendaDeliveryRow, AgendaTask};
use todo_events_store::sealed::Keys;
use todo_events_store::{Channel, Channels, TaskStatus};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn due() -> AgendaDue {
    AgendaDue {
        user_id: UserId::new(3).unwrap(),
        date: "2026-12-07".parse().unwrap(),
        agenda_at: at("2026-12-07T06:00:00Z"),
    }
}

/// Ada in Berlin, agenda at 07:00 (06:00Z in December), one task due that day.
fn ctx() -> AgendaContext {
    AgendaContext {
        user_id: UserId::new(3).unwrap(),
        date: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        email: "ada@example.test".into(),
        display_name: "Ada".into(),
        timezone: "Europe/Berlin".into(),
        agenda_at: Some(agenda_time("07:00")),
        quiet_hours: Ok(None),
        locale: Ok("de-DE".into()),
        channels: Channels::email_only(),
        endpoints: Vec::new(),
        tasks: vec![AgendaTask {
            id: TaskId::new(9).unwrap(),
            title: "Water the plants".into(),
            status: TaskStatus::Todo,
            due_at: at("2026-12-07T16:00:00Z"),
        }],
        due_count: 1,
        edge: Vec::new(),
        deliveries: Vec::new(),
    }
}

/// A user as read.
type Found = Result<AgendaContext, Malformed>;

fn email_row(status: DeliveryStatus, lease_until: &str) -> AgendaDeliveryRow {
    AgendaDeliveryRow {
        id: 1,
        channel: Channel::Email,
        endpoint_id: 0,
        status,
        claimed_at: at("2026-12-07T06:00:01Z"),
        lease_until: at(lease_until),
    }
}

/// What the verdict says, in a word: the answer's outcome, "sends N", "duplicate" (all done
/// before), "in progress".
fn word(found: Option<&Result<AgendaContext, Malformed>>, now: &str) -> String {
    let due = due();
    let clock = (at(now), Duration::seconds(5));
    match decide(
        ("agenda/3/2026-12-07", &due),
        found,
        clock,
        Checks {
            guard: &Guard::strict(),
            push_on: false,
            keys: &Keys::default(),
        },
    )
    .0
    {
        Verdict::Answered(Ok(reply)) if reply.early => "early".into(),
        Verdict::Answered(Ok(reply)) => format!("{}: {}", reply.outcome.word(), reply.reason),
        Verdict::Answered(Err(f)) => format!("error: {f}"),
        Verdict::Send {
            in_progress: true, ..
        } => "in progress".into(),
        Verdict::Send {
            deliveries,
            done_before,
            ..
        } if deliveries.is_empty() => format!("done before: {done_before}"),
        Verdict::Send { deliveries, .. } => format!("sends {}", deliveries.len()),
    }
}

#[test]
fn every_rule_of_the_agenda() {
    let with = |f: fn(&mut AgendaContext)| {
        let mut c = ctx();
        f(&mut c);
        Ok(c)
    };
    let on_time = "2026-12-07T06:00:00Z";
    let rows: Vec<(&str, Option<Found>, &str, &str)> = vec![
        (
            "no such user",
            None,
            on_time,
            "skipped: no user matches the event's user_id",
        ),
        (
            "opted out",
            Some(with(|c| c.agenda_at = None)),
            on_time,
            "skipped: the user has no daily agenda",
        ),
        (
            "early (beyond the skew)",
            Some(Ok(ctx())),
            "2026-12-07T05:59:00Z",
            "early",
        ),
        (
            "within the skew",
            Some(Ok(ctx())),
            "2026-12-07T05:59:56Z",
            "sends 1",
        ),
        ("on time", Some(Ok(ctx())), on_time, "sends 1"),
        (
            "late the same day",
            Some(Ok(ctx())),
            "2026-12-07T22:00:00Z",
            "sends 1",
        ),
        (
            "stale: the next day's is due",
            Some(Ok(ctx())),
            "2026-12-08T06:00:00Z",
            "skipped: the next day's agenda is due: this one is stale",
        ),
        (
            "nothing due",
            Some(with(|c| {
                c.tasks.clear();
                c.due_count = 0;
            })),
            on_time,
            "skipped: nothing is due that day",
        ),
        (
            "sent before",
            Some(with(|c| {
                c.deliveries = vec![email_row(DeliveryStatus::Sent, "2026-12-07T06:02:00Z")]
            })),
            on_time,
            "done before: 1",
        ),
        (
            "held by another call",
            Some(with(|c| {
                c.deliveries = vec![email_row(DeliveryStatus::Sending, "2026-12-07T06:02:00Z")]
            })),
            on_time,
            "in progress",
        ),
        (
            "a claim that ran out is taken over",
            Some(with(|c| {
                c.deliveries = vec![email_row(DeliveryStatus::Sending, "2026-12-07T05:59:00Z")]
            })),
            on_time,
            "sends 1",
        ),
        (
            "a webhook channel without endpoints",
            Some(with(|c| c.channels = Channels::parse("webhook"))),
            on_time,
            "skipped: nothing to deliver to: user 3 has no active webhook endpoint",
        ),
    ];
    let n = rows.len();
    for (name, found, now, expected) in rows {
        assert_eq!(word(found.as_ref(), now), expected, "{name}");
    }
    assert_eq!(n, 12, "rows checked");
}

#[test]
fn quiet_hours_move_the_time_an_event_may_come_at() {
    let mut c = ctx();
    c.quiet_hours = todo_events_domain::QuietHours::parse(Some("22:00"), Some("08:00"), None);
    let found = Some(Ok(c));
    // 07:00 is inside 22:00-08:00 Berlin: the agenda is due at 08:00 (07:00Z).
    assert_eq!(word(found.as_ref(), "2026-12-07T06:00:00Z"), "early");
    assert_eq!(word(found.as_ref(), "2026-12-07T07:00:00Z"), "sends 1");
}
