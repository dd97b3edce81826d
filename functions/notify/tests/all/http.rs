//! notify over real HTTP, against a fresh SQLite file and a fresh PostgreSQL database.

use chrono::{Duration, SubsecRound, Utc};
use notify::{Notify, NotifyConfig};
use std::path::Path;
use todo_events_store::{ReminderState, TaskStatus};
use todo_events_testkit::{self as kit, reply, TestApp, TestDb};

const REMINDER: &str = "dev.todo.reminder.due";

fn mails(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect(),
        Err(_) => vec![],
    }
}

async fn app(db: &TestDb, outbox: &Path) -> TestApp {
    kit::spawn(Notify::new(db.store.clone(), NotifyConfig::local(outbox.to_owned())).unwrap()).await
}

#[tokio::test]
async fn a_reminder_is_mailed_once_however_often_it_is_delivered() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let app = app(&db, outbox.path()).await;
        let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
        let r = kit::reminder(&db.store, "Pay the rent", due).await;

        let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{}: {body}",
            db.backend
        );
        assert_eq!(body["outcome"], "sent");
        assert_eq!(body["reminder_id"], r.reminder_id.get());

        for _ in 0..2 {
            let (status, ty, body) =
                reply(app.post_structured(REMINDER, &r.event_id(), &r.data()).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.duplicate"),
                "{}: {body}",
                db.backend
            );
        }

        let sent = mails(outbox.path());
        assert_eq!(sent.len(), 1, "{}: exactly one e-mail", db.backend);
        assert!(sent[0].contains("Subject: Reminder: Pay the rent"), "{}", sent[0]);
        assert!(
            sent[0].contains("To: \"Test User\" <ada@example.test>"),
            "{}",
            sent[0]
        );
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("sent")
        );
        let deliveries = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].status.as_str(), "sent");
        assert_eq!(deliveries[0].attempts, 1);
    }
}

#[tokio::test]
async fn five_concurrent_deliveries_send_one_mail() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let app = app(&db, outbox.path()).await;
        let r = kit::reminder(&db.store, "Call the dentist", Utc::now().trunc_subsecs(0)).await;
        let (id, data) = (r.event_id(), r.data());
        let answers = futures::future::join_all((0..5).map(|i| {
            let (app, id, data) = (&app, id.clone(), data.clone());
            async move {
                if i % 2 == 0 {
                    reply(app.post_binary(REMINDER, &id, &data).await).await
                } else {
                    reply(app.post_structured(REMINDER, &id, &data).await).await
                }
            }
        }))
        .await;
        let sent = answers
            .iter()
            .filter(|(_, ty, _)| ty == "dev.todo.notification.sent")
            .count();
        let dup = answers
            .iter()
            .filter(|(_, ty, _)| ty == "dev.todo.notification.duplicate")
            .count();
        assert!(
            answers.iter().all(|(s, _, _)| *s == 200),
            "{}: {answers:?}",
            db.backend
        );
        assert_eq!((sent, dup), (1, 4), "{}: {answers:?}", db.backend);
        assert_eq!(mails(outbox.path()).len(), 1, "{}", db.backend);
        assert_eq!(db.store.deliveries_of(r.reminder_id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn cancelled_reminders_done_tasks_and_moved_reminders_are_skipped() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let app = app(&db, outbox.path()).await;
        let now = Utc::now().trunc_subsecs(0);

        let cancelled = kit::reminder(&db.store, "Cancelled", now).await;
        db.store
            .set_reminder_state(cancelled.reminder_id, ReminderState::Cancelled)
            .await
            .unwrap();
        let done = kit::reminder(&db.store, "Done already", now).await;
        db.store
            .set_task_status(done.task_id, TaskStatus::Done)
            .await
            .unwrap();
        let moved = kit::reminder(&db.store, "Moved", now).await;
        let mut stale = moved.data();
        stale["remind_at"] = todo_events_domain::time::rfc3339(now - Duration::hours(1)).into();
        let mut missing = cancelled.data();
        missing["reminder_id"] = 999_999.into();

        for (what, data) in [
            ("cancelled", cancelled.data()),
            ("done", done.data()),
            ("moved", stale),
            ("missing", missing),
        ] {
            let (status, ty, body) = reply(app.post_binary(REMINDER, "x", &data).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.skipped"),
                "{} {what}: {body}",
                db.backend
            );
            assert!(body["reason"].as_str().unwrap().len() > 5);
        }
        assert!(mails(outbox.path()).is_empty());
        let counts = db.store.table_counts().await.unwrap();
        assert_eq!(counts.iter().find(|(t, _)| *t == "deliveries").unwrap().1, 0);
    }
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_changes_nothing() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let app = app(&db, outbox.path()).await;
        let r = kit::reminder(&db.store, "Bad input target", Utc::now().trunc_subsecs(0)).await;
        let before = db.store.table_counts().await.unwrap();
        let cases = kit::bad_cases(REMINDER, "dev.todo.recurring-task.due", &r.data(), 64 * 1024);
        kit::assert_bad_cases_rejected(&app, cases).await;
        // notify's second type, the daily agenda, gets the same table.
        let agenda = serde_json::json!({"user_id": r.user_id, "date": "2026-11-27", "agenda_at": "2026-11-27T06:00:00Z"});
        let cases = kit::bad_cases(
            "dev.todo.agenda.due",
            "dev.todo.recurring-task.due",
            &agenda,
            64 * 1024,
        );
        assert_eq!(cases.len(), 53, "rows of the table");
        kit::assert_bad_cases_rejected(&app, cases).await;
        assert_eq!(db.store.table_counts().await.unwrap(), before, "{}", db.backend);
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("pending")
        );
        assert!(mails(outbox.path()).is_empty());
    }
}

