//! What keeps users from turning reminders off, played through the scheduler and notify as a
//! todo app would drive them, on SQLite and PostgreSQL, with the e-mails counted at a real
//! SMTP server (every copy):
//!
//! - quiet hours (docs/PREFERENCES.md): a reminder due inside its user's window is put off
//!   to the window's end once, a redelivery neither sends early nor defers again, the
//!   scheduler publishes it again at the end and it is mailed once; an urgent one goes out;
//! - snooze and cancel (docs/DESIGN.md, "Snooze and cancel"): a snoozed reminder is mailed
//!   once at its new time and never at its old one, also when the old time's event is
//!   already on the topic; a cancelled reminder, a finished task's reminder and a deleted
//!   recurring task's occurrence have no effect.
//!
//! "The topic" is a publisher that acknowledges and keeps each event (as a broker would),
//! so the test decides when each is delivered: after the app's change, as a consumer that
//! lags would deliver it.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use notify::config::SmtpSettings;
use notify::{Notify, NotifyConfig};
use recur::Recur;
use scheduler_cron::publish::PublishError;
use scheduler_cron::{HttpPublisher, Publisher, Scheduler, SchedulerConfig};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use todo_events_domain::events::Outgoing;
use todo_events_domain::recurrence::Zone;
use todo_events_testkit::smtp::{Options, SmtpServer};
use todo_events_testkit::{self as kit, TestApp, TestDb};

fn scheduler<P: Publisher>(db: &TestDb, publisher: P) -> Scheduler<P> {
    let mut c = SchedulerConfig::local(String::new(), String::new());
    c.owner = "kept".into();
    Scheduler::new(db.store.clone(), publisher, c)
}

pub(crate) async fn notify(db: &TestDb, smtp: &SmtpServer) -> TestApp {
    let url = format!("smtp://127.0.0.1:{}?tls=none", smtp.port);
    let mut cfg = NotifyConfig::smtp(SmtpSettings::new(&url).expect("valid SMTP_URL"));
    cfg.mail_from = "Todo Reminders <reminders@todo.example.com>".into();
    // A deferred reminder goes out from its deferral less the tolerance, as any reminder
    // from its time: 1 s (default 10 s) keeps the quiet window of the test short.
    cfg.clock_skew = Duration::seconds(1);
    cfg.validate().expect("valid settings");
    kit::spawn(Notify::new(db.store.clone(), cfg).expect("notify starts")).await
}

/// A topic: acknowledges every event and keeps it until the test delivers it.
#[derive(Clone, Default)]
pub(crate) struct Topic(Arc<Mutex<Vec<Outgoing>>>);

impl Publisher for Topic {
    async fn publish(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        self.0.lock().unwrap().extend_from_slice(events);
        vec![Ok(()); events.len()]
    }
}

