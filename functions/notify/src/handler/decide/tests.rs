use super::*;
use crate::handler::tests::{at, due, row};
use todo_events_domain::{QuietHours, TaskId, UserId};
use todo_events_store::TaskStatus;

/// A minute after the reminder was due, as the scheduler's event arrives.
fn clock() -> DateTime<Utc> {
    at("2026-11-30T09:01:00Z")
}

const TOLERANCE: Duration = Duration::seconds(10);

/// The reminder as the read finds it: `context`, its event's time not sent.
fn found(context: Result<ReminderContext, Malformed>) -> Found {
    Found {
        context,
        sent_at_event_time: false,
    }
}

fn decided_at(now: DateTime<Utc>, change: impl FnOnce(&mut ReminderContext)) -> String {
    let mut ctx = row();
    change(&mut ctx);
    let found = found(Ok(ctx));
    match decide(&due(), Some(&found), now, TOLERANCE) {
        Decision::Skip { reason, .. } => format!("skip: {reason}"),
        Decision::NotDue => "not due".into(),
        Decision::Moved { to, sent } => format!("moved to {} (sent: {sent})", rfc3339(to)),
        Decision::Done { state } => format!("done: {state}"),
        Decision::Send(_) => "send".into(),
        Decision::Defer { until } => format!("defer to {}", rfc3339(until)),
        Decision::Deferred { until } => format!("deferred to {}", rfc3339(until)),
    }
}

fn decided(change: impl FnOnce(&mut ReminderContext)) -> String {
    decided_at(clock(), change)
}

#[test]
fn a_due_reminder_of_an_open_task_is_sent() {
    assert_eq!(decided(|_| {}), "send");
    assert_eq!(decided(|c| c.state = ReminderState::Pending), "send");
    assert_eq!(decided(|c| c.task_status = TaskStatus::InProgress), "send");
}

/// An occurrence that is over is a duplicate from the reminder's state alone: what keeps a
/// redelivery once after the retention deleted its deliveries. A moved reminder is judged by
/// its new time first (its old time's state is gone with the move).
#[test]
fn a_sent_or_failed_reminder_s_event_is_a_duplicate_whatever_its_deliveries() {
    assert_eq!(decided(|c| c.state = ReminderState::Sent), "done: sent");
    assert_eq!(decided(|c| c.state = ReminderState::Failed), "done: failed");
    // Even when it comes early (a forged event): nothing is sent either way.
    assert_eq!(
        decided_at(at("2026-11-29T09:00:00Z"), |c| c.state = ReminderState::Sent),
        "done: sent"
    );
    assert_eq!(
        decided(|c| {
            c.state = ReminderState::Sent;
            c.task_status = TaskStatus::Done;
        }),
        "skip: the reminder's task is closed"
    );
    let reply = done(&due(), ReminderState::Failed).reply.expect("answered");
    assert_eq!(
        (reply.outcome, reply.reason.as_str()),
        (Outcome::Duplicate, "already failed for good for this time")
    );
}

#[test]
fn a_reminder_is_sent_from_its_time_less_the_tolerance_and_never_earlier() {
    let remind_at = at("2026-11-30T09:00:00Z");
    assert_eq!(decided_at(remind_at, |_| {}), "send");
    assert_eq!(decided_at(remind_at - TOLERANCE, |_| {}), "send");
    assert_eq!(
        decided_at(remind_at - TOLERANCE - Duration::milliseconds(1), |_| {}),
        "not due"
    );
    assert_eq!(decided_at(remind_at - Duration::hours(2), |_| {}), "not due");
    // Whatever the row's state: an early event of a pending reminder changes nothing.
    assert_eq!(
        decided_at(remind_at - Duration::hours(2), |c| c.state =
            ReminderState::Pending),
        "not due"
    );
}

#[test]
fn cancelled_reminders_closed_tasks_and_foreign_ids_are_skipped_without_telling_what_is_stored() {
    assert_eq!(
        decided(|c| c.state = ReminderState::Cancelled),
        "skip: the reminder was cancelled"
    );
    assert_eq!(
        decided(|c| c.task_status = TaskStatus::Done),
        "skip: the reminder's task is closed"
    );
    assert_eq!(
        decided(|c| c.task_status = TaskStatus::Cancelled),
        "skip: the reminder's task is closed"
    );
    // Another owner reads as no reminder at all: the answer names no stored id.
    assert_eq!(
        decided(|c| c.user_id = UserId::new(9).unwrap()),
        format!("skip: {NO_SUCH_REMINDER}")
    );
    assert_eq!(
        decided(|c| c.task_id = TaskId::new(9).unwrap()),
        format!("skip: {NO_SUCH_REMINDER}")
    );
}

