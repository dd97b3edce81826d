//! The faults, what each does to the running system, and the record of what was done (the
//! counts the verdict needs: which e-mail claims a SIGKILL caught in flight, how many
//! poison messages went in).

use crate::world::{Proc, World};
use crate::{elapsed, retrying};
use chrono::{DateTime, Utc};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};
use todo_events_domain::ReminderId;
use todo_events_kafka::admin::reader_from_committed;
use todo_events_kafka::KafkaConfig;

#[derive(Clone, Copy, Debug)]
pub enum Target {
    Notify,
    Recur,
    Scheduler(usize),
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// SIGKILL, then the same process started again.
    Kill(Target),
    /// The SMTP server answers `reply` to the next `times` commands of `phase`.
    SmtpBurst {
        phase: &'static str,
        times: usize,
        reply: &'static str,
    },
    /// The broker SIGKILLed and started again on its storage.
    BrokerRestart,
    /// `pg_terminate_backend` on every connection to the database but the suite's own.
    TerminateBackends,
    /// The PostgreSQL cluster restarted (fast shutdown), when this user may.
    PostgresRestart,
    /// Events already on the topics produced again, newest first, and poison messages.
    DeliverAgain { per_topic: usize },
}

impl Fault {
    /// The name `--skip` knows it by.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(Target::Notify) => "kill-notify",
            Fault::Kill(Target::Recur) => "kill-recur",
            Fault::Kill(Target::Scheduler(_)) => "kill-scheduler",
            Fault::SmtpBurst { .. } => "smtp",
            Fault::BrokerRestart => "broker",
            Fault::TerminateBackends => "backends",
            Fault::PostgresRestart => "postgres",
            Fault::DeliverAgain { .. } => "again",
        }
    }
}

/// Every `--skip` name.
pub const KINDS: [&str; 8] = [
    "kill-notify",
    "kill-recur",
    "kill-scheduler",
    "smtp",
    "broker",
    "backends",
    "postgres",
    "again",
];

/// The faults, in order; several in one step happen together.
pub fn schedule(reminders: usize) -> Vec<Vec<Fault>> {
    use Fault::*;
    use Target::*;
    vec![
        vec![Kill(Notify)],
        vec![SmtpBurst {
            phase: "rcpt",
            times: (reminders / 20).max(50),
            reply: "451 4.3.0 Mailbox busy, try again later",
        }],
        vec![BrokerRestart],
        vec![TerminateBackends],
        vec![Kill(Recur)],
        vec![Kill(Scheduler(0))],
        vec![DeliverAgain {
            per_topic: (reminders / 10).max(100),
        }],
        vec![SmtpBurst {
            phase: "mail",
            times: (reminders / 50).max(20),
            reply: "421 4.3.2 Service shutting down, closing the connection",
        }],
        vec![PostgresRestart],
        vec![Kill(Notify), Kill(Scheduler(1))],
        vec![TerminateBackends, Kill(Recur)],
        vec![BrokerRestart],
    ]
}

/// What the faults did.
#[derive(Default)]
pub struct Record {
    /// SIGKILLs per process.
    pub kills: BTreeMap<&'static str, u32>,
    /// Message-ID → SIGKILLs of notify that found its e-mail already accepted by the SMTP
    /// server and its delivery not yet recorded (the one window for a second e-mail: sent,
    /// not known to be sent). A claim whose message the server did not have yet excuses
    /// nothing: sending it after the kill is its first copy.
    pub claims_hit: HashMap<String, u32>,
    pub broker_restarts: u32,
    pub backends_terminated: i64,
    pub postgres_restarts: u32,
    /// Why PostgreSQL was not restarted, when it was not.
    pub postgres_not_restarted: Option<String>,
    /// SMTP replies the bursts asked for.
    pub smtp_bursts: Vec<String>,
    /// Events produced a second time.
    pub delivered_again: usize,
    /// Messages that are not valid events, each of which must be dead-lettered.
    pub poison: usize,
}