impl Topic {
    pub(crate) fn take(&self) -> Vec<Outgoing> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Delivers `event` to `app` as a KafkaSource would; the answer's type and data.
pub(crate) async fn deliver(app: &TestApp, event: &Outgoing) -> (String, Value) {
    let response = app.post_binary(&event.ty, &event.id, &event.data).await;
    let (status, ty, body) = kit::reply(response).await;
    assert_eq!(status, 200, "{}: {body}", event.id);
    (ty, body)
}

/// The reminder's row as the app would read it: state and deferral.
async fn row(db: &TestDb, r: &kit::ReminderFixture) -> (String, Option<DateTime<Utc>>) {
    let ctx = db.store.reminder_context(r.reminder_id).await.unwrap().unwrap();
    (ctx.state.as_str().to_owned(), ctx.deferred_until)
}

pub(crate) async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(left) = (t - Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
}

#[tokio::test]
async fn a_reminder_due_in_quiet_hours_is_mailed_once_at_their_end_and_an_urgent_one_at_once() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options::default());
        let app = notify(&db, &smtp).await;
        let now = Utc::now().trunc_subsecs(0);
        let quiet = kit::reminder(&db.store, "Quiet", now - Duration::seconds(1)).await;
        let urgent = kit::reminder(&db.store, "Urgent", now - Duration::seconds(1)).await;
        // Quiet hours from an hour ago to 4 s from now, by the users' own clock.
        let zone = Zone::parse("America/New_York").unwrap();
        let local = |t: DateTime<Utc>| zone.wall_time(t).format("%H:%M:%S").to_string();
        let end = now + Duration::seconds(4);
        for user in [quiet.user_id, urgent.user_id] {
            let sql = format!(
                "UPDATE users SET timezone = 'America/New_York' WHERE id = {user}; \
                 INSERT INTO user_preferences (user_id, quiet_start, quiet_end) \
                 VALUES ({user}, '{}', '{}')",
                local(now - Duration::hours(1)),
                local(end)
            );
            for statement in sql.split("; ") {
                db.execute(statement, None).await.unwrap();
            }
        }
        let sql = format!(
            "UPDATE reminders SET urgent = TRUE WHERE id = {}",
            urgent.reminder_id
        );
        db.execute(&sql, None).await.unwrap();
        let publisher = HttpPublisher::new(
            Some(format!("{}/", app.url)),
            None,
            std::time::Duration::from_secs(5),
        );
        let scheduler = scheduler(&db, publisher);

        assert_eq!(
            scheduler.pass().await.unwrap().reminders_published,
            2,
            "{}",
            db.backend
        );
        assert_eq!(
            row(&db, &quiet).await,
            ("pending".into(), Some(end)),
            "{}",
            db.backend
        );
        assert_eq!(
            row(&db, &urgent).await.0,
            "sent",
            "{}: urgent goes out",
            db.backend
        );
        assert_eq!(smtp.accepted(), 1, "{}: only the urgent one", db.backend);
        // The same event again (a redelivery): deferred, as before; nothing written.
        let event = Outgoing::from(&quiet.due().1);
        let (ty, body) = deliver(&app, &event).await;
        assert_eq!(ty, "dev.todo.notification.deferred", "{}: {body}", db.backend);
        assert_eq!(body["deferred_until"], todo_events_domain::time::rfc3339(end));
        assert_eq!(
            row(&db, &quiet).await,
            ("pending".into(), Some(end)),
            "{}",
            db.backend
        );
        assert_eq!(
            scheduler.pass().await.unwrap().published(),
            0,
            "{}: not before the end",
            db.backend
        );

        sleep_until(end + Duration::milliseconds(200)).await;
        assert_eq!(
            scheduler.pass().await.unwrap().reminders_published,
            1,
            "{}",
            db.backend
        );
        assert_eq!(row(&db, &quiet).await.0, "sent", "{}", db.backend);
        let (ty, _) = deliver(&app, &event).await;
        assert_eq!(ty, "dev.todo.notification.duplicate", "{}", db.backend);
        assert_eq!(smtp.accepted(), 2, "{}: each mailed once", db.backend);
        assert!(
            smtp.copies().values().all(|&n| n == 1),
            "{}: one copy each",
            db.backend
        );
        let metrics = app.metrics().await;
        assert_eq!(
            kit::metric(&metrics, "todo_events_reminders_deferred_total", &[]),
            1.0,
            "{}",
            db.backend
        );
        assert_eq!(
            kit::metric(&metrics, "todo_events_events_total", &["outcome=\"deferred\""]),
            2.0,
            "{}: the scheduler's event and the redelivery",
            db.backend
        );
    }
}

