//! The retention and the erasure (`todo_events_store::history`) on both backends: what goes,
//! what stays because it is still in play, and what an erased user leaves behind.

use super::notify_batches::{claim_at, finish, new_claim};
use chrono::{Duration, SubsecRound, Utc};
use todo_events_store::history::{Prune, Pruned};
use todo_events_store::notify::Route;
use todo_events_store::seed::{NewRecurringTask, NewTask, Preferences};
use todo_events_store::status::NewStatus;
use todo_events_store::{DeliveryStatus, ReminderState, Store};
use todo_events_testkit::{self as kit, ReminderFixture};

/// A status event of `r` recorded at `at`.
async fn status(s: &Store, r: &ReminderFixture, id: &str, at: chrono::DateTime<Utc>) {
    let event = NewStatus {
        id: id.to_owned(),
        ty: "dev.todo.notification.sent".into(),
        outcome: "sent",
        reminder_id: r.reminder_id,
        task_id: r.task_id,
        user_id: r.user_id,
        remind_at: r.remind_at,
        reason: "sent".into(),
        data: serde_json::json!({}),
    };
    assert_eq!(s.record_statuses(&[event], at).await.unwrap(), 1);
}

/// Another reminder of `user`'s, on a task of its own, at `at`.
async fn reminder_of(
    s: &Store,
    user: todo_events_domain::UserId,
    at: chrono::DateTime<Utc>,
) -> ReminderFixture {
    let task_id = s
        .insert_task(&NewTask {
            user_id: user,
            title: "open",
            description: "",
            due_at: None,
        })
        .await
        .unwrap();
    let reminder_id = s.insert_reminder(task_id, user, at).await.unwrap();
    ReminderFixture {
        user_id: user,
        task_id,
        reminder_id,
        remind_at: at,
    }
}

/// Finished deliveries, agenda deliveries and status events older than their cutoff go, a
/// batch at a time; a delivery still `sending` stays while its reminder waits for it at its
/// time, however old its lease, and goes once the reminder has moved on.
#[tokio::test]
async fn the_retention_deletes_what_is_past_it_in_batches_and_keeps_what_is_in_play() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(6);
        let old = now - Duration::days(40);
        let lease = Duration::seconds(60);
        // Sent and failed 40 days ago: both go.
        let mut kept = Vec::new();
        for status in [DeliveryStatus::Sent, DeliveryStatus::Failed] {
            let r = kit::reminder(s, "long done", old).await;
            let held = new_claim(s, claim_at(&r, old, Route::EMAIL), old, lease).await;
            finish(s, held, status, old).await;
        }
        // Sent today: stays.
        let recent = kit::reminder(s, "done today", now).await;
        let held = new_claim(s, claim_at(&recent, now, Route::EMAIL), now, lease).await;
        finish(s, held, DeliveryStatus::Sent, now).await;
        kept.push(recent.reminder_id);
        // Left `sending` 40 days ago, its reminder still published at that time: stays.
        let waiting = kit::reminder(s, "still waits", old).await;
        s.set_reminder_state(waiting.reminder_id, ReminderState::Published)
            .await
            .unwrap();
        new_claim(s, claim_at(&waiting, old, Route::EMAIL), old, lease).await;
        kept.push(waiting.reminder_id);
        // Left `sending` at a time the reminder has since moved from: goes.
        let moved = kit::reminder(s, "moved on", now).await;
        new_claim(s, claim_at(&moved, old, Route::EMAIL), old, lease).await;
        // Status events: one old, one today.
        status(s, &recent, "old/sent", old).await;
        status(s, &recent, "new/sent", now).await;
        // Agenda deliveries: one of 40 days ago, one of today.
        for (date, event) in [(old, "agenda/old"), (now, "agenda/new")] {
            let sql = format!(
                "INSERT INTO agenda_deliveries (user_id, agenda_date, channel, event_id, status, \
                 claimed_at, lease_until) VALUES ({}, '{}', 'email', '{event}', 'sent', $1, $1)",
                recent.user_id,
                date.date_naive()
            );
            db.execute(&sql, Some(date)).await.unwrap();
        }

        let p = Prune {
            deliveries_before: Some(now - Duration::days(30)),
            statuses_before: Some(now - Duration::days(30)),
            batch: 1,
        };
        let (mut pruned, mut batches) = (Pruned::default(), 0);
        loop {
            let batch = s.prune(&p).await.unwrap();
            batches += 1;
            pruned.add(batch);
            if !batch.full(p.batch) {
                break;
            }
        }
        assert_eq!(
            pruned,
            Pruned {
                deliveries: 3,
                agenda_deliveries: 1,
                statuses: 1
            },
            "{b}"
        );
        assert_eq!(
            batches, 4,
            "{b}: a batch of one row per table each time, then none full"
        );
        let left = db
            .texts("SELECT CAST(reminder_id AS TEXT) FROM deliveries ORDER BY reminder_id")
            .await;
        let kept: Vec<String> = kept.iter().map(|id| id.to_string()).collect();
        assert_eq!(left, kept, "{b}");
        assert_eq!(
            db.texts("SELECT id FROM notification_events").await,
            ["new/sent"],
            "{b}"
        );
        assert_eq!(
            db.texts("SELECT event_id FROM agenda_deliveries").await,
            ["agenda/new"],
            "{b}"
        );
        // Nothing past it any more; `off` deletes nothing.
        assert_eq!(s.prune(&p).await.unwrap(), Pruned::default(), "{b}");
        let off = Prune {
            deliveries_before: None,
            statuses_before: None,
            batch: 100,
        };
        assert_eq!(s.prune(&off).await.unwrap(), Pruned::default(), "{b}");
    }
}