pub async fn apply(world: &mut World, fault: &Fault, record: &mut Record, t0: Instant) -> anyhow::Result<()> {
    let what = match fault {
        Fault::Kill(target) => {
            let notify = matches!(target, Target::Notify);
            if notify {
                sends_in_flight(world).await;
            }
            let proc = process(world, *target);
            proc.kill();
            let label = proc.label;
            *record.kills.entry(label).or_default() += 1;
            let mut detail = String::new();
            if notify {
                // The server may still be storing a message whose last bytes the process
                // sent just before it died.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let in_flight = claims_in_flight(world).await?;
                let accepted = world.smtp.copies();
                let caught: Vec<String> = in_flight
                    .iter()
                    .filter(|id| accepted.contains_key(*id))
                    .cloned()
                    .collect();
                detail = format!(
                    " ({} e-mail claim(s) in flight, {} of them already accepted by the SMTP server)",
                    in_flight.len(),
                    caught.len()
                );
                for id in caught {
                    *record.claims_hit.entry(id).or_default() += 1;
                }
                sends_resume(world);
            }
            process(world, *target).start()?;
            format!("{label} SIGKILLed{detail} and started again")
        }
        Fault::SmtpBurst { phase, times, reply } => {
            let rule = format!("reply {phase}:*:{times}={reply}");
            tokio::task::block_in_place(|| world.smtp.command(&rule));
            record
                .smtp_bursts
                .push(format!("{times} × {phase} {}", &reply[..3]));
            format!("SMTP server answers {times} {phase} command(s) with \"{reply}\"")
        }
        Fault::BrokerRestart => {
            tokio::task::block_in_place(|| world.broker.restart());
            record.broker_restarts += 1;
            "broker SIGKILLed and started again".to_owned()
        }
        Fault::TerminateBackends => {
            let n: i64 = retrying(|| {
                sqlx::query_scalar(
                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&world.pool)
            })
            .await?;
            record.backends_terminated += n;
            format!("{n} database connection(s) terminated (pg_terminate_backend)")
        }
        Fault::PostgresRestart => {
            // Sends under way while the database goes: their outcome must still be recorded.
            sends_in_flight(world).await;
            let restarted = tokio::task::block_in_place(restart_postgres);
            sends_resume(world);
            match restarted {
                Ok(took) => {
                    record.postgres_restarts += 1;
                    format!(
                        "PostgreSQL restarted (down and up again in {:.1} s)",
                        took.as_secs_f64()
                    )
                }
                Err(why) => {
                    let line = format!("PostgreSQL not restarted: {why}");
                    record.postgres_not_restarted = Some(why);
                    line
                }
            }
        }
        Fault::DeliverAgain { per_topic } => {
            let producer = Producer::new(&world.kafka)?;
            let mut again = 0;
            for (topic, ty, bad_data) in [
                ("reminders", "dev.todo.reminder.due", r#"{"reminder_id": -1}"#),
                (
                    "task-events",
                    "dev.todo.recurring-task.due",
                    r#"{"recurring_task_id": -4, "user_id": 1}"#,
                ),
            ] {
                again += deliver_again(&world.kafka, &producer, topic, *per_topic).await?;
                record.poison += poison(&producer, topic, ty, bad_data).await?;
            }
            record.delivered_again += again;
            format!(
                "{again} event(s) delivered again, newest first; {} poison message(s) so far",
                record.poison
            )
        }
    };
    println!("[{}] {what}", elapsed(t0));
    Ok(())
}

/// Makes the SMTP server store each message and then wait before answering `250`, and
/// waits until sends have piled up in that wait.
async fn sends_in_flight(world: &mut World) {
    tokio::task::block_in_place(|| world.smtp.command("accept-delay 2"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

fn sends_resume(world: &mut World) {
    tokio::task::block_in_place(|| world.smtp.command("accept-delay 0"));
}

fn process(world: &mut World, target: Target) -> &mut Proc {
    match target {
        Target::Notify => &mut world.notify,
        Target::Recur => &mut world.recur,
        Target::Scheduler(i) => &mut world.schedulers[i],
    }
}

/// Message-IDs of the e-mails claimed and not recorded as sent or failed.
async fn claims_in_flight(world: &World) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(i64, DateTime<Utc>)> = retrying(|| {
        sqlx::query_as("SELECT reminder_id, remind_at FROM deliveries WHERE status = 'sending'")
            .fetch_all(&world.pool)
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| Some(notify::mail::message_id(ReminderId::new(id)?, at)))
        .collect())
}

/// The suite's own producer: plain (not idempotent: Tansu 0.6 sometimes answers an
/// idempotent producer's first batch after a broker restart with OutOfOrderSequenceNumber),
/// acknowledged by the broker, each message retried until it is.
struct Producer(FutureProducer);

impl Producer {
    fn new(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        Ok(Self(
            kafka
                .client_config()
                .set("enable.idempotence", "false")
                .set("acks", "all")
                .create()?,
        ))
    }

    async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> anyhow::Result<()> {
        let mut attempts = 0;
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(p) = payload {
                record = record.payload(p);
            }
            match self.0.send(record, Duration::from_secs(30)).await {
                Ok(_) => return Ok(()),
                Err((e, _)) if attempts < 5 => {
                    attempts += 1;
                    eprintln!("faults: producing to {topic} failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err((e, _)) => anyhow::bail!("producing to {topic}: {e}"),
            }
        }
    }
}

/// Reads up to `max` messages of `topic` from its beginning and produces them again, the
/// last read first: the consumers see each event twice, and out of order.
async fn deliver_again(
    kafka: &KafkaConfig,
    producer: &Producer,
    topic: &str,
    max: usize,
) -> anyhow::Result<usize> {
    type Copy = (Option<Vec<u8>>, Option<Vec<u8>>, OwnedHeaders);
    let (kafka, owned_topic) = (kafka.clone(), topic.to_owned());
    let copies: Vec<Copy> = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Copy>> {
        let reader = reader_from_committed(&kafka, "faults-deliver-again", &owned_topic)?;
        let mut copies = Vec::new();
        let mut last = Instant::now();
        while copies.len() < max && last.elapsed() < Duration::from_millis(1500) {
            if let Some(message) = rdkafka::consumer::BaseConsumer::poll(&reader, Duration::from_millis(100))
            {
                let m = message?;
                copies.push((
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec),
                    m.headers().map(|h| h.detach()).unwrap_or_default(),
                ));
                last = Instant::now();
            }
        }
        Ok(copies)
    })
    .await??;
    // All enqueued at once, newest first (the futures are first polled in this order).
    let sends = copies.iter().rev().map(|(key, payload, headers)| {
        producer.send(topic, key.as_deref(), payload.as_deref(), headers.clone())
    });
    futures::future::try_join_all(sends).await?;
    Ok(copies.len())
}

/// Two messages no consumer can handle: bytes that are no CloudEvent, and a CloudEvent of
/// the right type whose data is invalid. Returns how many were produced.
async fn poison(producer: &Producer, topic: &str, ty: &str, bad_data: &str) -> anyhow::Result<usize> {
    producer
        .send(
            topic,
            Some(b"poison"),
            Some(b"{not a CloudEvent"),
            OwnedHeaders::new(),
        )
        .await?;
    let id = format!("poison-{topic}-{}", Utc::now().timestamp_micros());
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", id.as_str()),
        ("ce_source", "/faults"),
        ("ce_type", ty),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    });
    producer
        .send(topic, Some(b"poison"), Some(bad_data.as_bytes()), headers)
        .await?;
    Ok(2)
}

