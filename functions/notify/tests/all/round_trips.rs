//! The statements (round trips) notify sends per batch, counted by PostgreSQL's
//! `pg_stat_statements` (docs/PERFORMANCE.md, "notify's round trips per batch"). Not a test of
//! behaviour and not run by default: it needs a PostgreSQL with `pg_stat_statements` preloaded
//! (`TEST_DATABASE_URL`, the extension created in its admin database), `psql` on the path, and
//! the test virtualenv for the webhook receiver:
//!
//! ```sh
//! TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5499/postgres \
//!   cargo test -p notify --test all round_trips -- --ignored --nocapture
//! ```
//!
//! 1 000 events in 10 batches of 100 through `Notify::handle_batch` (as `notify consume` hands
//! them over), each batch: 55 e-mail only, 10 e-mail and a webhook that answers 204, 10 e-mail
//! and a webhook that answers 503 (its claim given back), 5 e-mail and a push subscription that
//! is gone (410: deactivated), 3 events of moved reminders whose own time was sent (duplicate)
//! and 2 whose was not (stale), 15 redeliveries of events done before (duplicate), 5 of them
//! with their reminder left `published` (settled). Everything they need is seeded and done
//! before the counters are reset; the counts are of the 10 batches alone.

use chrono::{Duration, SubsecRound, Utc};
use notify::config::VapidSettings;
use notify::{Notify, NotifyConfig};
use todo_events_domain::ReminderDue;
use todo_events_host::Function;
use todo_events_store::notify::{Finished, Held, NewClaim, Route};
use todo_events_store::seed::NewEndpoint;
use todo_events_store::{Channel, ReminderState, Store};
use todo_events_testkit::webhook::{Endpoint, Options, WebhookReceiver};
use todo_events_testkit::{self as kit, ReminderFixture, TestDb};

const BATCHES: usize = 10;

/// What a batch's events are, by kind (100 in all).
const NEW: [(&str, usize); 4] = [("email", 55), ("ok", 10), ("busy", 10), ("gone", 5)];

#[tokio::test]
#[ignore = "a measurement: needs pg_stat_statements (see the module docs)"]
async fn statements_per_batch() {
    assert!(kit::require::receiver(), "the webhook receiver is needed");
    let db = kit::postgres().await.expect("PostgreSQL at TEST_DATABASE_URL");
    let receiver = receiver();
    let outbox = tempfile::tempdir().unwrap();
    let notify = with_channels(&db, outbox.path());

    let mut batches = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        batches.push(batch(&db, &notify, &receiver).await);
    }
    psql("SELECT pg_stat_statements_reset()");
    let mut outcomes = std::collections::BTreeMap::new();
    for events in batches {
        let events = events.into_iter().map(|(id, due)| (id, due.into())).collect();
        for answer in notify.handle_batch(events).await {
            let word = match answer {
                Ok(reply) => format!("{:?}", reply.outcome),
                Err(failure) => format!("{failure:?}"),
            };
            *outcomes.entry(word).or_insert(0) += 1;
        }
    }
    println!("answers of the {} events: {outcomes:?}", BATCHES * 100);
    let name = db.url.rsplit('/').next().unwrap();
    println!(
        "{}",
        psql(&format!(
            "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
                 FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database \
                 WHERE datname = '{name}') AND toplevel ORDER BY calls DESC, query"
        ))
    );
}

/// The receiver: webhooks "ok" (204) and "busy" (503), push subscription "gone" (410).
fn receiver() -> WebhookReceiver {
    let hook = |name| Endpoint { name, secret: None };
    WebhookReceiver::start(
        &[hook("ok"), hook("busy")],
        &Options {
            replies: vec!["busy=503".into(), "gone=410".into()],
            push: vec!["gone".into()],
            ..Options::default()
        },
    )
}

/// notify mailing to files in `outbox`, its webhooks and pushes allowed to the receiver on
/// loopback, Web Push on.
fn with_channels(db: &TestDb, outbox: &std::path::Path) -> Notify {
    Notify::new(db.store.clone(), channels_config(outbox)).unwrap()
}

