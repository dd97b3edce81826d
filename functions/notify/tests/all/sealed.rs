//! Secrets at rest (docs/CHANNELS.md, "Secrets at rest"): an endpoint whose webhook secret and
//! push keys are stored sealed with `SECRETS_KEYS` is delivered as a plain one is (the
//! receiver checks the signature and decrypts the push itself), the database holding none of
//! them in a form a dump could use; a notify without the key, or with a wrong one, refuses to
//! start (the check names the row and the key id), and one that met such a row after it
//! started holds the delivery (`503`, retried) and sends nothing. On a fresh SQLite file and a
//! fresh PostgreSQL database.

use crate::channels::app::outcomes;
use chrono::{Duration, SubsecRound, Utc};
use notify::{Notify, NotifyConfig};
use todo_events_store::sealed::{Column, Keys, Place};
use todo_events_store::seed::NewEndpoint;
use todo_events_store::Channel;
use todo_events_testkit::webhook::{Endpoint, Options, WebhookReceiver};
use todo_events_testkit::{self as kit, reply, TestApp, TestDb};

const REMINDER: &str = "dev.todo.reminder.due";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The same id, another key.
const WRONG: &str = "k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn config(outbox: &std::path::Path, keys: &str) -> NotifyConfig {
    let mut config = crate::round_trips::channels_config(outbox);
    config.secrets_keys = Keys::parse(keys).unwrap();
    config
}

/// Every column of every endpoint, as a dump would have them.
async fn dump(db: &TestDb) -> String {
    db.texts(
        "SELECT target || ' ' || COALESCE(secret, '') || ' ' || COALESCE(p256dh, '') || ' ' \
         || COALESCE(auth, '') FROM channel_endpoints",
    )
    .await
    .join("\n")
}

#[tokio::test]
async fn sealed_secrets_sign_and_encrypt_and_a_wrong_key_sends_nothing() {
    if !kit::require::receiver() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let receiver = WebhookReceiver::start(
            &[Endpoint {
                name: "hook",
                secret: Some(SECRET),
            }],
            &Options {
                push: vec!["phone".into()],
                ..Default::default()
            },
        );
        let push = receiver.subscription("phone");
        let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
        let r = kit::reminder(&db.store, "Renew the passport", due).await;
        db.store
            .set_reminder_channels(r.reminder_id, "webhook,webpush")
            .await
            .unwrap();
        // Sealed as an app that seals before it inserts would (the same format).
        let keys = Keys::parse(KEY).unwrap();
        let sealed = |column, value: &str| {
            let place = Place {
                column,
                user_id: r.user_id.get(),
            };
            keys.seal(place, value).unwrap()
        };
        let secret = sealed(Column::Secret, SECRET);
        let (p256dh, auth) = (
            sealed(Column::P256dh, &push.p256dh),
            sealed(Column::Auth, &push.auth),
        );
        for endpoint in [
            NewEndpoint {
                user_id: r.user_id,
                channel: Channel::Webhook,
                target: &receiver.url("hook"),
                format: "standard",
                secret: Some(&secret),
                p256dh: None,
                auth: None,
            },
            NewEndpoint {
                user_id: r.user_id,
                channel: Channel::WebPush,
                target: &push.endpoint,
                format: "standard",
                secret: None,
                p256dh: Some(&p256dh),
                auth: Some(&auth),
            },
        ] {
            db.store.insert_endpoint(&endpoint).await.unwrap();
        }
        let stored = dump(&db).await;
        for plain in [
            SECRET,
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &push.p256dh,
            &push.auth,
        ] {
            assert!(!stored.contains(plain), "{b}: a dump shows {plain}: {stored}");
        }

        // Without the key, or with another under its id: no start.
        for keys in ["", WRONG] {
            let mut c = config(outbox.path(), KEY);
            c.secrets_keys = Keys::parse(keys).unwrap_or_default();
            let notify = Notify::new(db.store.clone(), c).unwrap();
            let err = notify.check_sealed_secrets().await.unwrap_err().to_string();
            assert!(
                err.contains("channel_endpoints row") && err.contains("\"k1\""),
                "{b}: {err}"
            );
            assert!(!err.contains("AAECAw") && !err.contains("ICEiIy"), "{b}: {err}");
            // Had it started anyway: held, nothing sent, nothing claimed.
            let app = kit::spawn(notify).await;
            let response = app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
            assert_eq!(response.status().as_u16(), 503, "{b}");
            assert_eq!(receiver.received(), 0, "{b}");
            assert!(
                db.store.deliveries_of(r.reminder_id).await.unwrap().is_empty(),
                "{b}"
            );
        }

        // With the key: both go out, the signature checks, the push decrypts.
        let notify = Notify::new(db.store.clone(), config(outbox.path(), KEY)).unwrap();
        notify.check_sealed_secrets().await.unwrap();
        let app: TestApp = kit::spawn(notify).await;
        let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{b}: {body}"
        );
        assert_eq!(outcomes(&body), [("webhook", "sent"), ("webpush", "sent")], "{b}");
        let got = receiver.requests();
        assert_eq!(got.len(), 2, "{b}");
        let hook = got
            .iter()
            .find(|q| q.endpoint.as_deref() == Some("hook"))
            .unwrap();
        assert_eq!(
            hook.signature_valid,
            Some(true),
            "{b}: {:?}",
            hook.signature_problem
        );
        let pushed = got
            .iter()
            .find(|q| q.decrypted.is_some() || q.push_problem.is_some())
            .unwrap();
        assert!(pushed.decrypted.is_some(), "{b}: {:?}", pushed.push_problem);
        checked += 1;
    }
    assert_eq!(checked, 2, "both backends checked");
}