/// Erasing a user cancels what would still send to them, anonymises their deliveries (the
/// rows stay: they answer a redelivery), deletes their endpoints, preferences, agenda
/// deliveries and status events, tells of a send still in flight, and leaves every other
/// user's rows as they were.
#[tokio::test]
async fn erasing_a_user_removes_every_row_naming_them_and_nobody_else_s() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(6);
        let lease = Duration::seconds(60);
        let mut users = Vec::new();
        for _ in 0..2 {
            let sent = kit::reminder(s, "sent", now - Duration::hours(1)).await;
            let user = sent.user_id;
            let held = new_claim(s, claim_at(&sent, sent.remind_at, Route::EMAIL), now, lease).await;
            finish(s, held, DeliveryStatus::Sent, now).await;
            let open = reminder_of(s, user, now + Duration::hours(1)).await;
            // A send in flight now (its lease ahead), on the open reminder.
            new_claim(s, claim_at(&open, open.remind_at, Route::EMAIL), now, lease).await;
            kit::webhook_endpoint(
                s,
                user,
                "https://hooks.example.test/secret-path",
                Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            )
            .await;
            s.set_preferences(
                user,
                &Preferences {
                    quiet_start: None,
                    quiet_end: None,
                    quiet_days: None,
                    locale: "de-DE",
                    channels: "email",
                    agenda_at: Some("07:00"),
                },
            )
            .await
            .unwrap();
            s.insert_recurring_task(&NewRecurringTask {
                user_id: user,
                title: "Water the plants",
                description: "",
                rrule: "FREQ=DAILY",
                timezone: "Europe/Berlin",
                dtstart: "2026-11-01T09:00:00",
                next_occurrence: now + Duration::days(1),
                catch_up: todo_events_domain::CatchUp::Latest,
                reminder_offsets: &[],
            })
            .await
            .unwrap();
            status(s, &sent, &format!("{user}/sent"), now).await;
            let sql = format!(
                "INSERT INTO agenda_deliveries (user_id, agenda_date, channel, event_id, status, \
                 recipient, claimed_at, lease_until) VALUES ({user}, '2026-12-01', 'email', 'a{user}', 'sent', \
                 'ada@example.test', $1, $1)"
            );
            db.execute(&sql, Some(now)).await.unwrap();
            users.push((user, sent, open));
        }
        let (erased_user, sent, open) = &users[0];
        let erased = s.erase_user(*erased_user, now).await.unwrap();
        assert_eq!(
            (
                erased.reminders_cancelled,
                erased.recurring_stopped,
                erased.deliveries_anonymised,
                erased.agenda_deliveries,
                erased.statuses,
                erased.endpoints,
                erased.preferences
            ),
            (1, 1, 1, 1, 1, 1, 1),
            "{b}: {erased}"
        );
        assert_eq!(
            erased.in_flight_until,
            Some(now + lease),
            "{b}: the open reminder's send"
        );
        assert_eq!(
            s.reminder_state(open.reminder_id).await.unwrap(),
            Some(ReminderState::Cancelled),
            "{b}"
        );
        assert_eq!(
            s.reminder_state(sent.reminder_id).await.unwrap(),
            Some(ReminderState::Sent),
            "{b}"
        );
        let of = |table: &str, user: todo_events_domain::UserId| {
            format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE user_id = {user}")
        };
        let other = users[1].0;
        for table in [
            "channel_endpoints",
            "user_preferences",
            "agenda_deliveries",
            "notification_events",
        ] {
            assert_eq!(db.texts(&of(table, *erased_user)).await, ["0"], "{b}: {table}");
            assert_eq!(
                db.texts(&of(table, other)).await,
                ["1"],
                "{b}: {table} of the other user"
            );
        }
        let recipients = |user| {
            format!(
                "SELECT COALESCE(recipient, '-') FROM deliveries WHERE reminder_id IN \
                 (SELECT id FROM reminders WHERE user_id = {user}) ORDER BY id"
            )
        };
        assert_eq!(db.texts(&recipients(*erased_user)).await, ["-", "-"], "{b}");
        assert_eq!(db.texts(&recipients(other)).await, ["a@b.c", "-"], "{b}");
        let active =
            format!("SELECT CAST(active AS TEXT) FROM recurring_tasks WHERE user_id = {erased_user}");
        assert!(
            ["false", "0"].contains(&db.texts(&active).await[0].as_str()),
            "{b}"
        );
        // Again: nothing left to change.
        let again = s.erase_user(*erased_user, now).await.unwrap();
        assert_eq!(again.to_string(), "0 reminders cancelled, 0 recurring tasks stopped, 0 deliveries anonymised, 0 agenda deliveries, 0 status events, 0 endpoints and 0 preferences deleted", "{b}");
    }
}