#[tokio::test]
async fn snooze_cancel_and_finishing_as_a_todo_app_does_them() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options::default());
        let app = notify(&db, &smtp).await;
        let recur = kit::spawn(Recur::new(db.store.clone())).await;
        let topic = Topic::default();
        let scheduler = scheduler(&db, topic.clone());
        let now = Utc::now().trunc_subsecs(0);
        let snoozed = kit::reminder(&db.store, "Snoozed", now - Duration::seconds(1)).await;
        let cancelled = kit::reminder(&db.store, "Cancelled", now - Duration::seconds(1)).await;
        let finished = kit::reminder(&db.store, "Finished", now - Duration::seconds(1)).await;
        let dtstart = (now - Duration::seconds(1))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let series = kit::recurring(
            &db.store,
            "FREQ=DAILY",
            &dtstart,
            "UTC",
            now - Duration::seconds(1),
            "latest",
            &[],
        )
        .await;

        // The scheduler publishes all four; the app then changes each before its event is
        // delivered.
        assert_eq!(scheduler.pass().await.unwrap().published(), 4, "{}", db.backend);
        let on_topic = topic.take();
        let new_time = now + Duration::seconds(3);
        let sql = format!(
            "UPDATE reminders SET remind_at = $1 WHERE id = {}",
            snoozed.reminder_id
        );
        db.execute(&sql, Some(new_time)).await.unwrap();
        assert_eq!(
            row(&db, &snoozed).await.0,
            "pending",
            "{}: moved is pending again",
            db.backend
        );
        let sql = format!(
            "UPDATE reminders SET state = 'cancelled' WHERE id = {}",
            cancelled.reminder_id
        );
        db.execute(&sql, None).await.unwrap();
        let sql = format!("UPDATE tasks SET status = 'done' WHERE id = {}", finished.task_id);
        db.execute(&sql, None).await.unwrap();
        let sql = format!("DELETE FROM recurring_tasks WHERE id = {}", series.id);
        db.execute(&sql, None).await.unwrap();

        for event in &on_topic {
            let to = if event.stream == todo_events_domain::events::Stream::Reminders {
                &app
            } else {
                &recur
            };
            let (ty, body) = deliver(to, event).await;
            assert!(
                ty.ends_with(".skipped"),
                "{}: {}: {ty} {body}",
                db.backend,
                event.id
            );
        }
        assert_eq!(smtp.accepted(), 0, "{}: nothing at the old time", db.backend);
        assert_eq!(
            db.store.instances_of(series.id).await.unwrap().len(),
            0,
            "{}",
            db.backend
        );
        assert_eq!(
            scheduler.pass().await.unwrap().published(),
            0,
            "{}: nothing before the new time",
            db.backend
        );

        sleep_until(new_time + Duration::milliseconds(100)).await;
        assert_eq!(scheduler.pass().await.unwrap().published(), 1, "{}", db.backend);
        let at_new_time = topic.take();
        assert!(at_new_time[0]
            .id
            .ends_with(&todo_events_domain::time::rfc3339(new_time)));
        for event in at_new_time.iter().chain(&on_topic[..1]) {
            deliver(&app, event).await;
        }
        deliver(&app, &at_new_time[0]).await;
        assert_eq!(row(&db, &snoozed).await.0, "sent", "{}", db.backend);
        assert_eq!(smtp.accepted(), 1, "{}: the snoozed reminder, once", db.backend);
        assert!(
            smtp.copies().values().all(|&n| n == 1),
            "{}: one copy",
            db.backend
        );

        // Snoozed again after it went out ("remind me again in a moment"): pending again,
        // mailed once more at the new time.
        let again = Utc::now().trunc_subsecs(0) + Duration::seconds(1);
        let sql = format!(
            "UPDATE reminders SET remind_at = $1 WHERE id = {}",
            snoozed.reminder_id
        );
        db.execute(&sql, Some(again)).await.unwrap();
        assert_eq!(row(&db, &snoozed).await.0, "pending", "{}", db.backend);
        sleep_until(again + Duration::milliseconds(100)).await;
        assert_eq!(scheduler.pass().await.unwrap().published(), 1, "{}", db.backend);
        for event in topic.take() {
            deliver(&app, &event).await;
        }
        assert_eq!(smtp.accepted(), 2, "{}", db.backend);
    }
}

