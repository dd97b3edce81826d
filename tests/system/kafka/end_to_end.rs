//! The Kafka event path end to end, with the real binaries, a real Kafka-protocol broker
//! (Tansu) and PostgreSQL: `todo-events seed` → `scheduler-cron` → Kafka → `notify consume`
//! and `recur consume`. Faults: broker restarts, a broker that is down, consumers killed
//! with SIGKILL, poison messages. E-mails go to a real SMTP server (the tests' aiosmtpd
//! peer), which keeps every copy it accepts as its own file: a reminder sent twice is two
//! messages there, so "mailed once" can fail. Webhooks and Web Push messages go to the tests'
//! receiver (`testkit::webhook`), which checks each signature, VAPID token and encryption
//! and keeps every copy.

use std::path::PathBuf;
use std::process::{Child, Command, Output};

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use todo_events_kafka::admin::{consumer_lag, ensure_topics};
use todo_events_kafka::KafkaConfig;
use todo_events_testkit::kafka::{free_port, KafkaBroker};
use todo_events_testkit::smtp::{Options, SmtpServer};
use todo_events_testkit::webhook::{Endpoint as WebhookEndpoint, Options as WebhookOptions, WebhookReceiver};
use todo_events_testkit::{self as kit, TestDb};

/// The Standard Webhooks specification's example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn bin(name: &str) -> PathBuf {
    kit::kafka_binary(name)
}

pub(crate) struct World {
    pub(crate) db: TestDb,
    broker: KafkaBroker,
    /// Where the reminders go: every accepted copy counted.
    smtp: SmtpServer,
    /// The consumers' logs.
    logs: tempfile::TempDir,
    kafka: KafkaConfig,
    /// Last: released after everything above has stopped (`super::turns`).
    _turn: tokio::sync::SemaphorePermit<'static>,
}

impl World {
    /// The world, or `None` when PostgreSQL or the broker is missing (outside CI, with a
    /// message; see `todo_events_testkit::require`).
    async fn new() -> Option<Self> {
        Self::with_partitions(3).await
    }

    /// [`World::new`] with `partitions` partitions per topic.
    async fn with_partitions(partitions: i32) -> Option<Self> {
        Self::with_turn(super::turns::shared().await, partitions).await
    }

    /// [`World::new`] for a test that compares timings: no other test of the binary runs
    /// beside it.
    pub(crate) async fn alone(partitions: i32) -> Option<Self> {
        Self::with_turn(super::turns::alone().await, partitions).await
    }

    async fn with_turn(turn: tokio::sync::SemaphorePermit<'static>, partitions: i32) -> Option<Self> {
        if !kit::require::kafka_broker() || !kit::require::smtp() {
            return None;
        }
        let db = kit::postgres().await?;
        let broker = KafkaBroker::start();
        let kafka = KafkaConfig::plaintext(broker.brokers());
        ensure_topics(
            &kafka,
            &["reminders", "reminders.dlq", "task-events", "task-events.dlq"],
            partitions,
        )
        .await
        .expect("topics created");
        Some(Self {
            db,
            broker,
            smtp: SmtpServer::start(&Options::default()),
            logs: tempfile::tempdir().unwrap(),
            kafka,
            _turn: turn,
        })
    }

    fn command(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env("DATABASE_URL", &self.db.url)
            .env("KAFKA_BROKERS", self.broker.brokers())
            .env("MAILER", "smtp")
            .env(
                "SMTP_URL",
                format!("smtp://127.0.0.1:{}?tls=none", self.smtp.port),
            )
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env_remove("SINK_REMINDERS")
            .env_remove("SINK_TASK_EVENTS")
            .env_remove("K_SINK");
        c
    }