#[tokio::test]
async fn a_database_outage_is_503_and_not_ready() {
    let outbox = tempfile::tempdir().unwrap();
    let app = kit::spawn(
        Notify::new(
            kit::unreachable_store(),
            NotifyConfig::local(outbox.path().into()),
        )
        .unwrap(),
    )
    .await;
    let data = serde_json::json!({"reminder_id": 1, "task_id": 1, "user_id": 1, "remind_at": "2026-11-27T09:00:00Z"});
    let response = app
        .post_binary(REMINDER, "reminder/1/2026-11-27T09:00:00Z", &data)
        .await;
    kit::assert_unavailable(response, "the database", kit::UNREACHABLE_STORE_TEXT).await;
    let ready = app
        .client
        .get(format!("{}/health/readiness", app.url))
        .send()
        .await
        .unwrap();
    kit::assert_unavailable(ready, "the database", kit::UNREACHABLE_STORE_TEXT).await;
    let alive = app
        .client
        .get(format!("{}/health/liveness", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status().as_u16(), 200);
    assert!(mails(outbox.path()).is_empty());
}

#[tokio::test]
async fn a_failed_write_is_retried_and_then_mailed_once() {
    for db in kit::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let app = app(&db, &outbox).await;
        // Replace the outbox with a file: every write fails until it is put back.
        std::fs::remove_dir_all(&outbox).unwrap();
        std::fs::write(&outbox, "not a directory").unwrap();
        let r = kit::reminder(&db.store, "Retry me", Utc::now().trunc_subsecs(0)).await;
        let response = app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
        assert_eq!(response.status().as_u16(), 503, "{}", db.backend);
        let deliveries = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(deliveries[0].status.as_str(), "sending", "not marked sent");

        std::fs::remove_file(&outbox).unwrap();
        std::fs::create_dir(&outbox).unwrap();
        let (status, ty, _) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{}",
            db.backend
        );
        assert_eq!(mails(&outbox).len(), 1);
        let deliveries = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(
            (deliveries[0].status.as_str(), deliveries[0].attempts),
            ("sent", 2)
        );
    }
}

#[tokio::test]
async fn health_and_metrics() {
    let db = kit::sqlite().await;
    let outbox = tempfile::tempdir().unwrap();
    let app = app(&db, outbox.path()).await;
    let r = kit::reminder(&db.store, "Metrics", Utc::now().trunc_subsecs(0)).await;
    app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
    app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
    app.post_binary("nope", "x", &r.data()).await;
    let ready = app
        .client
        .get(format!("{}/health/readiness", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let text = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"todo_events_events_total{function="notify",outcome="sent",type="dev.todo.reminder.due"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"todo_events_events_total{function="notify",outcome="duplicate",type="dev.todo.reminder.due"} 1"#), "{text}");
    assert!(text.contains(r#"outcome="invalid",type="other"} 1"#), "{text}");
    assert!(
        text.contains("todo_events_event_handling_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"todo_events_event_lateness_seconds_count{function="notify",type="dev.todo.reminder.due"} 1"#
        ),
        "lateness is measured once, for the mail sent: {text}"
    );
    let missing = app
        .client
        .get(format!("{}/nowhere", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let wrong = app.client.get(format!("{}/", app.url)).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 405);
}
