//! Secrets at rest with the real binaries (docs/CHANNELS.md, "Secrets at rest"), on a fresh
//! SQLite file and a fresh PostgreSQL database: `todo-events migrate` seals the secrets and
//! keys an app stored plain (the migration), and seals again under the new first key of a
//! rotation; a `scheduler-cron` pass seals a row written plain since; `notify` refuses to start
//! without the key the rows are sealed with, naming the key id and never a key.

use std::process::{Command, Output};
use todo_events_store::seed::NewEndpoint;
use todo_events_store::Channel;
use todo_events_testkit::kafka::free_port;
use todo_events_testkit::{self as kit, TestDb};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn run(name: &str, db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(kit::binary(name));
    c.args(args)
        .env("DATABASE_URL", &db.url)
        .env("NO_COLOR", "1")
        .env("PORT", free_port().to_string())
        .env("MAILER", "file")
        .env_remove("SECRETS_KEYS")
        .env_remove("KAFKA_BROKERS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn plain_webhook(db: &TestDb, user: todo_events_domain::UserId) {
    db.store
        .insert_endpoint(&NewEndpoint {
            user_id: user,
            channel: Channel::Webhook,
            target: "https://hooks.example.test/ada",
            format: "standard",
            secret: Some(SECRET),
            p256dh: None,
            auth: None,
        })
        .await
        .unwrap();
}

async fn secrets(db: &TestDb) -> Vec<String> {
    db.texts("SELECT secret FROM channel_endpoints ORDER BY id").await
}

#[tokio::test]
async fn migrate_seals_what_is_plain_a_rotation_seals_again_and_notify_needs_the_key() {
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        let user = kit::user(&db.store, "ada@example.test", "Europe/Berlin").await;
        plain_webhook(&db, user).await;

        let out = run("todo-events", &db, &["migrate"], &[("SECRETS_KEYS", K1)]);
        assert!(out.status.success(), "{b}: {}", said(&out));
        assert!(
            said(&out).contains("sealed the secrets of 1 endpoint(s) with key k1"),
            "{b}: {}",
            said(&out)
        );
        let stored = secrets(&db).await;
        assert!(
            stored[0].starts_with("sealed:v1:k1:") && !stored[0].contains("MfKQ9r8"),
            "{b}: {stored:?}"
        );

        // A row the app writes plain later: the scheduler's next pass seals it.
        plain_webhook(&db, user).await;
        let sink = format!("http://127.0.0.1:{}/", free_port());
        let out = run(
            "scheduler-cron",
            &db,
            &[],
            &[
                ("SECRETS_KEYS", K1),
                ("SINK_REMINDERS", &sink),
                ("SINK_TASK_EVENTS", &sink),
            ],
        );
        assert!(out.status.success(), "{b}: {}", said(&out));
        assert!(
            secrets(&db).await.iter().all(|s| s.starts_with("sealed:v1:k1:")),
            "{b}"
        );

        // A rotation: k2 first, k1 still there to open what it sealed.
        let rotation = format!("{K2},{K1}");
        let out = run("todo-events", &db, &["migrate"], &[("SECRETS_KEYS", &rotation)]);
        assert!(
            said(&out).contains("sealed the secrets of 2 endpoint(s) with key k2"),
            "{b}: {}",
            said(&out)
        );
        assert!(
            secrets(&db).await.iter().all(|s| s.starts_with("sealed:v1:k2:")),
            "{b}"
        );

        // notify without k2: no start, one clear line, no key shown.
        for keys in [None, Some(K1)] {
            let env: Vec<(&str, &str)> = keys.map(|k| ("SECRETS_KEYS", k)).into_iter().collect();
            let out = run("notify", &db, &[], &env);
            let text = said(&out);
            assert_eq!(out.status.code(), Some(2), "{b}: {text}");
            assert!(
                text.contains("\"k2\"") && text.contains("SECRETS_KEYS"),
                "{b}: {text}"
            );
            assert!(
                !text.contains("AAECAw") && !text.contains("ICEiIy"),
                "{b}: {text}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 2, "both backends checked");
}
