//! The bad-input table's stored data (`crates/testkit/data/bad_requests.json`, `endpoints`
//! and `channels`): every bad `channel_endpoints` row and `reminders.channels` value a todo
//! app can write, on a fresh SQLite file and a fresh PostgreSQL database, against the real
//! webhook receiver and push-service stand-in. What a user would check: the database refuses
//! the row, or the row's delivery is recorded failed with the reason while the e-mail still
//! goes out, and nothing reaches the receiver; each copy counted where it arrives (files in
//! the outbox, requests at the receiver, rows in `deliveries`).
//! Skipped, with a message, where the test virtualenv cannot be made (`require::receiver`).

use app::{mails, outcomes};
use chrono::{Duration, SubsecRound, Utc};
use notify::channels::guard::{AllowedPorts, DenyList};
use todo_events_store::seed::NewEndpoint;
use todo_events_store::{Channel, DeliveryStatus};
use todo_events_testkit::bad_stored::{self, Expect, Placeholders, BAD_CHANNELS, BAD_ENDPOINTS};
use todo_events_testkit::webhook::{Endpoint, Options, WebhookReceiver};
use todo_events_testkit::{self as kit, reply};

use crate::channels::app;

const REMINDER: &str = "dev.todo.reminder.due";
/// `WEBHOOK_DENY_CIDRS` of both notifys: the table's "deny-listed" rows are in these ranges
/// (addresses that are public or, under `WEBHOOK_ALLOW_PRIVATE`, allowed but for this list).
const DENIED: &str = "198.51.100.0/24, 2001:db8:dead::/48";
/// The Standard Webhooks specification's example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn receiver() -> WebhookReceiver {
    WebhookReceiver::start(
        &[Endpoint {
            name: "hook",
            secret: Some(SECRET),
        }],
        &Options {
            push: vec!["browser".into()],
            ..Options::default()
        },
    )
}

/// The answer's reason and notes, lower case.
fn said(body: &serde_json::Value) -> String {
    let mut words = vec![body["reason"].as_str().unwrap_or_default().to_owned()];
    if let Some(notes) = body["notes"].as_array() {
        words.extend(notes.iter().filter_map(|n| n.as_str()).map(str::to_owned));
    }
    words.join(" | ").to_lowercase()
}

#[tokio::test]
async fn every_bad_endpoint_row_is_refused_or_fails_alone_and_reaches_nothing() {
    if !kit::require::receiver() {
        return;
    }
    let receiver = receiver();
    let (hook, browser) = (receiver.url("hook"), receiver.subscription("browser"));
    let rows = bad_stored::bad_endpoints(&Placeholders {
        hook: &hook,
        port: receiver.port,
        secret: SECRET,
        push: &browser.endpoint,
        p256dh: &browser.p256dh,
        auth: &browser.auth,
    });
    let backends = kit::backends().await;
    let mut checked = 0;
    for db in &backends {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        // notify as in production (targets must be public https) and as in tests and local use.
        // The strict one lists the receiver's port beside 443, so that the rows on loopback
        // and on names are judged by their address; both deny the table's "operator" range.
        let deny: DenyList = DENIED.parse().unwrap();
        let ports = AllowedPorts(Some(vec![443, receiver.port]));
        let strict = app::notify_with(db, outbox.path(), false, true, |c| {
            (c.allowed_ports, c.deny_cidrs) = (ports, deny.clone())
        })
        .await;
        let lenient = app::notify_with(db, outbox.path(), true, true, |c| c.deny_cidrs = deny).await;
        let mut stored = 0;
        for row in &rows {
            let name = &row.name;
            let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
            let r = kit::reminder(&db.store, name, due).await;
            let inserted = db.insert_endpoint_row(r.user_id, &row.endpoint).await;
            let detail = match &row.expect {
                Expect::Refused(text) => {
                    let err = inserted.expect_err(&format!("{b}: {name}: the database refuses the row"));
                    assert!(err.to_lowercase().contains(text), "{b}: {name}: {err}");
                    checked += 1;
                    continue;
                }
                Expect::Failed(text) => {
                    inserted.unwrap_or_else(|e| panic!("{b}: {name}: stored: {e}"));
                    text
                }
            };
            stored += 1;
            let channels = format!("email,{}", row.endpoint.channel);
            db.store
                .set_reminder_channels(r.reminder_id, &channels)
                .await
                .unwrap();
            let app = if row.strict { &strict } else { &lenient };

            let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.sent"),
                "{b}: {name}: the e-mail goes out: {body}"
            );
            assert_eq!(
                outcomes(&body),
                [("email", "sent"), (row.endpoint.channel.as_str(), "failed")],
                "{b}: {name}: {body}"
            );
            let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
            let seen: Vec<_> = rows.iter().map(|d| (d.channel, d.status)).collect();
            let channel: Channel = row.endpoint.channel.parse().unwrap();
            assert_eq!(
                seen,
                [
                    (Channel::Email, DeliveryStatus::Sent),
                    (channel, DeliveryStatus::Failed)
                ],
                "{b}: {name}"
            );
            let why = rows[1].detail.as_deref().unwrap_or_default().to_lowercase();
            assert!(why.contains(detail), "{b}: {name}: deliveries.detail {why:?}");
            // Neither the URL's path and credentials nor the secret and keys are shown,
            // whatever was wrong with them.
            assert!(
                !why.contains("/hooks/") && !why.contains("hunter2"),
                "{b}: {name}: {why}"
            );
            for secret in [&row.endpoint.secret, &row.endpoint.p256dh, &row.endpoint.auth]
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 8)
            {
                assert!(!why.contains(&secret.to_lowercase()), "{b}: {name}: {why}");
            }
            // Again: failed for good, not retried.
            let (_, ty, _) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
            assert_eq!(ty, "dev.todo.notification.duplicate", "{b}: {name}");
            checked += 1;
        }
        assert_eq!(mails(outbox.path()), stored, "{b}: one e-mail per stored row");
    }
    let got = receiver.requests();
    assert!(got.is_empty(), "nothing reaches the receiver: {got:?}");
    assert_eq!(checked, backends.len() * BAD_ENDPOINTS);
    println!(
        "{checked} bad endpoint rows checked ({BAD_ENDPOINTS} on each of {} backends)",
        backends.len()
    );
}