/// Restarts the local PostgreSQL cluster on port 5432 (Debian's `pg_ctlcluster`, fast
/// shutdown) and waits until it accepts connections. Only that cluster, and only when the
/// suite's database is on it.
fn restart_postgres() -> Result<Duration, String> {
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_default();
    if !url.is_empty() && !url.contains("@127.0.0.1:5432/") && !url.contains("@localhost:5432/") {
        return Err("TEST_DATABASE_URL is not the local cluster on port 5432".into());
    }
    let clusters = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .map_err(|e| format!("pg_lsclusters: {e}"))?;
    let listing = String::from_utf8_lossy(&clusters.stdout);
    let (version, name) = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "5432")
        .map(|f| (f[0].to_owned(), f[1].to_owned()))
        .ok_or("no local cluster on port 5432 (pg_lsclusters)")?;
    let started = Instant::now();
    let out = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            &name,
            "restart",
            "-m",
            "fast",
        ])
        .output()
        .map_err(|e| format!("pg_ctlcluster: {e}"))?;
    if !out.status.success() {
        // Whatever happened, leave the cluster running.
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, &name, "start"])
            .output();
        return Err(format!(
            "pg_ctlcluster {version} {name} restart failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        if Instant::now() > deadline {
            return Err("PostgreSQL did not come back within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started.elapsed())
}
