//! The daily agenda (docs/PREFERENCES.md, "The daily agenda") played through the scheduler
//! and notify as a todo app drives them, on SQLite and PostgreSQL, the e-mails counted at a
//! real SMTP server (every copy): a user who opts in gets one agenda per local date at their
//! time, listing the day's and the overdue tasks, in their language; a redelivery, the same
//! date's event computed in a new zone and an early event send nothing more; a day with
//! nothing due sends nothing; quiet hours move the agenda to their end.

use crate::reminders_kept::{deliver, notify, sleep_until, Topic};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use scheduler_cron::{Scheduler, SchedulerConfig};
use todo_events_domain::agenda::AgendaDue;
use todo_events_domain::events::Outgoing;
use todo_events_domain::recurrence::Zone;
use todo_events_domain::UserId;
use todo_events_store::seed::NewTask;
use todo_events_testkit::smtp::{Options, SmtpServer};
use todo_events_testkit::{self as kit, TestDb};

/// A user in `zone` with the agenda at `agenda_at`'s local time (and, when given, quiet
/// hours from an hour before it to `quiet_end`), in German.
async fn opted_in(
    db: &TestDb,
    email: &str,
    zone: &str,
    agenda_at: DateTime<Utc>,
    quiet_end: Option<DateTime<Utc>>,
) -> UserId {
    let user = kit::user(&db.store, email, zone).await;
    let z = Zone::parse(zone).unwrap();
    let local = |t: DateTime<Utc>| z.wall_time(t).format("%H:%M:%S").to_string();
    let quiet = match quiet_end {
        Some(end) => format!("'{}', '{}'", local(agenda_at - Duration::hours(1)), local(end)),
        None => "NULL, NULL".into(),
    };
    let sql = format!(
        "INSERT INTO user_preferences (user_id, agenda_at, locale, quiet_start, quiet_end) \
         VALUES ({user}, '{}', 'de-DE', {quiet})",
        local(agenda_at)
    );
    db.execute(&sql, None).await.unwrap();
    user
}

async fn task(db: &TestDb, user: UserId, title: &str, due_at: DateTime<Utc>) {
    let task = NewTask {
        user_id: user,
        title,
        description: "",
        due_at: Some(due_at),
    };
    db.store.insert_task(&task).await.unwrap();
}

/// The subjects of the mails the server accepted, in the order it did.
fn subjects(smtp: &SmtpServer) -> Vec<String> {
    let parser = mail_parser::MessageParser::default();
    (smtp.messages().iter())
        .map(|m| {
            parser
                .parse(&m.raw)
                .and_then(|p| p.subject().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn a_daily_agenda_goes_out_once_per_user_and_local_date_at_their_time() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let b = db.backend;
        let smtp = SmtpServer::start(&Options::default());
        let app = notify(&db, &smtp).await;
        let topic = Topic::default();
        let mut c = SchedulerConfig::local(String::new(), String::new());
        c.owner = "agenda".into();
        let scheduler = Scheduler::new(db.store.clone(), topic.clone(), c);
        let now = Utc::now().trunc_subsecs(0);
        let (at, quiet_end) = (now + Duration::seconds(2), now + Duration::seconds(6));
        let ada = opted_in(&db, "ada@example.test", "Europe/Berlin", at, None).await;
        let bob = opted_in(&db, "bob@example.test", "Europe/Berlin", at, None).await;
        let cleo = opted_in(&db, "cleo@example.test", "Europe/Berlin", at, Some(quiet_end)).await;
        task(&db, ada, "Overdue report", now - Duration::days(2)).await;
        task(&db, ada, "Water the plants", now + Duration::seconds(30)).await;
        task(&db, ada, "Next week", now + Duration::days(7)).await;
        task(&db, cleo, "Call the bank", now + Duration::seconds(30)).await;

        // The first pass only schedules: each user's first agenda after it.
        assert_eq!(scheduler.pass().await.unwrap().agendas_published, 0, "{b}");
        assert!(topic.take().is_empty(), "{b}");
        sleep_until(at + Duration::milliseconds(200)).await;
        assert_eq!(
            scheduler.pass().await.unwrap().agendas_published,
            2,
            "{b}: Ada's and Bob's"
        );
        let events = topic.take();
        let mut answers = Vec::new();
        for event in &events {
            assert_eq!(event.ty, "dev.todo.agenda.due", "{b}");
            answers.push((event.id.clone(), deliver(&app, event).await.0));
        }
        answers.sort();
        let date = Zone::parse("Europe/Berlin").unwrap().wall_time(at).date();
        let id = |user: UserId| format!("agenda/{user}/{}", date.format("%Y-%m-%d"));
        let mut expected = vec![
            (id(ada), "dev.todo.notification.sent".to_owned()),
            (id(bob), "dev.todo.notification.skipped".to_owned()),
        ];
        expected.sort();
        assert_eq!(answers, expected, "{b}: Bob has nothing due");
        assert_eq!(smtp.accepted(), 1, "{b}");
        let subject = &subjects(&smtp)[0];
        assert!(
            subject.starts_with("Dein Tag, ") && subject.ends_with("2 Aufgaben"),
            "{b}: {subject}"
        );
        let mail = String::from_utf8_lossy(&smtp.messages()[0].raw).into_owned();
        assert!(
            mail.contains("Overdue report") && !mail.contains("Next week"),
            "{b}: {mail}"
        );

        // Again: a redelivery; the same date computed in another zone; tomorrow's, early.
        let ada_event = events.iter().find(|e| e.id == id(ada)).unwrap();
        assert_eq!(
            deliver(&app, ada_event).await.0,
            "dev.todo.notification.duplicate",
            "{b}"
        );
        db.execute(
            &format!("UPDATE users SET timezone = 'Asia/Tokyo' WHERE id = {ada}"),
            None,
        )
        .await
        .unwrap();
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        let elsewhere = AgendaDue {
            user_id: ada,
            date,
            agenda_at: tokyo
                .first_at_or_after(date.and_time(Zone::parse("Europe/Berlin").unwrap().wall_time(at).time())),
        };
        let (ty, body) = deliver(&app, &Outgoing::from(&elsewhere)).await;
        assert!(
            ty == "dev.todo.notification.duplicate" || ty == "dev.todo.notification.skipped",
            "{b}: {ty} {body}"
        );
        let tomorrow = AgendaDue {
            date: date + Duration::days(1),
            ..elsewhere
        };
        let (ty, body) = deliver(&app, &Outgoing::from(&tomorrow)).await;
        assert_eq!(ty, "dev.todo.notification.skipped", "{b}: {body}");
        assert_eq!(
            scheduler.pass().await.unwrap().agendas_published,
            0,
            "{b}: the zone change schedules anew"
        );
        assert_eq!(smtp.accepted(), 1, "{b}: still one");

        // Cleo's agenda time is inside her quiet hours: it goes at their end.
        sleep_until(quiet_end + Duration::milliseconds(200)).await;
        assert_eq!(scheduler.pass().await.unwrap().agendas_published, 1, "{b}");
        for event in topic.take() {
            assert_eq!(event.id, id(cleo), "{b}");
            assert_eq!(deliver(&app, &event).await.0, "dev.todo.notification.sent", "{b}");
        }
        assert_eq!(smtp.accepted(), 2, "{b}");
        assert!(smtp.copies().values().all(|&n| n == 1), "{b}: one copy each");
        let sent = db
            .texts("SELECT status FROM agenda_deliveries ORDER BY user_id")
            .await;
        assert_eq!(sent, ["sent", "sent"], "{b}");
    }
}
