//! "Once" outlives the retention (docs/DESIGN.md, "History"): a reminder sent, or failed
//! for good, whose deliveries the retention has since deleted, is answered `duplicate` when
//! its event comes again, from the reminder's own state; the event of a moved reminder's
//! earlier time is `skipped`. Nothing reaches the SMTP server twice (every copy counted
//! there) and no delivery row comes back. notify over real HTTP, on a fresh SQLite file and
//! a fresh PostgreSQL database.

use chrono::{Duration, SubsecRound, Utc};
use notify::config::SmtpSettings;
use notify::{Notify, NotifyConfig};
use todo_events_store::history::Prune;
use todo_events_store::ReminderState;
use todo_events_testkit::smtp::{Options as SmtpOptions, SmtpServer};
use todo_events_testkit::{self as kit, reply, ReminderFixture, TestApp, TestDb};

const REMINDER: &str = "dev.todo.reminder.due";

/// Posts `r`'s event: the reply's type and reason.
async fn post(app: &TestApp, r: &ReminderFixture) -> (String, String) {
    let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
    assert_eq!(status, 200, "{body}");
    (ty, body["reason"].as_str().unwrap_or_default().to_owned())
}

/// Deletes every delivery there is, as the retention does once they are old enough.
async fn prune_everything(db: &TestDb) -> u64 {
    let p = Prune {
        deliveries_before: Some(Utc::now() + Duration::minutes(1)),
        statuses_before: None,
        batch: 1_000,
    };
    db.store.prune(&p).await.unwrap().deliveries
}

#[tokio::test]
async fn an_event_for_a_delivery_the_retention_deleted_sends_nothing_again() {
    if !kit::require::smtp() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        // Every message to fails@ is refused for good.
        let smtp = SmtpServer::start(&SmtpOptions {
            replies: vec!["rcpt:fails@example.test=550 5.1.1 No such user".into()],
            ..Default::default()
        });
        let settings = SmtpSettings::new(&format!("smtp://127.0.0.1:{}?tls=none", smtp.port)).unwrap();
        let app = kit::spawn(Notify::new(db.store.clone(), NotifyConfig::smtp(settings)).unwrap()).await;
        let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
        let sent = kit::reminder(&db.store, "Pay the rent", due).await;
        let failed = kit::reminder(&db.store, "Call the bank", due).await;
        db.execute(
            &format!(
                "UPDATE users SET email = 'fails@example.test' WHERE id = {}",
                failed.user_id
            ),
            None,
        )
        .await
        .unwrap();
        assert_eq!(post(&app, &sent).await.0, "dev.todo.notification.sent", "{b}");
        assert_eq!(post(&app, &failed).await.0, "dev.todo.notification.failed", "{b}");
        assert_eq!(smtp.accepted(), 1, "{b}");

        assert_eq!(prune_everything(&db).await, 2, "{b}: both deliveries deleted");
        for (r, state, reason) in [
            (&sent, ReminderState::Sent, "already sent for this time"),
            (
                &failed,
                ReminderState::Failed,
                "already failed for good for this time",
            ),
        ] {
            assert_eq!(
                db.store.reminder_state(r.reminder_id).await.unwrap(),
                Some(state),
                "{b}"
            );
            assert_eq!(
                post(&app, r).await,
                ("dev.todo.notification.duplicate".to_owned(), reason.to_owned()),
                "{b}"
            );
            assert!(
                db.store.deliveries_of(r.reminder_id).await.unwrap().is_empty(),
                "{b}: no row back"
            );
        }
        // The app moves the sent reminder on: its earlier time's event is stale.
        let later = due + Duration::hours(1);
        db.execute(
            &format!(
                "UPDATE reminders SET remind_at = $1 WHERE id = {}",
                sent.reminder_id
            ),
            Some(later),
        )
        .await
        .unwrap();
        let (ty, reason) = post(&app, &sent).await;
        assert_eq!(
            (ty.as_str(), reason.as_str()),
            (
                "dev.todo.notification.skipped",
                "remind_at does not match the reminder (it was moved)"
            ),
            "{b}"
        );
        assert_eq!(smtp.accepted(), 1, "{b}: nothing more reached the SMTP server");
        assert_eq!(smtp.messages().len(), 1, "{b}");
        checked += 1;
    }
    assert_eq!(checked, 2, "both backends checked");
}
