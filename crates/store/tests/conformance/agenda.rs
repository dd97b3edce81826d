//! The daily agenda's statements on both backends: the scheduler's claim and schedule (with
//! the triggers that make it compute again), notify's read (tasks of the day, counted
//! exactly, and the date's deliveries) and its claims, once per user, date and route.

use chrono::{Duration, NaiveDate};
use todo_events_domain::{TaskId, UserId};
use todo_events_store::agenda::{AgendaAsked, AgendaClaim, AgendaFinished, AgendaNext};
use todo_events_store::seed::{NewTask, Preferences};
use todo_events_store::{Channel, DeliveryStatus, Store};
use todo_events_testkit::{self as kit, at};

async fn opted_in(s: &Store, agenda_at: &str) -> UserId {
    let user = kit::user(s, "ada@example.test", "Europe/Berlin").await;
    let preferences = Preferences {
        quiet_start: None,
        quiet_end: None,
        quiet_days: None,
        locale: "de-DE",
        channels: "email",
        agenda_at: Some(agenda_at),
    };
    s.set_preferences(user, &preferences).await.unwrap();
    user
}

async fn task(s: &Store, user: UserId, title: &str, due: &str) -> TaskId {
    let task = NewTask {
        user_id: user,
        title,
        description: "",
        due_at: Some(at(due)),
    };
    s.insert_task(&task).await.unwrap()
}

#[tokio::test]
async fn the_scheduler_claims_schedules_and_computes_again_after_a_change() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let user = opted_in(s, "07:00").await;
        let now = at("2026-12-07T05:00:00Z");
        let lease = Duration::seconds(30);
        let first = s.claim_agendas("a", now, lease, 10).await.unwrap();
        assert_eq!(first.len(), 1, "{b}: a user never scheduled is claimed");
        let claimed = first[0].as_ref().unwrap();
        assert_eq!(
            (claimed.user_id, claimed.next, claimed.timezone.as_str()),
            (user, None, "Europe/Berlin"),
            "{b}"
        );
        assert!(
            s.claim_agendas("b", now, lease, 10).await.unwrap().is_empty(),
            "{b}: held"
        );
        let next = AgendaNext {
            user_id: user,
            date: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            at: at("2026-12-07T06:00:00Z"),
        };
        assert_eq!(
            s.schedule_agendas("b", &[next]).await.unwrap(),
            0,
            "{b}: not b's claim"
        );
        assert_eq!(s.schedule_agendas("a", &[next]).await.unwrap(), 1, "{b}");
        assert!(
            s.claim_agendas("a", now, lease, 10).await.unwrap().is_empty(),
            "{b}: not due yet"
        );
        let due = s
            .claim_agendas("a", at("2026-12-07T06:00:00Z"), lease, 10)
            .await
            .unwrap();
        assert_eq!(
            due[0].as_ref().unwrap().next,
            Some((next.date, next.at)),
            "{b}: due at its time"
        );
        s.schedule_agendas("a", &[next]).await.unwrap();
        // A new zone: computed again at the next pass.
        db.execute(
            &format!("UPDATE users SET timezone = 'Asia/Tokyo' WHERE id = {user}"),
            None,
        )
        .await
        .unwrap();
        let again = s.claim_agendas("a", now, lease, 10).await.unwrap();
        assert_eq!(again[0].as_ref().unwrap().next, None, "{b}: zone changed");
        s.schedule_agendas("a", &[next]).await.unwrap();
        db.execute(
            &format!("UPDATE user_preferences SET agenda_at = '08:00' WHERE user_id = {user}"),
            None,
        )
        .await
        .unwrap();
        let again = s.claim_agendas("a", now, lease, 10).await.unwrap();
        assert_eq!(again[0].as_ref().unwrap().next, None, "{b}: time changed");
        assert!(
            db.execute(
                &format!("UPDATE user_preferences SET agenda_at = '25:00' WHERE user_id = {user}"),
                None
            )
            .await
            .is_err(),
            "{b}: a time that is none is refused"
        );
    }
}