#[tokio::test]
async fn every_bad_channels_value_comes_to_what_the_table_says() {
    if !kit::require::receiver() {
        return;
    }
    let receiver = receiver();
    let hook = receiver.url("hook");
    let rows = bad_stored::bad_channels();
    let backends = kit::backends().await;
    let mut checked = 0;
    for db in &backends {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let app = app::notify(db, outbox.path(), true, true).await;
        for row in &rows {
            let name = &row.name;
            let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
            let r = kit::reminder(&db.store, name, due).await;
            db.store
                .set_reminder_channels(r.reminder_id, &row.channels)
                .await
                .unwrap();
            if !row.no_endpoints {
                db.store
                    .insert_endpoint(&NewEndpoint {
                        user_id: r.user_id,
                        channel: Channel::Webhook,
                        target: &hook,
                        format: "standard",
                        secret: Some(SECRET),
                        p256dh: None,
                        auth: None,
                    })
                    .await
                    .unwrap();
            }
            let (mails_before, hooks_before) = (mails(outbox.path()), receiver.requests().len());

            let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
            assert_eq!(
                (status, ty),
                (200, format!("dev.todo.notification.{}", row.outcome)),
                "{b}: {name}: {body}"
            );
            if let Some(text) = &row.says {
                assert!(said(&body).contains(text), "{b}: {name}: {body}");
            }
            if let Some(stored) = &row.never_says {
                assert!(
                    !body.to_string().contains(stored.as_str()),
                    "{b}: {name}: the answer quotes {stored:?}: {body}"
                );
            }
            // Again: nothing more arrives.
            let (status, _, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
            assert_eq!(status, 200, "{b}: {name}: {body}");
            let arrived = (
                mails(outbox.path()) - mails_before,
                receiver.requests().len() - hooks_before,
            );
            assert_eq!(
                arrived,
                (row.mails, row.webhooks),
                "{b}: {name}: (e-mails, webhooks)"
            );
            checked += 1;
        }
    }
    assert!(receiver
        .requests()
        .iter()
        .all(|r| r.signature_valid == Some(true)));
    assert_eq!(checked, backends.len() * BAD_CHANNELS);
    println!(
        "{checked} bad reminders.channels values checked ({BAD_CHANNELS} on each of {} backends)",
        backends.len()
    );
}

/// The `user_preferences` rows of the table (`preferences`, explained at `preferences_about`):
/// each refused by the database, or stored and its user's reminder answered as the table says,
/// with the e-mails counted in the outbox: a preference that cannot be read falls back
/// (docs/PREFERENCES.md), never crashes and never skips silently.
#[tokio::test]
async fn every_bad_preferences_row_is_refused_or_delivered_with_its_fallback() {
    let rows = bad_stored::bad_preferences();
    let backends = kit::backends().await;
    let mut checked = 0;
    for db in &backends {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let app = app::notify(db, outbox.path(), true, true).await;
        for row in &rows {
            let name = &row.name;
            let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
            let r = kit::reminder(&db.store, name, due).await;
            db.store
                .set_reminder_channels(r.reminder_id, "default")
                .await
                .unwrap();
            if row.urgent {
                let sql = format!("UPDATE reminders SET urgent = TRUE WHERE id = {}", r.reminder_id);
                db.execute(&sql, None).await.unwrap();
            }
            let columns = row.columns();
            let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
            let values: Vec<String> = columns
                .iter()
                .map(|(_, v)| match v {
                    Some(v) => {
                        assert!(!v.contains('\''), "{name}: no quotes in the table's values");
                        format!("'{v}'")
                    }
                    None => "NULL".into(),
                })
                .collect();
            let sql = format!(
                "INSERT INTO user_preferences (user_id, {}) VALUES ({}, {})",
                names.join(", "),
                r.user_id,
                values.join(", ")
            );
            let refused = match (b, &row.refused, &row.refused_on_postgres) {
                (_, Some(text), _) | ("postgres", _, Some(text)) => Some(text),
                _ => None,
            };
            match (db.execute(&sql, None).await, refused) {
                (Err(e), Some(text)) => {
                    assert!(e.to_lowercase().contains(text.as_str()), "{b}: {name}: {e}");
                    checked += 1;
                    continue;
                }
                (Err(e), None) => panic!("{b}: {name}: the database refused the row: {e}"),
                (Ok(_), Some(_)) => panic!("{b}: {name}: the database stored the row"),
                (Ok(_), None) => {}
            }
            let before = mails(outbox.path());
            let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
            let outcome = row.outcome.as_deref().expect("a stored row names its outcome");
            assert_eq!(
                (status, ty),
                (200, format!("dev.todo.notification.{outcome}")),
                "{b}: {name}: {body}"
            );
            if let Some(text) = &row.says {
                assert!(said(&body).contains(text.as_str()), "{b}: {name}: {body}");
            }
            assert_eq!(mails(outbox.path()) - before, row.mails, "{b}: {name}: e-mails");
            checked += 1;
        }
    }
    println!("{checked} preferences rows checked");
    assert_eq!(checked, rows.len() * backends.len());
}
