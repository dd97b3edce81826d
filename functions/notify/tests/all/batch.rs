//! The consumer mode's batches: many reminder events in one call, each mailed once, on
//! SQLite and PostgreSQL.

use chrono::{Duration, SubsecRound, Utc};
use notify::event::NotifyEvent;
use notify::{Notify, NotifyConfig};
use todo_events_domain::ReminderDue;
use todo_events_host::{Function, Outcome};
use todo_events_store::ReminderState;
use todo_events_testkit as kit;

fn due(r: &kit::ReminderFixture) -> (String, ReminderDue) {
    r.due()
}

/// Reminder events as notify takes them.
fn events<const N: usize>(dues: [(String, ReminderDue); N]) -> Vec<(String, NotifyEvent)> {
    dues.into_iter().map(|(id, due)| (id, due.into())).collect()
}

#[tokio::test]
async fn a_batch_mails_each_reminder_once() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let notify = Notify::new(db.store.clone(), NotifyConfig::local(outbox.path().to_owned())).unwrap();
        let at = Utc::now().trunc_subsecs(0) - Duration::seconds(5);
        let one = kit::reminder(&db.store, "Pay the rent", at).await;
        let two = kit::reminder(&db.store, "Call the plumber", at).await;
        let cancelled = kit::reminder(&db.store, "Cancelled", at).await;
        db.store
            .set_reminder_state(cancelled.reminder_id, ReminderState::Cancelled)
            .await
            .unwrap();
        let mut moved = due(&two);
        moved.1.remind_at = at - Duration::hours(1);

        let answers = notify
            .handle_batch(events([due(&one), due(&two), due(&one), due(&cancelled), moved]))
            .await;
        let outcomes: Vec<Outcome> = answers
            .iter()
            .map(|a| a.as_ref().expect("handled").outcome)
            .collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Done("sent"),
                Outcome::Done("sent"),
                Outcome::Duplicate,
                Outcome::Skipped,
                Outcome::Skipped,
            ],
            "{}: {answers:?}",
            db.backend
        );
        let files = std::fs::read_dir(outbox.path()).unwrap().count();
        assert_eq!(files, 2, "{}", db.backend);
        for r in [&one, &two] {
            let deliveries = db.store.deliveries_of(r.reminder_id).await.unwrap();
            assert_eq!(deliveries.len(), 1, "{}", db.backend);
            assert_eq!(deliveries[0].status.as_str(), "sent", "{}", db.backend);
            assert_eq!(
                db.store
                    .reminder_state(r.reminder_id)
                    .await
                    .unwrap()
                    .map(|s| s.as_str()),
                Some("sent")
            );
        }

        // Redelivered as a whole: duplicates, no new mail.
        let again = notify.handle_batch(events([due(&one), due(&two)])).await;
        for answer in &again {
            assert_eq!(
                answer.as_ref().unwrap().outcome,
                Outcome::Duplicate,
                "{}: {again:?}",
                db.backend
            );
        }
        assert_eq!(
            std::fs::read_dir(outbox.path()).unwrap().count(),
            2,
            "{}",
            db.backend
        );
    }
}