#[tokio::test]
async fn notify_reads_the_day_and_claims_each_delivery_once() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let user = opted_in(s, "07:00").await;
        task(s, user, "overdue", "2026-12-05T09:00:00Z").await;
        task(s, user, "today", "2026-12-07T16:00:00Z").await;
        // 23:30 Berlin on the 7th: still that day there, though it is the 8th in UTC.
        task(s, user, "late today", "2026-12-07T22:30:00Z").await;
        task(s, user, "tomorrow", "2026-12-08T09:00:00Z").await;
        let done = task(s, user, "done", "2026-12-07T08:00:00Z").await;
        db.execute(
            &format!("UPDATE tasks SET status = 'done' WHERE id = {done}"),
            None,
        )
        .await
        .unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let asked = AgendaAsked {
            user_id: user,
            date,
            earliest_end: at("2026-12-07T10:00:00Z"),
            latest_end: at("2026-12-08T12:00:00Z"),
        };
        let read = s.agenda_contexts(&[asked], 50).await.unwrap();
        let ctx = read[0].clone().unwrap().within(at("2026-12-07T23:00:00Z"));
        let titles: Vec<_> = ctx.tasks.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["overdue", "today", "late today"], "{b}");
        assert_eq!(ctx.due_count, 3, "{b}");
        let listed_two = s.agenda_contexts(&[asked], 2).await.unwrap()[0]
            .clone()
            .unwrap()
            .within(at("2026-12-07T23:00:00Z"));
        assert_eq!(
            (listed_two.tasks.len(), listed_two.due_count),
            (2, 3),
            "{b}: counted beyond the list"
        );

        let claim = AgendaClaim {
            user_id: user,
            date,
            channel: Channel::Email,
            endpoint_id: 0,
            event_id: "agenda/1/2026-12-07".into(),
            tasks: 3,
            recipient: "ada@example.test".into(),
        };
        let now = at("2026-12-07T06:00:01Z");
        let held = s
            .claim_agenda_deliveries(std::slice::from_ref(&claim), now, Duration::seconds(60))
            .await
            .unwrap();
        assert_eq!(held.len(), 1, "{b}");
        let again = s
            .claim_agenda_deliveries(std::slice::from_ref(&claim), now, Duration::seconds(60))
            .await
            .unwrap();
        assert!(again.is_empty(), "{b}: held by the first claim");
        let later = now + Duration::seconds(61);
        let taken = s
            .claim_agenda_deliveries(std::slice::from_ref(&claim), later, Duration::seconds(60))
            .await
            .unwrap();
        assert_eq!(taken.len(), 1, "{b}: a claim that ran out is taken over");
        let stale = AgendaFinished {
            id: held[0].id,
            claimed_at: held[0].claimed_at,
            status: DeliveryStatus::Sent,
            message_id: None,
            detail: None,
        };
        assert_eq!(
            s.finish_agenda_deliveries(&[stale], later).await.unwrap(),
            0,
            "{b}: fenced"
        );
        let current = AgendaFinished {
            claimed_at: taken[0].claimed_at,
            ..AgendaFinished {
                id: taken[0].id,
                claimed_at: taken[0].claimed_at,
                status: DeliveryStatus::Sent,
                message_id: Some("<agenda@x>".into()),
                detail: None,
            }
        };
        assert_eq!(
            s.finish_agenda_deliveries(&[current], later).await.unwrap(),
            1,
            "{b}"
        );
        let after = s
            .claim_agenda_deliveries(&[claim], later + Duration::hours(1), Duration::seconds(60))
            .await
            .unwrap();
        assert!(after.is_empty(), "{b}: sent is never claimed again");
        let read = s.agenda_contexts(&[asked], 50).await.unwrap();
        let rows = &read[0].as_ref().unwrap().deliveries;
        assert_eq!(rows.len(), 1, "{b}");
        assert_eq!(rows[0].status, DeliveryStatus::Sent, "{b}");
    }
}
