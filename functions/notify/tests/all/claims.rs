//! Fenced claims with a real stale claimer, over HTTP, on SQLite and PostgreSQL, for e-mail
//! (a real SMTP server) and webhooks (a real receiver). Two notify instances share the
//! database: A with a 1 s delivery lease, B with a 10 s one. The receiver holds every answer
//! 3 s, so A's lease runs out while A waits; B takes the delivery over and sends; A's answer
//! comes (a transient failure: A releases; a refusal: A finishes `failed`) while B's claim is
//! live; then a third delivery C comes. Without fencing A's release would free B's claim (C
//! sends a third copy) and A's `failed` would overwrite B's `sent`. Counted where a user sees
//! it: copies at the receiver, the delivery's row.
//! Skipped, with a message, where the test virtualenv cannot be made (`require::receiver`).

use chrono::{Duration, SubsecRound, Utc};
use notify::config::SmtpSettings;
use notify::{Notify, NotifyConfig};
use std::time::Duration as StdDuration;
use todo_events_domain::HumanDuration;
use todo_events_store::{DeliveryStatus, ReminderState};
use todo_events_testkit::smtp::{self, SmtpServer};
use todo_events_testkit::webhook::{Endpoint, Options, WebhookReceiver};
use todo_events_testkit::{self as kit, reply, ReminderFixture, TestApp, TestDb};

const REMINDER: &str = "dev.todo.reminder.due";
/// How long the receivers hold each answer; longer than A's lease.
const HOLD: f64 = 3.0;

async fn instance(db: &TestDb, mut config: NotifyConfig, lease_secs: u64) -> TestApp {
    config.delivery_lease = HumanDuration(StdDuration::from_secs(lease_secs));
    config.channels.allow_private = true;
    config.channels.timeout = StdDuration::from_secs(8);
    // Each answer is awaited (longer than the 3 s hold), as this test is about the claims.
    config.channels.patience = StdDuration::from_secs(8);
    kit::spawn(Notify::new(db.store.clone(), config).unwrap()).await
}

/// A, B and C as above: A at once, B after A's lease ran out, C after A's answer and
/// before B's. Returns the three answers (status, type).
async fn stale_claimer_race(a: &TestApp, b: &TestApp, r: &ReminderFixture) -> [(u16, String); 3] {
    let (id, data) = (r.event_id(), r.data());
    let (ra, rb, rc) = tokio::join!(
        post(a, 0, &id, &data),
        post(b, 1_300, &id, &data),
        post(b, 3_500, &id, &data)
    );
    [ra, rb, rc]
}

/// Posts the event to `app` after `after_ms`: (status, reply type).
async fn post(app: &TestApp, after_ms: u64, id: &str, data: &serde_json::Value) -> (u16, String) {
    tokio::time::sleep(StdDuration::from_millis(after_ms)).await;
    let (status, ty, _) = reply(app.post_binary(REMINDER, id, data).await).await;
    (status, ty)
}

#[tokio::test]
async fn a_stale_webhook_claimer_neither_frees_the_take_over_nor_records_over_it() {
    if !kit::require::receiver() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let bk = db.backend;
        // One pair of instances per database: a function's pool connections live on the
        // runtimes of the instance that opened them.
        let outbox = tempfile::tempdir().unwrap();
        let a = instance(&db, NotifyConfig::local(outbox.path().into()), 1).await;
        let b = instance(&db, NotifyConfig::local(outbox.path().into()), 10).await;
        // A's request is answered 503 (A releases) or 400 (A finishes `failed`).
        for first in ["503", "400"] {
            let receiver = WebhookReceiver::start(
                &[Endpoint {
                    name: "hook",
                    secret: None,
                }],
                &Options {
                    replies: vec![format!("hook:1={first}")],
                    delay: Some(HOLD),
                    ..Options::default()
                },
            );
            let url = receiver.url("hook");
            let r = kit::reminder_with_webhook(&db.store, "Fenced", "webhook", &url, None).await;

            let [ra, rb, rc] = stale_claimer_race(&a, &b, &r).await;
            let case = format!("{bk}, A answered {first}");
            assert!(
                !(200..300).contains(&ra.0),
                "{case}: A's claim was taken over, it must not answer as recorded: {ra:?}"
            );
            assert_eq!(
                (rb.0, rb.1.as_str()),
                (200, "dev.todo.notification.sent"),
                "{case}"
            );
            assert_eq!(
                (rc.0, rc.1.as_str()),
                (200, "dev.todo.notification.duplicate"),
                "{case}: C waited for B's live claim"
            );
            assert_eq!(receiver.received(), 2, "{case}: A's copy and B's, no third");
            let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
            let seen: Vec<_> = rows.iter().map(|d| (d.status, d.attempts)).collect();
            assert_eq!(seen, [(DeliveryStatus::Sent, 2)], "{case}: B's outcome is kept");
            assert_eq!(
                db.store.reminder_state(r.reminder_id).await.unwrap(),
                Some(ReminderState::Sent),
                "{case}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "both cases on at least SQLite, got {checked}");
}

#[tokio::test]
async fn a_stale_mail_claimer_neither_frees_the_take_over_nor_records_over_it() {
    if !kit::require::smtp() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let bk = db.backend;
        let mut server = SmtpServer::start(&smtp::Options {
            data_delay: Some(HOLD),
            ..smtp::Options::default()
        });
        let url = format!("smtp://127.0.0.1:{}?tls=none", server.port);
        let config = || {
            let mut s = SmtpSettings::new(&url).expect("valid SMTP_URL");
            s.timeout = StdDuration::from_secs(10);
            NotifyConfig::smtp(s)
        };
        let a = instance(&db, config(), 1).await;
        let b = instance(&db, config(), 10).await;
        // A's DATA is answered 451 (A releases) or 554 (A finishes `failed`).
        for first in ["451 4.3.0 Try again later", "554 5.7.1 Refused"] {
            server.command(&format!("reply data:*:1={first}"));
            let accepted_before = server.accepted();
            let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
            let r = kit::reminder(&db.store, "Fenced mail", due).await;

            let [ra, rb, rc] = stale_claimer_race(&a, &b, &r).await;
            let case = format!("{bk}, A answered {first}");
            assert!(
                !(200..300).contains(&ra.0),
                "{case}: A's claim was taken over, it must not answer as recorded: {ra:?}"
            );
            assert_eq!(
                (rb.0, rb.1.as_str()),
                (200, "dev.todo.notification.sent"),
                "{case}"
            );
            assert_eq!(
                (rc.0, rc.1.as_str()),
                (200, "dev.todo.notification.duplicate"),
                "{case}: C waited for B's live claim"
            );
            assert_eq!(
                server.accepted() - accepted_before,
                1,
                "{case}: B's mail only (A's was refused), no second"
            );
            let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
            let seen: Vec<_> = rows.iter().map(|d| (d.status, d.attempts)).collect();
            assert_eq!(seen, [(DeliveryStatus::Sent, 2)], "{case}: B's outcome is kept");
            assert_eq!(
                db.store.reminder_state(r.reminder_id).await.unwrap(),
                Some(ReminderState::Sent),
                "{case}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "both cases on at least SQLite, got {checked}");
}