    pub(crate) fn run(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(name);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn consumer(&self, name: &str) -> Child {
        self.consumer_with(name, &[])
    }

    pub(crate) fn consumer_with(&self, name: &str, env: &[(&str, &str)]) -> Child {
        let log = std::fs::File::create(self.logs.path().join(format!("{name}.log"))).unwrap();
        let mut c = self.command(name);
        c.env("PORT", free_port().to_string());
        for (k, v) in env {
            c.env(k, v);
        }
        c.arg("consume")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }

    async fn instances(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM tasks WHERE recurring_task_id IS NOT NULL")
            .await
    }

    /// Waits until `done` holds, or fails after `secs`.
    pub(crate) async fn wait_for<F, Fut>(&self, secs: u64, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub(crate) fn lag(&self, group: &str, topic: &str) -> i64 {
        consumer_lag(&self.kafka, group, topic).expect("lag readable")
    }
}

pub(crate) fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

pub(crate) fn stop(mut child: Child) -> std::process::ExitStatus {
    kit::signal(child.id(), kit::Signal::TERM);
    child.wait().unwrap()
}

/// Every reminder mailed once: as many distinct Message-IDs at the SMTP server as
/// reminders, and no copy beyond the first, except for the Message-IDs in `excused` (at
/// most one extra copy each).
fn assert_mailed_once_but(world: &World, expected: usize, excused: &std::collections::BTreeSet<String>) {
    let copies = world.smtp.copies();
    assert_eq!(copies.len(), expected, "every reminder mailed");
    let extra: Vec<_> = copies
        .iter()
        .filter(|(id, n)| **n > 1 && !(excused.contains(*id) && **n == 2))
        .collect();
    assert!(extra.is_empty(), "reminders mailed more than once: {extra:?}");
}

fn assert_mailed_once(world: &World, expected: usize) {
    assert_mailed_once_but(world, expected, &Default::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_schedule_consume_with_a_broker_restart_in_the_middle() {
    let Some(world) = World::new().await else {
        return;
    };
    let out = world.run(
        "todo-events",
        &[
            "seed",
            "--users",
            "40",
            "--reminders",
            "300",
            "--recurring",
            "200",
        ],
        &[],
    );
    assert_success(&out, "seed");

    let notify = world.consumer("notify");
    let recur = world.consumer("recur");
    let out = world.run("scheduler-cron", &[], &[]);
    assert_success(&out, "scheduler pass");

    // Restart the broker while the consumers are working through the topics.
    world
        .wait_for(60, "the first effects", || async {
            world.smtp.accepted() + (world.instances().await as usize) > 20
        })
        .await;
    let mut world = world;
    world.broker.restart();

    // More due work after the restart.
    let out = world.run(
        "todo-events",
        &["seed", "--users", "5", "--reminders", "50", "--recurring", "0"],
        &[],
    );
    assert_success(&out, "second seed");
    let out = world.run("scheduler-cron", &[], &[]);
    assert_success(&out, "second scheduler pass");

    let w = &world;
    w.wait_for(
        120,
        "every reminder mailed and every occurrence instantiated",
        || async { w.smtp.accepted() >= 350 && w.instances().await >= 200 },
    )
    .await;
    w.wait_for(60, "consumer lag 0", || async {
        w.lag("notify", "reminders") == 0 && w.lag("recur", "task-events") == 0
    })
    .await;
    assert!(stop(notify).success(), "notify consume stops cleanly on SIGTERM");
    assert!(stop(recur).success(), "recur consume stops cleanly on SIGTERM");

    assert_mailed_once(w, 350);
    assert_eq!(w.instances().await, 200, "every occurrence instantiated once");
    assert_eq!(
        w.count("SELECT COUNT(*) FROM reminders WHERE state <> 'sent'")
            .await,
        0
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .await,
        350
    );
    // Each recurring task moved on by exactly one day.
    assert_eq!(
        w.count("SELECT COUNT(*) FROM recurring_tasks WHERE next_occurrence <> published_occurrence + interval '1 day'")
            .await,
        0
    );
    assert_eq!(w.lag("notify", "reminders"), 0);
    assert_eq!(w.lag("recur", "task-events"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_is_down_fails_the_pass_and_the_rows_are_published_after_their_lease() {
    let Some(mut world) = World::new().await else {
        return;
    };
    let out = world.run(
        "todo-events",
        &["seed", "--users", "3", "--reminders", "20", "--recurring", "5"],
        &[],
    );
    assert_success(&out, "seed");
    world.broker.kill();
    let fast = [("KAFKA_DELIVERY_TIMEOUT", "3s"), ("SCHEDULER_LEASE", "2s")];
    let out = world.run("scheduler-cron", &[], &fast);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a pass that could not publish exits non-zero"
    );
    // Logs (librdkafka's connection errors, each unacknowledged event) come first; the
    // outcome is one line naming the cause.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdict: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("scheduler-cron: "))
        .collect();
    assert_eq!(verdict.len(), 1, "one clear line: {stderr}");
    assert!(verdict[0].contains("25 event(s) not published"), "{}", verdict[0]);
    assert_eq!(stderr.trim().lines().last(), Some(verdict[0]));
    assert_eq!(
        world
            .count("SELECT COUNT(*) FROM reminders WHERE state = 'published'")
            .await,
        0
    );

    world.broker.restart();
    ensure_topics(&world.kafka, &["reminders", "task-events"], 3)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // the lease runs out
    let out = world.run("scheduler-cron", &[], &fast);
    assert_success(&out, "pass after the broker is back");
    let notify = world.consumer("notify");
    let recur = world.consumer("recur");
    let w = &world;
    w.wait_for(90, "everything handled", || async {
        w.smtp.accepted() >= 20 && w.instances().await >= 5
    })
    .await;
    w.wait_for(60, "lag 0", || async {
        w.lag("notify", "reminders") == 0 && w.lag("recur", "task-events") == 0
    })
    .await;
    stop(notify);
    stop(recur);
    assert_mailed_once(w, 20);
    assert_eq!(w.instances().await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_killed_mid_batch_causes_no_second_effect_after_restart() {
    let Some(world) = World::new().await else {
        return;
    };
    let out = world.run(
        "todo-events",
        &[
            "seed",
            "--users",
            "50",
            "--reminders",
            "2000",
            "--recurring",
            "1200",
        ],
        &[],
    );
    assert_success(&out, "seed");
    let out = world.run("scheduler-cron", &[], &[]);
    assert_success(&out, "scheduler pass");

    // A short delivery lease: a delivery in flight when the process died is taken over
    // seconds later instead of minutes. Small batches, so the kill finds work half done.
    // (An SMTP conversation must fit twice in a lease: SMTP_TIMEOUT 1 s, the local server
    // answers in milliseconds.)
    let env = [
        ("DELIVERY_LEASE", "3s"),
        ("SMTP_TIMEOUT", "1s"),
        ("KAFKA_CONSUMER_BATCH", "25"),
    ];
    let mut notify = world.consumer_with("notify", &env);
    let mut recur = world.consumer_with("recur", &env);
    let w = &world;
    w.wait_for(60, "work under way", || async {
        w.smtp.accepted() > 10 && w.instances().await > 10
    })
    .await;
    notify.kill().unwrap(); // SIGKILL: no commit, no goodbye
    recur.kill().unwrap();
    notify.wait().unwrap();
    recur.wait().unwrap();
    // A moment for the SMTP server to store what was on the wire when the kill came.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mailed_at_kill, instances_at_kill) = (w.smtp.accepted(), w.instances().await);
    // The crash window (docs/RELIABILITY.md): a message the SMTP server had accepted
    // whose delivery the kill kept from being recorded is sent again after its lease. Only
    // those may arrive twice.
    let recorded: std::collections::BTreeSet<String> = {
        let pool = sqlx::PgPool::connect(&w.db.url).await.unwrap();
        let ids = sqlx::query_scalar("SELECT message_id FROM deliveries WHERE status = 'sent'")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids.into_iter().collect()
    };
    let in_the_window: std::collections::BTreeSet<String> = w
        .smtp
        .copies()
        .into_keys()
        .filter(|id| !recorded.contains(id))
        .collect();
    assert!(
        mailed_at_kill < 2000 || instances_at_kill < 1200,
        "killed mid-batch"
    );

    let notify = world.consumer_with("notify", &env);
    let recur = world.consumer_with("recur", &env);
    w.wait_for(120, "everything handled after the restart", || async {
        w.smtp.accepted() >= 2000 && w.instances().await >= 1200
    })
    .await;
    w.wait_for(60, "lag 0", || async {
        w.lag("notify", "reminders") == 0 && w.lag("recur", "task-events") == 0
    })
    .await;
    stop(notify);
    stop(recur);
    // Redelivered events were answered "duplicate"; only a message accepted but not
    // recorded when the kill came may have a second copy.
    assert_mailed_once_but(w, 2000, &in_the_window);
    eprintln!(
        "SIGKILL: {mailed_at_kill} messages accepted at the kill, {} of them not yet recorded",
        in_the_window.len()
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .await,
        2000
    );
    assert_eq!(w.instances().await, 1200);
}

/// The webhook and Web Push copies of what the receiver answered 2xx: signed webhooks by
/// `webhook-id`, pushes by the `tag` of their decrypted payload (one per reminder here).
fn copies_at(receiver: &WebhookReceiver) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let (mut hooks, mut pushes) = (BTreeMap::new(), BTreeMap::new());
    for r in receiver.requests() {
        if !(200..300).contains(&r.status) {
            continue;
        }
        if let Some(id) = r.header("webhook-id") {
            assert_eq!(r.signature_valid, Some(true), "{:?}", r.signature_problem);
            *hooks.entry(id.to_owned()).or_insert(0) += 1;
        } else {
            assert_eq!(r.vapid_valid, Some(true), "{:?}", r.vapid_problem);
            let shown: serde_json::Value =
                serde_json::from_slice(r.decrypted.as_deref().expect("push decrypted")).unwrap();
            *pushes
                .entry(shown["tag"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    (hooks, pushes)
}

/// Each key once, except those in `excused` (at most twice): the crash window.
fn assert_once_but(what: &str, copies: &BTreeMap<String, u32>, expected: usize, excused: &BTreeSet<String>) {
    assert_eq!(copies.len(), expected, "every {what} delivered");
    let extra: Vec<_> = copies
        .iter()
        .filter(|(id, n)| **n > 1 && !(excused.contains(*id) && **n == 2))
        .collect();
    assert!(extra.is_empty(), "{what} delivered more than once: {extra:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_and_pushes_arrive_once_through_a_consumer_kill_and_the_receivers_503s() {
    let Some(world) = World::new().await else {
        return;
    };
    if !kit::require::receiver() {
        return;
    }
    const REMINDERS: usize = 240;
    // A receiver that is slow (so the kill finds requests in flight) and down for its first
    // 30 webhook requests (503, try again in 1 s).
    let receiver = WebhookReceiver::start(
        &[WebhookEndpoint {
            name: "hook",
            secret: Some(SECRET),
        }],
        &WebhookOptions {
            replies: vec!["hook:30=503;Retry-After: 1".into()],
            delay: Some(0.1),
            push: vec!["browser".into()],
        },
    );
    let out = world.run(
        "todo-events",
        &["seed", "--users", "12", "--reminders", &REMINDERS.to_string()],
        &[],
    );
    assert_success(&out, "seed");
    // What a todo app writes: every user has a signed webhook and a browser subscription, every
    // reminder names all three channels (docs/CHANNELS.md).
    let browser = receiver.subscription("browser");
    let pool = sqlx::PgPool::connect(&world.db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO channel_endpoints (user_id, channel, target, format, secret) \
         SELECT id, 'webhook', $1, 'standard', $2 FROM users",
    )
    .bind(receiver.url("hook"))
    .bind(SECRET)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO channel_endpoints (user_id, channel, target, p256dh, auth) \
         SELECT id, 'webpush', $1, $2, $3 FROM users",
    )
    .bind(&browser.endpoint)
    .bind(&browser.p256dh)
    .bind(&browser.auth)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE reminders SET channels = 'email,webhook,webpush'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = world.run("scheduler-cron", &[], &[]);
    assert_success(&out, "scheduler pass");

    // The VAPID key as a user makes it (`notify vapid-keys`).
    let keys = world.run("notify", &["vapid-keys"], &[]);
    assert_success(&keys, "notify vapid-keys");
    let keys = String::from_utf8(keys.stdout).unwrap();
    let private_key = keys
        .lines()
        .find_map(|l| l.strip_prefix("VAPID_PRIVATE_KEY="))
        .expect("VAPID_PRIVATE_KEY printed")
        .to_owned();
    // As the Kafka kill test for e-mail: a short lease, small batches; loopback targets
    // allowed (the receiver is on 127.0.0.1).
    let env = [
        ("DELIVERY_LEASE", "3s"),
        ("SMTP_TIMEOUT", "1s"),
        ("KAFKA_CONSUMER_BATCH", "25"),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("VAPID_PRIVATE_KEY", private_key.as_str()),
        ("VAPID_SUBJECT", "mailto:ops@todo-events.test"),
        // The 503s are retried on each delivery's own schedule, brought by the scheduler's
        // pass (run below while waiting): 1 s here.
        ("CHANNEL_RETRY_FIRST", "1s"),
    ];
    let mut notify = world.consumer_with("notify", &env);
    let w = &world;
    // Killed once some deliveries are recorded and others are in flight.
    w.wait_for(60, "deliveries under way", || async {
        w.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .await
            >= 120
    })
    .await;
    notify.kill().unwrap(); // SIGKILL: no commit, no goodbye
    notify.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The crash window (docs/RELIABILITY.md): a copy the receiver answered 2xx whose delivery
    // the kill kept from being recorded is sent again after its lease; only those may arrive
    // twice. A webhook's recorded Message-ID is its webhook-id.
    let pool = sqlx::PgPool::connect(&w.db.url).await.unwrap();
    let recorded: Vec<(String, i64, Option<String>)> =
        sqlx::query_as("SELECT channel, reminder_id, message_id FROM deliveries WHERE status = 'sent'")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let recorded_as = |channel: &str| -> BTreeSet<String> {
        recorded
            .iter()
            .filter(|(c, ..)| c == channel)
            .map(|(_, reminder, mid)| match channel {
                "webpush" => format!("reminder-{reminder}"),
                _ => mid.clone().expect("message id"),
            })
            .collect()
    };
    let (hooks_at_kill, pushes_at_kill) = copies_at(&receiver);
    let mails_at_kill = w.smtp.accepted();
    let unrecorded = |copies: &BTreeMap<String, u32>, channel: &str| -> BTreeSet<String> {
        let done = recorded_as(channel);
        copies.keys().filter(|k| !done.contains(*k)).cloned().collect()
    };
    let hook_window = unrecorded(&hooks_at_kill, "webhook");
    let push_window = unrecorded(&pushes_at_kill, "webpush");
    let mail_window: BTreeSet<String> = {
        let done = recorded_as("email");
        w.smtp
            .copies()
            .into_keys()
            .filter(|k| !done.contains(k))
            .collect()
    };
    assert!(
        hooks_at_kill.len() < REMINDERS || pushes_at_kill.len() < REMINDERS,
        "killed mid-way"
    );

    let notify = world.consumer_with("notify", &env);
    w.wait_for(180, "every delivery recorded after the restart", || async {
        // The scheduler's pass brings the webhooks waiting for their retry time.
        assert_success(&w.run("scheduler-cron", &[], &[]), "scheduler retry pass");
        w.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .await
            >= 3 * REMINDERS as i64
    })
    .await;
    w.wait_for(60, "lag 0", || async { w.lag("notify", "reminders") == 0 })
        .await;
    stop(notify);

    // Each copy where it arrived: mails at the SMTP server, webhooks and pushes at the receiver.
    let (hooks, pushes) = copies_at(&receiver);
    assert_mailed_once_but(w, REMINDERS, &mail_window);
    assert_once_but("webhook", &hooks, REMINDERS, &hook_window);
    assert_once_but("push", &pushes, REMINDERS, &push_window);
    let refused = receiver.requests().iter().filter(|r| r.status == 503).count();
    assert_eq!(refused, 30, "the receiver's 503s were retried");
    assert_eq!(
        w.count("SELECT COUNT(*) FROM deliveries WHERE status <> 'sent'")
            .await,
        0
    );
    assert_eq!(
        w.count("SELECT COUNT(*) FROM reminders WHERE state = 'sent'")
            .await,
        REMINDERS as i64
    );
    let again = |copies: &BTreeMap<String, u32>| copies.values().filter(|n| **n > 1).count();
    eprintln!(
        "SIGKILL: {} webhooks, {} pushes, {} mails accepted at the kill; not yet recorded: {}, {}, {}; \
         sent twice (all in that window): {}, {}, {}",
        hooks_at_kill.len(),
        pushes_at_kill.len(),
        mails_at_kill,
        hook_window.len(),
        push_window.len(),
        mail_window.len(),
        again(&hooks),
        again(&pushes),
        w.smtp.copies().values().filter(|n| **n > 1).count()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_is_dead_lettered_and_does_not_stop_its_partition_then_it_can_be_replayed() {
    let Some(world) = World::new().await else {
        return;
    };
    // A single-partition topic, so the poison sits in front of the good events.
    let mut kafka = world.kafka.clone();
    kafka.topic_task_events = "chores".into();
    ensure_topics(&kafka, &["chores", "chores.dlq"], 1).await.unwrap();
    let producer = todo_events_kafka::EventProducer::new(&kafka).unwrap();
    use rdkafka::message::OwnedHeaders;
    let not_json = producer
        .send_raw("chores", Some(b"1"), Some(b"{not json"), OwnedHeaders::new())
        .await;
    assert!(not_json.is_ok());
    // Binary-mode CloudEvent with data that is not valid for the type.
    let headers = OwnedHeaders::new()
        .insert(rdkafka::message::Header {
            key: "ce_specversion",
            value: Some("1.0"),
        })
        .insert(rdkafka::message::Header {
            key: "ce_id",
            value: Some("bad-1"),
        })
        .insert(rdkafka::message::Header {
            key: "ce_source",
            value: Some("/tests"),
        })
        .insert(rdkafka::message::Header {
            key: "ce_type",
            value: Some("dev.todo.recurring-task.due"),
        })
        .insert(rdkafka::message::Header {
            key: "content-type",
            value: Some("application/json"),
        });
    producer
        .send_raw(
            "chores",
            Some(b"1"),
            Some(br#"{"recurring_task_id": -4, "user_id": 1}"#),
            headers,
        )
        .await
        .unwrap();

    let out = world.run(
        "todo-events",
        &["seed", "--users", "2", "--reminders", "0", "--recurring", "10"],
        &[],
    );
    assert_success(&out, "seed");
    let out = world.run("scheduler-cron", &[], &[("KAFKA_TOPIC_TASK_EVENTS", "chores")]);
    assert_success(&out, "scheduler pass");
    let recur = world.consumer_with("recur", &[("KAFKA_TOPIC_TASK_EVENTS", "chores")]);
    let w = &world;
    w.wait_for(90, "the events behind the poison handled", || async {
        w.instances().await >= 10
    })
    .await;
    w.wait_for(60, "lag 0", || async { w.lag("recur", "chores") == 0 })
        .await;
    stop(recur);
    assert_eq!(w.instances().await, 10);

    // Both poison messages are in the dead-letter topic, with their reasons.
    let out = world.run(
        "recur",
        &["replay-dead-letters", "--dry-run"],
        &[("KAFKA_TOPIC_TASK_EVENTS", "chores")],
    );
    assert_success(&out, "dry run");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("chores/0/0\t"), "{listing}");
    assert!(
        listing.contains("not a CloudEvent") || listing.contains("specversion"),
        "{listing}"
    );
    assert!(listing.contains("data.recurring_task_id"), "{listing}");
    assert!(
        listing.contains("listed 2 dead letter(s) from chores.dlq"),
        "{listing}"
    );
    // Replaying moves them back onto the topic.
    let out = world.run(
        "recur",
        &["replay-dead-letters"],
        &[("KAFKA_TOPIC_TASK_EVENTS", "chores")],
    );
    assert_success(&out, "replay");
    assert!(String::from_utf8_lossy(&out.stdout).contains("replayed 2 dead letter(s)"));
    assert_eq!(
        w.lag("recur", "chores"),
        2,
        "the two replayed messages wait on the topic again"
    );
}

/// Collects what OTLP/HTTP (JSON) exporters send to `/v1/traces`.
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let store = store.clone();
        App::new().route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let store = store.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        store.lock().unwrap().push(v);
                    }
                    HttpResponse::Ok().content_type("application/json").body("{}")
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (url, received)
}

/// (service, trace id, span id, parent span id, name) of every span received.
fn spans(received: &[serde_json::Value]) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for export in received {
        for rs in export["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_owned();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let text = |k: &str| span[k].as_str().unwrap_or_default().to_owned();
                    out.push((
                        service.clone(),
                        text("traceId"),
                        text("spanId"),
                        text("parentSpanId"),
                        text("name"),
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn one_event_is_one_trace_from_the_scheduler_through_kafka_to_the_function() {
    let Some(world) = World::new().await else {
        return;
    };
    let (endpoint, received) = otlp_receiver().await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ];
    let out = world.run(
        "todo-events",
        &["seed", "--users", "1", "--reminders", "1", "--recurring", "0"],
        &[],
    );
    assert_success(&out, "seed");
    let out = world.run("scheduler-cron", &[], &otel);
    assert_success(&out, "scheduler pass");
    let notify = world.consumer_with("notify", &otel);
    let w = &world;
    w.wait_for(60, "the reminder mailed", || async { w.smtp.accepted() == 1 })
        .await;
    assert!(stop(notify).success());

    let all = spans(&received.lock().unwrap());
    let publish: Vec<_> = all
        .iter()
        .filter(|s| s.4 == "publish dev.todo.reminder.due")
        .collect();
    let handle: Vec<_> = all
        .iter()
        .filter(|s| s.4 == "notify dev.todo.reminder.due")
        .collect();
    assert_eq!(publish.len(), 1, "one publish span: {all:?}");
    assert_eq!(handle.len(), 1, "one handling span: {all:?}");
    let (publish, handle) = (publish[0], handle[0]);
    assert_eq!(publish.0, "scheduler-cron");
    assert_eq!(handle.0, "notify");
    assert_eq!(handle.1, publish.1, "the same trace");
    assert_eq!(handle.3, publish.2, "handling is a child of publishing");
    let traces: std::collections::HashSet<_> = all
        .iter()
        .filter(|s| s.4.contains("dev.todo.reminder.due"))
        .map(|s| s.1.clone())
        .collect();
    assert_eq!(traces.len(), 1, "one trace for the event");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_kafka_retry_a_message_that_keeps_failing_is_dead_lettered_after_its_retries() {
    let Some(world) = World::new().await else {
        return;
    };
    // The relay defers every recipient: each reminder fails transiently, every time.
    let relay = two_reminders_published_to_a_deferring_relay(&world);
    let smtp_url = format!("smtp://127.0.0.1:{}?tls=none", relay.port);
    let started = Instant::now();
    let notify = world.consumer_with(
        "notify",
        &[
            ("MAILER", "smtp"),
            ("SMTP_URL", &smtp_url),
            ("KAFKA_RETRY", "2"),
            ("KAFKA_BACKOFF_DELAY", "100ms"),
        ],
    );
    let w = &world;
    w.wait_for(60, "both reminders given up (lag 0)", || async {
        w.lag("notify", "reminders") == 0
    })
    .await;
    stop(notify);
    // Two retries, after 200 ms and 400 ms: given up well within a few seconds.
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(relay.messages().len(), 0, "nothing was accepted by the relay");
    let out = world.run("notify", &["replay-dead-letters", "--dry-run"], &[]);
    assert_success(&out, "dry run");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("failed after 2 retries"), "{listing}");
    assert!(listing.contains("451 4.3.0"), "{listing}");
    assert!(
        listing.contains("listed 2 dead letter(s) from reminders.dlq"),
        "{listing}"
    );
}

/// Two reminders seeded and published, and an SMTP relay that defers every recipient
/// (`451`): each of their deliveries fails transiently, every time.
fn two_reminders_published_to_a_deferring_relay(world: &World) -> todo_events_testkit::smtp::SmtpServer {
    let relay = todo_events_testkit::smtp::SmtpServer::start(&todo_events_testkit::smtp::Options {
        replies: vec!["rcpt:*=451 4.3.0 Try again later".into()],
        ..Default::default()
    });
    let out = world.run(
        "todo-events",
        &["seed", "--users", "1", "--reminders", "2", "--recurring", "0"],
        &[],
    );
    assert_success(&out, "seed");
    assert_success(&world.run("scheduler-cron", &[], &[]), "scheduler pass");
    relay
}

/// A dead letter replayed after its reminder was sent and its delivery deleted by the
/// retention sends nothing (docs/DESIGN.md, "History"): the reminder's own state answers
/// it `duplicate`. The relay defers every message at first, so both reminders' events are
/// dead-lettered; the scheduler's republish then gets them mailed; a month and more later
/// (the deliveries' finish moved 40 days back) `todo-events prune` deletes the deliveries,
/// and the dead letters come back through `notify consume`.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_replayed_after_the_retention_sends_nothing() {
    let Some(world) = World::new().await else {
        return;
    };
    let deferring = two_reminders_published_to_a_deferring_relay(&world);
    let w = &world;
    let smtp_url = format!("smtp://127.0.0.1:{}?tls=none", deferring.port);
    let notify = world.consumer_with(
        "notify",
        &[
            ("SMTP_URL", &smtp_url),
            ("KAFKA_RETRY", "1"),
            ("KAFKA_BACKOFF_DELAY", "100ms"),
        ],
    );
    w.wait_for(60, "both reminders dead-lettered (lag 0)", || async {
        w.lag("notify", "reminders") == 0
    })
    .await;
    stop(notify);
    assert_eq!(deferring.messages().len(), 0);

    // The scheduler's republish brings them back; the world's relay takes them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = world.run("scheduler-cron", &[], &[("SCHEDULER_REPUBLISH_AFTER", "1s")]);
    assert_success(&out, "republishing pass");
    let notify = world.consumer("notify");
    w.wait_for(90, "both reminders sent", || async {
        w.count("SELECT COUNT(*) FROM reminders WHERE state = 'sent'")
            .await
            == 2
    })
    .await;
    stop(notify);
    assert_mailed_once(w, 2);

    // A month and more later the retention deletes their deliveries.
    w.count("WITH moved AS (UPDATE deliveries SET completed_at = now() - interval '40 days' RETURNING 1) SELECT COUNT(*) FROM moved")
        .await;
    let out = world.run("todo-events", &["prune"], &[]);
    assert_success(&out, "prune");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("pruned 2 deliveries"), "{said}");
    assert_eq!(w.count("SELECT COUNT(*) FROM deliveries").await, 0);

    let out = world.run("notify", &["replay-dead-letters"], &[]);
    assert_success(&out, "replay");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("replayed 2 dead letter(s)"), "{said}");
    let notify = world.consumer("notify");
    w.wait_for(60, "the replayed events handled (lag 0)", || async {
        w.lag("notify", "reminders") == 0
    })
    .await;
    stop(notify);
    assert_mailed_once(w, 2);
    assert_eq!(
        w.count("SELECT COUNT(*) FROM deliveries").await,
        0,
        "no delivery claimed again"
    );
}

/// A binary-mode CloudEvent of type `ty` with `data`, keyed by its user, as a sender that is
/// not the scheduler could put it on the topic.
async fn produce_event(
    producer: &todo_events_kafka::EventProducer,
    topic: &str,
    ty: &str,
    id: &str,
    data: &serde_json::Value,
) {
    use rdkafka::message::{Header, OwnedHeaders};
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "ce_specversion",
            value: Some("1.0"),
        })
        .insert(Header {
            key: "ce_id",
            value: Some(id),
        })
        .insert(Header {
            key: "ce_source",
            value: Some("/todo/scheduler-cron"),
        })
        .insert(Header {
            key: "ce_type",
            value: Some(ty),
        })
        .insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
    let key = data["user_id"].to_string();
    producer
        .send_raw(
            topic,
            Some(key.as_bytes()),
            Some(data.to_string().as_bytes()),
            headers,
        )
        .await
        .expect("hostile event produced");
}

/// The hostile-caller table (`crates/testkit/data/hostile_events.json`) through the consumers:
/// every row's event put on the topic as a sender inside the cluster could, then
/// `notify consume` and `recur consume` (SMTP to the real server): each acknowledged (lag 0,
/// nothing dead-lettered), no mail at the SMTP server, no delivery, the reminders pending at
/// their times, no instance beyond a chain's one due occurrence, next occurrences where they
/// were, and the early ones counted on each consumer's `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_events_through_the_consumers_send_nothing_and_write_nothing() {
    use chrono::{SubsecRound, Utc};
    use todo_events_testkit::hostile::{
        occurrence_rows, reminder_rows, HostileOccurrence, HOSTILE_NOTIFY_ROWS, HOSTILE_RECUR_ROWS,
    };
    let Some(world) = World::new().await else {
        return;
    };
    let store = &world.db.store;
    let producer = todo_events_kafka::EventProducer::new(&world.kafka).unwrap();
    let now = Utc::now().trunc_subsecs(0);
    let other = kit::reminder(store, "Someone else's", now + chrono::Duration::days(3)).await;
    let mut reminders = Vec::new();
    let mut early_reminders = 0;
    for (i, row) in reminder_rows().iter().enumerate() {
        let r = kit::reminder(store, "Water the plants", row.due_in.from(now)).await;
        let data = row.data(&r, &other);
        produce_event(
            &producer,
            "reminders",
            "dev.todo.reminder.due",
            &format!("hostile/{i}"),
            &data,
        )
        .await;
        early_reminders += usize::from(row.early);
        reminders.push(r);
    }
    let other_rt = kit::recurring(
        store,
        "FREQ=WEEKLY",
        "2026-01-05T07:00:00",
        "UTC",
        now + chrono::Duration::days(2),
        "latest",
        &[],
    )
    .await;
    let mut tasks = Vec::new();
    let mut early_occurrences = 0;
    for (i, row) in occurrence_rows().iter().enumerate() {
        let next = row.next_in.from(now);
        let rt = kit::recurring(
            store,
            "FREQ=DAILY",
            &HostileOccurrence::dtstart(next),
            "UTC",
            next,
            "latest",
            &[],
        )
        .await;
        for (k, data) in row.data(&rt, next, &other_rt).iter().enumerate() {
            produce_event(
                &producer,
                "task-events",
                "dev.todo.recurring-task.due",
                &format!("hostile/{i}/{k}"),
                data,
            )
            .await;
        }
        early_occurrences += if row.chain > 0 {
            row.chain
        } else {
            usize::from(row.early)
        };
        // A chain's first event is due: it creates one instance and moves the task a day on.
        let expect = match row.chain {
            0 => (0, next),
            _ => (1, next + chrono::Duration::days(1)),
        };
        tasks.push((rt, expect));
    }
    assert_eq!(
        (reminders.len(), tasks.len()),
        (HOSTILE_NOTIFY_ROWS, HOSTILE_RECUR_ROWS)
    );

    let (notify_port, recur_port) = (free_port(), free_port());
    let notify = world.consumer_with("notify", &[("PORT", &notify_port.to_string())]);
    let recur = world.consumer_with("recur", &[("PORT", &recur_port.to_string())]);
    let w = &world;
    // Generous: the other Kafka tests of this binary load the same two cores meanwhile.
    w.wait_for(240, "every hostile event handled", || async {
        w.lag("notify", "reminders") == 0 && w.lag("recur", "task-events") == 0
    })
    .await;
    let early = |port: u16, function: &'static str, ty: &'static str| async move {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        kit::metric(
            &text,
            "todo_events_early_events_total",
            &[&format!("function=\"{function}\""), &format!("type=\"{ty}\"")],
        ) as usize
    };
    assert_eq!(
        early(notify_port, "notify", "dev.todo.reminder.due").await,
        early_reminders,
        "early reminder events counted"
    );
    assert_eq!(
        early(recur_port, "recur", "dev.todo.recurring-task.due").await,
        early_occurrences,
        "early occurrence events counted"
    );
    assert!(stop(notify).success());
    assert!(stop(recur).success());

    assert!(
        world.smtp.copies().is_empty(),
        "no mail at the SMTP server: {:?}",
        world.smtp.copies()
    );
    assert_eq!(
        world.count("SELECT COUNT(*) FROM deliveries").await,
        0,
        "no delivery"
    );
    for r in &reminders {
        assert_eq!(
            store.reminder_state(r.reminder_id).await.unwrap(),
            Some(todo_events_store::ReminderState::Pending)
        );
    }
    for (rt, (instances, next)) in &tasks {
        assert_eq!(store.instances_of(rt.id).await.unwrap().len(), *instances);
        assert_eq!(
            store
                .recurring_task(rt.id)
                .await
                .unwrap()
                .unwrap()
                .next_occurrence,
            Some(*next)
        );
    }
    for (function, topic) in [("notify", "reminders"), ("recur", "task-events")] {
        let out = world.run(function, &["replay-dead-letters", "--dry-run"], &[]);
        assert_success(&out, "dry run");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains(&format!("listed 0 dead letter(s) from {topic}.dlq")),
            "{listing}"
        );
    }
}

/// `notify consume` and `recur consume` take their events from Kafka only: their port serves
/// health and metrics, and `POST /` is a `404` problem that handles nothing (a well-formed
/// event for a reminder that is due sends no mail and leaves the reminder pending).
#[tokio::test(flavor = "multi_thread")]
async fn consume_mode_serves_health_and_metrics_and_takes_no_event_over_http() {
    let Some(world) = World::new().await else {
        return;
    };
    let due = chrono::Utc::now() - chrono::Duration::seconds(5);
    let reminder = kit::reminder(&world.db.store, "Pay the rent", due).await;
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (name, ty, data) in [
        ("notify", "dev.todo.reminder.due", reminder.data()),
        (
            "recur",
            "dev.todo.recurring-task.due",
            serde_json::json!({"recurring_task_id": 1, "user_id": 1, "occurrence_at": "2026-01-01T00:00:00Z"}),
        ),
    ] {
        let port = free_port();
        let log = std::fs::File::create(world.logs.path().join(format!("{name}-health.log"))).unwrap();
        let child = world
            .command(name)
            .arg("consume")
            .env("PORT", port.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        world
            .wait_for(30, &format!("{name}'s liveness"), || async {
                http.get(format!("{url}/health/liveness"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await;
        let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200, "{name}: metrics served");
        let answer = http
            .post(format!("{url}/"))
            .header("ce-specversion", "1.0")
            .header("ce-id", reminder.event_id())
            .header("ce-source", "/todo/scheduler-cron")
            .header("ce-type", ty)
            .header("content-type", "application/json")
            .body(data.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            404,
            "{name}: POST / is not served in consume mode"
        );
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        stop(child);
        checked += 1;
    }
    assert_eq!(checked, 2, "both consumers checked");
    assert_eq!(world.smtp.accepted(), 0, "nothing mailed");
    assert_eq!(
        world.db.store.reminder_state(reminder.reminder_id).await.unwrap(),
        Some(todo_events_store::ReminderState::Pending),
        "the reminder is left for the scheduler"
    );
    assert_eq!(
        world.count("SELECT COUNT(*) FROM deliveries").await,
        0,
        "no delivery recorded"
    );
}