#[tokio::test]
async fn what_came_of_each_reminder_is_published_once_per_outcome_and_readable_by_sql() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let b = db.backend;
        let smtp = SmtpServer::start(&Options::default());
        let app = notify(&db, &smtp).await;
        let topic = Topic::default();
        let mut c = SchedulerConfig::local(String::new(), String::new());
        c.owner = "status".into();
        c.notification_events = true;
        let scheduler = Scheduler::new(db.store.clone(), topic.clone(), c);
        let now = Utc::now().trunc_subsecs(0);
        let sent = kit::reminder(&db.store, "Sent", now - Duration::seconds(1)).await;
        let cancelled = kit::reminder(&db.store, "Cancelled", now - Duration::seconds(1)).await;
        let quiet = kit::reminder(&db.store, "Quiet", now - Duration::seconds(1)).await;
        let end = now + Duration::seconds(3);
        let zone = Zone::parse("Europe/Berlin").unwrap();
        let local = |t: DateTime<Utc>| zone.wall_time(t).format("%H:%M:%S").to_string();
        let sql = format!(
            "INSERT INTO user_preferences (user_id, quiet_start, quiet_end) VALUES ({}, '{}', '{}')",
            quiet.user_id,
            local(now - Duration::hours(1)),
            local(end)
        );
        db.execute(&sql, None).await.unwrap();

        assert_eq!(scheduler.pass().await.unwrap().published(), 3, "{b}");
        let due_events = topic.take();
        let sql = format!(
            "UPDATE reminders SET state = 'cancelled' WHERE id = {}",
            cancelled.reminder_id
        );
        db.execute(&sql, None).await.unwrap();
        for _ in 0..2 {
            for event in &due_events {
                deliver(&app, event).await;
            }
        }
        let report = scheduler.pass().await.unwrap();
        assert_eq!((report.published(), report.statuses_published), (0, 3), "{b}");
        let mut statuses: Vec<(String, String, &str)> =
            topic.take().into_iter().map(|e| (e.id, e.ty, e.source)).collect();
        statuses.sort();
        let mut expected = vec![
            (
                format!("{}/sent", sent.event_id()),
                "dev.todo.notification.sent".to_owned(),
                "/todo/notify",
            ),
            (
                format!("{}/skipped", cancelled.event_id()),
                "dev.todo.notification.skipped".into(),
                "/todo/notify",
            ),
            (
                format!("{}/deferred", quiet.event_id()),
                "dev.todo.notification.deferred".into(),
                "/todo/notify",
            ),
        ];
        expected.sort();
        assert_eq!(
            statuses, expected,
            "{b}: one per outcome, the redeliveries added none"
        );
        assert_eq!(
            scheduler.pass().await.unwrap().statuses_published,
            0,
            "{b}: each once"
        );

        sleep_until(end + Duration::milliseconds(200)).await;
        assert_eq!(scheduler.pass().await.unwrap().published(), 1, "{b}");
        for event in topic.take() {
            deliver(&app, &event).await;
        }
        assert_eq!(scheduler.pass().await.unwrap().statuses_published, 1, "{b}");
        assert_eq!(topic.take()[0].id, format!("{}/sent", quiet.event_id()), "{b}");
        // The todo app's view: the latest outcome of each reminder.
        let latest = db
            .texts("SELECT outcome FROM notification_status ORDER BY reminder_id")
            .await;
        assert_eq!(latest, ["sent", "skipped", "sent"], "{b}");
        let recorded = db.texts("SELECT id FROM notification_events").await;
        assert_eq!(recorded.len(), 4, "{b}: {recorded:?}");
        assert_eq!(smtp.accepted(), 2, "{b}");
        // The retention: a pass deletes what is older, published or not.
        let mut c = SchedulerConfig::local(String::new(), String::new());
        c.notification_retention = todo_events_domain::Retention::For(todo_events_domain::HumanDuration(
            std::time::Duration::from_secs(1),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        Scheduler::new(db.store.clone(), topic.clone(), c)
            .pass()
            .await
            .unwrap();
        assert!(
            db.texts("SELECT id FROM notification_events").await.is_empty(),
            "{b}"
        );
    }
}

#[tokio::test]
async fn a_reminder_arrives_in_its_user_s_language_with_dates_written_for_it() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let b = db.backend;
        let smtp = SmtpServer::start(&Options::default());
        let app = notify(&db, &smtp).await;
        let r = kit::reminder(
            &db.store,
            "Blumen gießen",
            Utc::now().trunc_subsecs(0) - Duration::seconds(1),
        )
        .await;
        let sql = format!(
            "INSERT INTO user_preferences (user_id, locale) VALUES ({}, 'de-DE')",
            r.user_id
        );
        db.execute(&sql, None).await.unwrap();
        let sql = format!("UPDATE tasks SET due_at = $1 WHERE id = {}", r.task_id);
        db.execute(&sql, Some("2030-01-10T08:00:00Z".parse().unwrap()))
            .await
            .unwrap();
        let (ty, body) = deliver(&app, &Outgoing::from(&r.due().1)).await;
        assert_eq!(ty, "dev.todo.notification.sent", "{b}: {body}");
        let received = smtp.messages();
        assert_eq!(received.len(), 1, "{b}");
        let raw = String::from_utf8_lossy(&received[0].raw).into_owned();
        let mail = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        assert_eq!(
            mail.subject().unwrap(),
            "Erinnerung: Blumen gießen (fällig am Donnerstag, 10. Januar 2030 um 09:00)",
            "{b}"
        );
        let text = mail.body_text(0).unwrap();
        assert!(
            text.contains("Fällig: Donnerstag, 10. Januar 2030 um 09:00 CET"),
            "{b}: {text}"
        );
        assert!(text.contains("Aufgabe öffnen"), "{b}: {text}");
        let html = mail.body_html(0).unwrap();
        assert!(html.contains("<html lang=\"de\">"), "{b}: {html}");
    }
}
