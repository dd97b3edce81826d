//! A user erased on request (docs/DESIGN.md, "History"): `todo-events erase-user` as an
//! operator runs it, against the database notify is serving from, on a fresh SQLite file and
//! a fresh PostgreSQL database. Afterwards an event of theirs still on its way (a batch
//! beside another user's) sends nothing and fails nothing of the batch: their mail is not at
//! the SMTP server, the other user's is, once; and no row of todo-events' names them.

use chrono::{Duration, SubsecRound, Utc};
use notify::event::NotifyEvent;
use notify::{config::SmtpSettings, Notify, NotifyConfig};
use std::process::Command;
use todo_events_host::{Function, Outcome};
use todo_events_testkit::smtp::{Options, SmtpServer};
use todo_events_testkit::{self as kit, ReminderFixture};

const BIN: &str = env!("CARGO_BIN_EXE_todo-events");

fn event(r: &ReminderFixture) -> (String, NotifyEvent) {
    let (id, due) = r.due();
    (id, due.into())
}

#[tokio::test]
async fn an_erased_user_s_event_on_its_way_sends_nothing_and_fails_no_batch() {
    if !kit::require::smtp() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        let smtp = SmtpServer::start(&Options::default());
        let settings = SmtpSettings::new(&format!("smtp://127.0.0.1:{}?tls=none", smtp.port)).unwrap();
        let notify = Notify::new(db.store.clone(), NotifyConfig::smtp(settings)).unwrap();
        let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
        // Mailed before the request: its delivery names the user's address, its status event
        // the user.
        let before = kit::reminder(&db.store, "Renew the passport", due).await;
        let answers = notify.handle_batch(vec![event(&before)]).await;
        assert_eq!(answers[0].as_ref().unwrap().outcome, Outcome::Done("sent"), "{b}");
        // The same user's next reminder, its event already on its way; an endpoint with
        // its secret; and another user's reminder in the same batch.
        let task = db
            .store
            .insert_task(&todo_events_store::seed::NewTask {
                user_id: before.user_id,
                title: "Pick up the passport",
                description: "",
                due_at: None,
            })
            .await
            .unwrap();
        let on_its_way = ReminderFixture {
            user_id: before.user_id,
            task_id: task,
            reminder_id: db.store.insert_reminder(task, before.user_id, due).await.unwrap(),
            remind_at: due,
        };
        kit::webhook_endpoint(
            &db.store,
            before.user_id,
            "https://hooks.example.test/ada",
            Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        )
        .await;
        let other = kit::reminder(&db.store, "Water the plants", due).await;

        let out = Command::new(BIN)
            .args(["erase-user", &before.user_id.to_string()])
            .env("DATABASE_URL", &db.url)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{b}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.starts_with(&format!(
                "erased user {}: 1 reminders cancelled, 0 recurring tasks stopped, 1 deliveries anonymised, \
                 0 agenda deliveries, 1 status events, 1 endpoints and 0 preferences deleted",
                before.user_id
            )),
            "{b}: {said}"
        );

        let answers = notify.handle_batch(vec![event(&on_its_way), event(&other)]).await;
        let outcomes: Vec<_> = answers.iter().map(|a| a.as_ref().map(|r| r.outcome)).collect();
        assert_eq!(
            outcomes,
            [Ok(Outcome::Skipped), Ok(Outcome::Done("sent"))],
            "{b}: {answers:?}"
        );
        let copies = smtp.copies();
        assert_eq!(
            (smtp.accepted(), copies.len()),
            (2, 2),
            "{b}: the first mail and the other user's"
        );
        let named = format!(
            "SELECT COALESCE(recipient, '-') FROM deliveries WHERE reminder_id IN ({}, {})",
            before.reminder_id, on_its_way.reminder_id
        );
        assert_eq!(db.texts(&named).await, ["-"], "{b}: the one delivery, anonymised");
        let endpoints = format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM channel_endpoints WHERE user_id = {}",
            before.user_id
        );
        assert_eq!(db.texts(&endpoints).await, ["0"], "{b}");
        checked += 1;
    }
    assert_eq!(checked, 2, "both backends checked");
}
