//! Timings compared with each other, so run alone and last (libtest starts tests in the order
//! of their names; the module's name puts it after the others). One user's failing webhook
//! against the neighbours on its partition: the same 400 reminders
//! three times (every endpoint healthy; one answering 503; one hanging past WEBHOOK_TIMEOUT),
//! the neighbours' p99 lateness of each run compared with the healthy one. Each run takes
//! both turns (`crate::kafka::turns`): the comparison holds only if no other test's burst shares the
//! machine with one run and not with another.

use crate::kafka::end_to_end::{assert_success, stop, World};
use std::time::Duration;
use todo_events_testkit as kit;
use todo_events_testkit::webhook::{Endpoint as WebhookEndpoint, Options as WebhookOptions, WebhookReceiver};

/// p99 lateness (seconds from `remind_at` to the e-mail recorded `sent`) of the reminders of
/// every user but `except`, and how many there were.
async fn neighbours_p99(world: &World, except: i64) -> (f64, i64) {
    let pool = sqlx::PgPool::connect(&world.db.url).await.unwrap();
    let row: (Option<f64>, i64) = sqlx::query_as(
        "SELECT percentile_cont(0.99) WITHIN GROUP \
           (ORDER BY EXTRACT(EPOCH FROM d.completed_at - d.remind_at)::float8), COUNT(*) \
         FROM deliveries d JOIN reminders r ON r.id = d.reminder_id \
         WHERE d.channel = 'email' AND d.status = 'sent' AND r.user_id <> $1",
    )
    .bind(except)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (row.0.unwrap_or(f64::NAN), row.1)
}

/// Item 7 of issue 26, rehearsal-style: many users' reminders on ONE partition, every user
/// with a webhook and e-mail; in the second run one user's endpoint answers 503 to every
/// request. Its deliveries wait for their own retry (CHANNEL_RETRY_FIRST, 30 s as deployed)
/// instead of holding the partition for the 62 s retry schedule, so the neighbours' p99
/// lateness stays close to the run without the broken endpoint. A third run has the
/// endpoint hang past WEBHOOK_TIMEOUT: its batch waits for it only its patience (2 s), the
/// request goes on alone, and the endpoint rests until it answers. The three figures are
/// printed.
#[tokio::test(flavor = "multi_thread")]
async fn one_users_failing_webhook_does_not_hold_up_the_neighbours_on_its_partition() {
    if !kit::require::receiver() {
        return;
    }
    const USERS: usize = 20;
    const REMINDERS: usize = 400;
    let mut figures = Vec::new();
    // The same run three times: every endpoint healthy; one user's answering 503; one user's
    // hanging past WEBHOOK_TIMEOUT (a receiver that answers after 15 s).
    for how in ["healthy", "503", "timeout"] {
        let broken = how != "healthy";
        // Alone: the three runs are compared with each other, so none may share the machine
        // with another test's burst.
        let Some(world) = World::alone(1).await else {
            return;
        };
        let hanging = WebhookReceiver::start(
            &[WebhookEndpoint {
                name: "bad",
                secret: None,
            }],
            &WebhookOptions {
                delay: Some(15.0),
                ..WebhookOptions::default()
            },
        );
        let receiver = WebhookReceiver::start(
            &[
                WebhookEndpoint {
                    name: "good",
                    secret: None,
                },
                WebhookEndpoint {
                    name: "bad",
                    secret: None,
                },
            ],
            &WebhookOptions {
                replies: vec!["bad=503".into()],
                ..WebhookOptions::default()
            },
        );
        let out = world.run(
            "todo-events",
            &[
                "seed",
                "--users",
                &USERS.to_string(),
                "--reminders",
                &REMINDERS.to_string(),
            ],
            &[],
        );
        assert_success(&out, "seed");
        let pool = sqlx::PgPool::connect(&world.db.url).await.unwrap();
        let first_user: i64 = sqlx::query_scalar("SELECT MIN(id) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        let bad = match how {
            "503" => receiver.url("bad"),
            "timeout" => hanging.url("bad"),
            _ => receiver.url("good"),
        };
        sqlx::query(
            "INSERT INTO channel_endpoints (user_id, channel, target, format) \
             SELECT id, 'webhook', CASE WHEN id = $1 THEN $2 ELSE $3 END, 'standard' FROM users",
        )
        .bind(first_user)
        .bind(&bad)
        .bind(receiver.url("good"))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("UPDATE reminders SET channels = 'email,webhook'")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let env = [("WEBHOOK_ALLOW_PRIVATE", "true"), ("KAFKA_CONSUMER_BATCH", "25")];
        let notify = world.consumer_with("notify", &env);
        // The consumer joins its group before anything is published.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_success(&world.run("scheduler-cron", &[], &[]), "scheduler pass");
        let w = &world;
        w.wait_for(180, "every e-mail sent", || async {
            w.count("SELECT COUNT(*) FROM deliveries WHERE channel = 'email' AND status = 'sent'")
                .await
                >= REMINDERS as i64
        })
        .await;
        let (p99, neighbours) = neighbours_p99(w, first_user).await;
        let waiting = w
            .count("SELECT COUNT(*) FROM deliveries WHERE status = 'sending'")
            .await;
        w.wait_for(60, "lag 0", || async { w.lag("notify", "reminders") == 0 })
            .await;
        let dead = w
            .count("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'")
            .await;
        stop(notify);
        assert!(
            neighbours > 0 && neighbours < REMINDERS as i64,
            "{neighbours} neighbours' reminders"
        );
        if broken {
            assert!(
                waiting > 0,
                "the broken endpoint's deliveries wait for their own retry"
            );
        } else {
            assert_eq!(waiting, 0);
        }
        assert_eq!(dead, 0, "nothing failed for good");
        eprintln!(
            "one partition, {USERS} users, {REMINDERS} reminders (e-mail + webhook), one user's endpoint {how}: \
             neighbours' ({neighbours}) p99 lateness {p99:.2} s; deliveries waiting for their retry: {waiting}"
        );
        figures.push(p99);
    }
    let healthy = figures[0];
    // A 503 costs the partition nothing: the delivery is released at once. A hanging endpoint
    // costs the batch it is in the batch's patience (2 s), not WEBHOOK_TIMEOUT (10 s as
    // deployed): its request goes on alone (notify's send step) and the endpoint rests until
    // it answers (resting.rs), instead of costing every batch one timeout (the figures before
    // resting and before the patience: docs/CHANNELS.md, "A failing endpoint holds up only
    // itself").
    let patience = notify::config::PATIENCE.as_secs_f64();
    for (how, broken, allowed) in [
        ("answering 503", figures[1], healthy * 1.5 + 2.0),
        ("timing out", figures[2], healthy * 1.5 + patience + 2.0),
    ] {
        assert!(
            broken <= allowed,
            "the neighbours' p99 with one endpoint {how} ({broken:.2} s) against {healthy:.2} s without: more than {allowed:.2} s"
        );
    }
}
