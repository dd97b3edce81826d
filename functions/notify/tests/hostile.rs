//! The hostile-caller table's notify rows (`crates/testkit/data/hostile_events.json`): events a
//! caller other than the scheduler could send — early, for another time, with another owner's
//! ids — over real HTTP on SQLite and PostgreSQL. Each must be answered `skipped` with a reason
//! that names what was wrong in the request and shows nothing stored, send nothing (no mail in
//! the outbox, no delivery row) and leave the reminder as it was (state and time), so that the
//! scheduler still sends it at its time.

use chrono::{SubsecRound, Utc};
use notify::{Notify, NotifyConfig};
use todo_events_domain::time::rfc3339;
use todo_events_store::ReminderState;
use todo_events_testkit::hostile::{reminder_rows, HOSTILE_NOTIFY_ROWS};
use todo_events_testkit::{self as kit, metric, reply};

const REMINDER: &str = "dev.todo.reminder.due";

#[tokio::test]
async fn hostile_events_send_nothing_write_nothing_and_reveal_nothing() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let app =
            kit::spawn(Notify::new(db.store.clone(), NotifyConfig::local(outbox.path().into())).unwrap())
                .await;
        let now = Utc::now().trunc_subsecs(0);
        // Another user's reminder, whose ids the forged events borrow.
        let other = kit::reminder(&db.store, "Someone else's", now + chrono::Duration::days(3)).await;
        let (mut checked, mut early) = (0, 0);
        for row in reminder_rows() {
            let r = kit::reminder(&db.store, "Water the plants", row.due_in.from(now)).await;
            let data = row.data(&r, &other);
            let edit = &row.event;
            let id = format!(
                "reminder/{}/{}",
                data["reminder_id"],
                data["remind_at"].as_str().unwrap()
            );
            let (status, ty, body) = reply(app.post_binary(REMINDER, &id, &data).await).await;
            let what = format!("{} {:?}: {body}", db.backend, row.name);
            assert_eq!(status, 200, "{what}");
            assert_eq!(ty, format!("dev.todo.notification.{}", row.outcome), "{what}");
            assert_eq!(body["reason"], row.reason, "{what}");
            // Nothing stored that the request did not carry: not the reminder's own time when
            // the event named another, not the address, not the task.
            let text = body.to_string();
            let mut hidden = vec![
                "ada@example.test".to_owned(),
                "Water the plants".to_owned(),
                "Someone else".to_owned(),
            ];
            if edit.remind_at.is_some() {
                hidden.push(rfc3339(r.remind_at));
            }
            for stored in &hidden {
                assert!(
                    !text.contains(stored.as_str()),
                    "{what}: the answer shows {stored:?}"
                );
            }
            // Nothing sent, nothing written.
            assert!(
                db.store.deliveries_of(r.reminder_id).await.unwrap().is_empty(),
                "{what}: a delivery"
            );
            assert_eq!(
                db.store.reminder_state(r.reminder_id).await.unwrap(),
                Some(ReminderState::Pending),
                "{what}: the reminder's state changed"
            );
            let stored = db.store.reminder_contexts(&[r.reminder_id]).await.unwrap();
            let ctx = stored.get(&r.reminder_id).unwrap().as_ref().unwrap();
            assert_eq!(ctx.remind_at, r.remind_at, "{what}: the reminder's time changed");
            checked += 1;
            early += usize::from(row.early);
        }
        assert_eq!(checked, HOSTILE_NOTIFY_ROWS, "{}: rows checked", db.backend);
        assert_eq!(
            std::fs::read_dir(outbox.path()).map(|d| d.count()).unwrap_or(0),
            0,
            "{}: mail sent",
            db.backend
        );
        assert!(db
            .store
            .deliveries_of(other.reminder_id)
            .await
            .unwrap()
            .is_empty());
        let counted = metric(
            &app.metrics().await,
            "todo_events_early_events_total",
            &["function=\"notify\""],
        );
        assert_eq!(counted as usize, early, "{}: early events counted", db.backend);
    }
}