#[test]
fn a_moved_reminder_is_looked_up_and_a_missing_or_malformed_one_is_skipped() {
    assert_eq!(
        decided(|c| c.remind_at = at("2026-11-30T10:00:00Z")),
        "moved to 2026-11-30T10:00:00Z (sent: false)"
    );
    let skip = |d: Decision<'_>| match d {
        Decision::Skip { reason, detail } => (reason, detail),
        other => panic!("expected a skip, got {other:?}"),
    };
    assert_eq!(
        skip(decide(&due(), None, clock(), TOLERANCE)),
        (
            NO_SUCH_REMINDER,
            "reminder 1 does not exist (deleted?)".to_owned()
        )
    );
    let malformed = found(Err(Malformed {
        table: "reminders",
        id: 1,
        detail: "state \"lost\" is not a known value".into(),
    }));
    let (reason, detail) = skip(decide(&due(), Some(&malformed), clock(), TOLERANCE));
    assert_eq!(
        reason,
        "the stored reminder cannot be read (the function's log says why)"
    );
    assert_eq!(
        detail,
        "the stored reminder cannot be read: reminders row 1: state \"lost\" is not a known value"
    );
}

/// A moved reminder's event: a duplicate when the read found its own time sent, else stale;
/// the flag means nothing for a reminder that was not moved.
#[test]
fn a_moved_reminder_is_a_duplicate_only_when_its_events_time_was_sent() {
    let mut ctx = row();
    ctx.remind_at = at("2026-11-30T10:00:00Z");
    let sent = Found {
        context: Ok(ctx),
        sent_at_event_time: true,
    };
    let Decision::Moved { to, sent: true } = decide(&due(), Some(&sent), clock(), TOLERANCE) else {
        panic!("moved, its time sent")
    };
    let said = |answer: Answer| {
        let reply = answer.reply.expect("answered");
        (reply.outcome, reply.reason, answer.logs.len())
    };
    assert_eq!(
        said(moved(&due(), to, true)),
        (Outcome::Duplicate, "already sent for this time".to_owned(), 0)
    );
    assert_eq!(
        said(moved(&due(), to, false)),
        (
            Outcome::Skipped,
            "remind_at does not match the reminder (it was moved)".to_owned(),
            1
        )
    );
    let not_moved = Found {
        context: Ok(row()),
        sent_at_event_time: true,
    };
    assert!(matches!(
        decide(&due(), Some(&not_moved), clock(), TOLERANCE),
        Decision::Send(_)
    ));
}

/// Quiet hours 08:00–10:30 in the user's zone (Europe/Berlin: 07:00–09:30 UTC on 2026-11-30).
fn quiet(c: &mut ReminderContext) {
    c.quiet_hours = QuietHours::parse(Some("08:00"), Some("10:30"), None);
}

#[test]
fn a_reminder_due_inside_quiet_hours_is_put_off_to_their_end_once() {
    assert_eq!(decided(quiet), "defer to 2026-11-30T09:30:00Z");
    // Put off before: waits, writing nothing; from its time (less the tolerance) it goes out,
    // even if the clock is in quiet hours again by then.
    let put_off = |c: &mut ReminderContext| {
        quiet(c);
        c.deferred_until = Some(at("2026-11-30T09:30:00Z"));
    };
    assert_eq!(decided(put_off), "deferred to 2026-11-30T09:30:00Z");
    assert_eq!(decided_at(at("2026-11-30T09:29:55Z"), put_off), "send");
    assert_eq!(decided_at(at("2026-12-01T08:00:00Z"), put_off), "send");
    // Outside the window, urgent, or the window on other days: sent now.
    assert_eq!(decided_at(at("2026-11-30T09:31:00Z"), quiet), "send");
    assert_eq!(
        decided(|c| {
            quiet(c);
            c.urgent = true;
        }),
        "send"
    );
    assert_eq!(
        decided(|c| c.quiet_hours = QuietHours::parse(Some("08:00"), Some("10:30"), Some("sat,sun"))),
        "send"
    );
}

#[test]
fn preferences_that_cannot_be_read_fall_back_to_sending_and_say_why_in_the_log() {
    let unreadable = |c: &mut ReminderContext| {
        c.quiet_hours = QuietHours::parse(Some("08:00"), Some("08:00"), None);
    };
    assert_eq!(decided(unreadable), "send");
    let mut ctx = row();
    unreadable(&mut ctx);
    assert_eq!(preference_problems(&ctx).len(), 1);
    let mut ctx = row();
    quiet(&mut ctx);
    ctx.timezone = "Mars/Olympus".into();
    assert_eq!(decide_ctx(&ctx), "send");
    assert!(preference_problems(&ctx)[0].contains("not a zone"));
}

fn decide_ctx(ctx: &ReminderContext) -> String {
    decided(|c| *c = ctx.clone())
}