/// The configuration of [`with_channels`].
pub(crate) fn channels_config(outbox: &std::path::Path) -> NotifyConfig {
    let mut config = NotifyConfig::local(outbox.to_owned());
    config.channels.allow_private = true;
    let (private_key, _) = notify::channels::webpush::Vapid::generate();
    config.channels.vapid = Some(VapidSettings {
        private_key: private_key.into(),
        subject: "mailto:ops@todo-events.test".into(),
    });
    config
}

/// One batch's 100 events, seeded and prepared (what was done before, done now).
async fn batch(db: &TestDb, notify: &Notify, receiver: &WebhookReceiver) -> Vec<(String, ReminderDue)> {
    let s = &db.store;
    let due = Utc::now().trunc_subsecs(0) - Duration::seconds(5);
    let mut events = Vec::with_capacity(100);
    for (kind, n) in NEW {
        for _ in 0..n {
            let r = kit::reminder(s, kind, due).await;
            endpoint(s, receiver, &r, kind).await;
            events.push(r.due());
        }
    }
    for sent in [true, true, true, false, false] {
        events.push(moved(s, due, sent).await);
    }
    let done: Vec<ReminderFixture> = done_before(s, due).await;
    let answers = notify
        .handle_batch(
            done.iter()
                .map(|r| {
                    let (id, due) = r.due();
                    (id, due.into())
                })
                .collect(),
        )
        .await;
    assert!(answers.iter().all(|a| a.is_ok()), "done before: {answers:?}");
    for r in &done[..5] {
        s.set_reminder_state(r.reminder_id, ReminderState::Published)
            .await
            .unwrap();
    }
    events.extend(done.iter().map(ReminderFixture::due));
    assert_eq!(events.len(), 100);
    events
}

/// 15 e-mail reminders (mailed before the count starts).
async fn done_before(s: &Store, due: chrono::DateTime<Utc>) -> Vec<ReminderFixture> {
    let mut done = Vec::with_capacity(15);
    for _ in 0..15 {
        done.push(kit::reminder(s, "done", due).await);
    }
    done
}

/// The endpoint a reminder of `kind` reaches beside e-mail, and its channels.
async fn endpoint(s: &Store, receiver: &WebhookReceiver, r: &ReminderFixture, kind: &str) {
    let hook = receiver.url(kind);
    let push = receiver.subscription("gone");
    let (channels, endpoint) = match kind {
        "ok" | "busy" => (
            "email,webhook",
            NewEndpoint {
                user_id: r.user_id,
                channel: Channel::Webhook,
                target: &hook,
                format: "ntfy",
                secret: None,
                p256dh: None,
                auth: None,
            },
        ),
        "gone" => (
            "email,webpush",
            NewEndpoint {
                user_id: r.user_id,
                channel: Channel::WebPush,
                target: &push.endpoint,
                format: "standard",
                secret: None,
                p256dh: Some(&push.p256dh),
                auth: Some(&push.auth),
            },
        ),
        _ => return,
    };
    s.set_reminder_channels(r.reminder_id, channels).await.unwrap();
    s.insert_endpoint(&endpoint).await.unwrap();
}

/// The event of a reminder moved to `due` from an hour before, whose e-mail at that hour
/// was `sent` before (else nothing was).
async fn moved(s: &Store, due: chrono::DateTime<Utc>, sent: bool) -> (String, ReminderDue) {
    let r = kit::reminder(s, "moved", due).await;
    let before = due - Duration::hours(1);
    if sent {
        let claim = NewClaim {
            reminder_id: r.reminder_id,
            remind_at: before,
            route: Route::EMAIL,
            event_id: "before",
        };
        let claimed = s
            .claim_new_deliveries(&[claim], due, Duration::minutes(2))
            .await
            .unwrap();
        let held = Held {
            delivery_id: claimed[0].1,
            attempt: 1,
        };
        let outcome = Finished::Sent {
            recipient: "ada@example.test",
            message_id: "<before>",
        };
        s.finish_deliveries(&[(held, outcome)], due).await.unwrap();
    }
    ReminderFixture {
        remind_at: before,
        ..r
    }
    .due()
}

/// Runs `sql` with psql on the admin database (where `pg_stat_statements` is): its output.
fn psql(sql: &str) -> String {
    let admin = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    let out = std::process::Command::new("psql")
        .args([admin.as_str(), "-X", "-q", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
