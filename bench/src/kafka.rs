//! The Kafka path: scheduler-cron's claim → publish → mark rate beside the raw producer and
//! raw claim rates, end-to-end lateness, and the consumer modes of recur and notify.

use crate::env::{cpu_per_item, float, machine_busy_seconds, percentile, scalar, seed, Env, Service};
use crate::report::{ms, rate, Report, Row};
use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use cloudevents::binding::rdkafka::BaseRecordExt;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use scheduler_cron::publish::{KafkaPublisher, Publisher};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use todo_events_domain::events::Outgoing;
use todo_events_domain::{RecurringTaskDue, RecurringTaskId, ReminderDue, ReminderId, TaskId, UserId};
use todo_events_kafka::admin::{consumer_lag, ensure_topics};
use todo_events_kafka::KafkaConfig;
use todo_events_store::{Store, StoreOptions};

/// scheduler-cron's default `SCHEDULER_WORKERS`.
const SCHEDULER_WORKERS: usize = 4;

/// Partitions of each topic, as docs/DEPLOYMENT.md sets them up.
pub const PARTITIONS: i32 = 6;

/// A Tansu broker with in-memory storage on a free port (the test kit's), with the topics.
pub struct Broker {
    _broker: todo_events_testkit::kafka::MemoryBroker,
    pub config: KafkaConfig,
}

impl Broker {
    pub async fn start(env: &Env) -> anyhow::Result<Self> {
        let broker = todo_events_testkit::kafka::MemoryBroker::start(&env.out.join("tansu.log"))
            .context("starting tansu")?;
        let config = KafkaConfig::plaintext(broker.brokers());
        ensure_topics(&config, &["reminders", "task-events", "raw"], PARTITIONS).await?;
        Ok(Self {
            _broker: broker,
            config,
        })
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![("KAFKA_BROKERS", self.config.brokers.clone())]
    }
}

pub fn reminder_event(i: u64, remind_at: DateTime<Utc>) -> Outgoing {
    Outgoing::from(&ReminderDue {
        reminder_id: ReminderId::new(i as i64).expect("positive"),
        task_id: TaskId::new(i as i64).expect("positive"),
        user_id: UserId::new(1 + (i % 1000) as i64).expect("positive"),
        remind_at,
    })
}

pub fn occurrence_event(i: u64) -> Outgoing {
    Outgoing::from(&RecurringTaskDue {
        recurring_task_id: RecurringTaskId::new(i as i64).expect("positive"),
        user_id: UserId::new(1 + (i % 1000) as i64).expect("positive"),
        occurrence_at: "2026-11-01T08:00:00Z".parse().expect("instant"),
    })
}

/// Messages on `topic`, counted by reading them all with a new group.
fn messages_on(broker: &Broker, topic: &str) -> anyhow::Result<i64> {
    consumer_lag(&broker.config, &format!("count-{}", uuid_ish()), topic)
}

fn uuid_ish() -> String {
    format!("{:x}", Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

pub async fn scheduler(env: &Env, report: &mut Report, items: u64) -> anyhow::Result<()> {
    let tpl = env.database("sched_tpl", None).await?;
    seed::reminders(&tpl, items, "2026-11-01T09:45:00Z", "pending").await?;
    // Each measurement gets a fresh broker: Tansu's in-memory storage slows down as it
    // fills (a second 100 000 messages go in at about two thirds of the first's rate).
    let broker = Broker::start(env).await?;

    // Limit 1: the raw producer rate of rdkafka (same settings as the scheduler's producer,
    // same message bytes and headers), no database.
    let remind_at: DateTime<Utc> = "2026-11-01T09:45:00Z".parse()?;
    let events: Vec<_> = (1..=items)
        .map(|i| {
            let e = reminder_event(i, remind_at);
            let ce = scheduler_cron::publish::to_cloudevent(&e).expect("event builds");
            let record = cloudevents::binding::rdkafka::MessageRecord::from_event(ce).expect("encodes");
            (e.key, record)
        })
        .collect();
    let producer: BaseProducer = broker
        .config
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()?;
    let (started, busy) = (Instant::now(), machine_busy_seconds());
    for (key, record) in &events {
        let mut msg: BaseRecord<'_, str, Vec<u8>> = BaseRecord::to("raw")
            .key(key.as_str())
            .message_record(record)
            .expect("record fills");
        loop {
            match producer.send(msg) {
                Ok(()) => break,
                Err((_, back)) => {
                    msg = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    let raw_produce = items as f64 / started.elapsed().as_secs_f64();
    let produce_cpu = machine_busy_seconds() - busy;
    drop(events);
    drop(producer);
    drop(broker);

    // Limit 2: the raw claim rate: the scheduler's own claim and mark statements, in its
    // batch size and with as many loops at once as its default SCHEDULER_WORKERS, nothing
    // published.
    let url = env.database("claim", Some("sched_tpl")).await?;
    let mut opts = StoreOptions::new(url.clone());
    opts.max_connections = SCHEDULER_WORKERS as u32;
    let store = Store::open(&opts)?;
    let (started, busy) = (Instant::now(), machine_busy_seconds());
    let loops = (0..SCHEDULER_WORKERS).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimed = 0u64;
            loop {
                let now = Utc::now();
                let batch = store
                    .claim_reminders("bench", now, chrono::Duration::minutes(1), 500, None)
                    .await?;
                if batch.is_empty() {
                    return anyhow::Ok(claimed);
                }
                let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
                claimed += store.mark_reminders_published("bench", &ids, now).await?;
            }
        })
    });
    let mut claimed = 0;
    for handle in loops.collect::<Vec<_>>() {
        claimed += handle.await??;
    }
    let raw_claim = claimed as f64 / started.elapsed().as_secs_f64();
    let claim_cpu = machine_busy_seconds() - busy;
    anyhow::ensure!(claimed == items, "claimed {claimed} of {items}");
    store.close().await;
    env.drop_database("claim").await?;

    // The scheduler itself: one pass, a fresh process, as the CronJob runs it.
    env.database("sched", Some("sched_tpl")).await?;
    let Pass {
        elapsed,
        cpu: pass_cpu,
    } = pass(env, "sched", items).await?;
    env.drop_database("sched").await?;
    env.drop_database("sched_tpl").await?;

    let figure = items as f64 / elapsed;
    let slower = raw_produce.min(raw_claim);
    let ratio = figure / slower;
    report.add(Row {
        section: "scheduler",
        what: format!(
            "scheduler-cron, one pass: {items} due reminders claimed, published (acks=all), marked"
        ),
        figure: format!(
            "{} ({:.2} s, process start included; machine CPU {} per item)",
            rate(figure),
            elapsed,
            cpu_per_item(pass_cpu, items as f64)
        ),
        limit: format!(
            "raw rdkafka producer {} ({} per item), raw claim + mark SQL ({SCHEDULER_WORKERS} loops) {} ({} per item)",
            rate(raw_produce),
            cpu_per_item(produce_cpu, items as f64),
            rate(raw_claim),
            cpu_per_item(claim_cpu, items as f64)
        ),
        ratio: Some(ratio),
        target: "≥ 50 000/s and ≥ 70 % of the slower limit".into(),
        met: Some(figure >= 50_000.0 && ratio >= 0.7),
    });
    Ok(())
}

/// What one scheduler pass took.
pub struct Pass {
    /// Wall time, process start included, in seconds.
    pub elapsed: f64,
    /// Machine CPU over it, in seconds.
    pub cpu: f64,
}

/// One pass of scheduler-cron, a fresh process as the CronJob runs it, on database `db`
/// (`te_bench_<db>`, holding `items` due reminders) to a fresh broker; checks that every
/// due reminder was marked published and is on the topic.
pub async fn pass(env: &Env, db: &str, items: u64) -> anyhow::Result<Pass> {
    let broker = Broker::start(env).await?;
    let url = env.url_of(&format!("te_bench_{db}"));
    let mut vars = broker.vars();
    vars.push(("DATABASE_URL", url.clone()));
    // The seeds' history is months old: with the retention on, the pass measured would also
    // delete a backlog of it after publishing (as a first pass after turning the retention on
    // over old data does), which is not the claim → publish → mark this row measures. The
    // retention's own cost is section `prune`'s; in steady state a pass deletes a minute's
    // worth (docs/DESIGN.md, "History").
    vars.push(("HISTORY_RETENTION", "off".into()));
    let (started, busy) = (Instant::now(), machine_busy_seconds());
    let status = Command::new(env.binary("scheduler-cron"))
        .envs(vars)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.out.join("scheduler.log"))?)
        .status()?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = machine_busy_seconds() - busy;
    anyhow::ensure!(
        status.success(),
        "scheduler-cron failed: see target/bench/scheduler.log"
    );
    // The due reminders are `1..=items` in every seed (a history may hold published ones too).
    let published = scalar(
        &url,
        &format!("SELECT count(*) FROM reminders WHERE state = 'published' AND id <= {items}"),
    )
    .await?;
    anyhow::ensure!(
        published as u64 == items,
        "{published} of {items} marked published"
    );
    let on_topic = messages_on(&broker, "reminders")?;
    anyhow::ensure!(
        on_topic as u64 == items,
        "{on_topic} of {items} messages on the topic"
    );
    Ok(Pass { elapsed, cpu })
}

/// When the reminders of [`lateness`] fall due.
#[derive(Clone, Copy)]
pub enum DueTimes {
    /// All on one whole second: the best case, when the aligned ticker wakes.
    WholeSecond,
    /// One every millisecond across one second: most wait for the next poll.
    AcrossTheSecond,
}

/// 1 000 reminders due within one second; scheduler polling every second; notify consuming
/// with the file mailer. Lateness = the mail file's modification time − its reminder's
/// `remind_at` (read back from the Message-ID, which carries it).
pub async fn lateness(env: &Env, report: &mut Report, due_times: DueTimes) -> anyhow::Result<()> {
    const N: u64 = 1000;
    let broker = Broker::start(env).await?;
    let due = (Utc::now() + chrono::Duration::seconds(15)).trunc_subsecs(0);
    let url = env.database("late", None).await?;
    seed::reminders(&url, N, &todo_events_domain::time::rfc3339(due), "pending").await?;
    if let DueTimes::AcrossTheSecond = due_times {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
        sqlx::query("UPDATE reminders SET remind_at = remind_at + (id % 1000) * interval '1 millisecond' WHERE id <= $1")
            .bind(N as i64)
            .execute(&mut conn)
            .await?;
    }
    let outbox = tempfile::tempdir_in(&env.out)?;
    let mut vars = broker.vars();
    vars.extend([
        ("DATABASE_URL", url.clone()),
        ("MAILER", "file".into()),
        ("OUTBOX_DIR", outbox.path().display().to_string()),
    ]);
    let mut notify = Service::start(env, "notify-consume", "notify", &["consume"], &vars)?;
    notify.wait_ready(Duration::from_secs(20))?;
    let scheduler = Service::start(
        env,
        "scheduler-loop",
        "scheduler-cron",
        &["--loop", "--every", "1s"],
        &vars,
    )?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(outbox.path())?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .collect();
        if files.len() as u64 >= N || Instant::now() > deadline {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    scheduler.stop()?;
    notify.stop()?;
    anyhow::ensure!(files.len() as u64 == N, "{} of {N} mails written", files.len());
    let mut late: Vec<f64> = files
        .iter()
        .map(|f| {
            let written = f.metadata()?.modified()?.duration_since(std::time::UNIX_EPOCH)?;
            Ok(written.as_secs_f64() - remind_at_of(&std::fs::read_to_string(f.path())?)?)
        })
        .collect::<anyhow::Result<_>>()?;
    late.sort_by(f64::total_cmp);
    env.drop_database("late").await?;
    let p99 = percentile(&late, 99.0);
    let when = match due_times {
        DueTimes::WholeSecond => "due on one whole second",
        DueTimes::AcrossTheSecond => "due one per millisecond across one second",
    };
    report.add(Row {
        section: "lateness",
        what: format!("{N} reminders {when} → mail file written (scheduler every 1 s, Kafka, notify consume): p50 / p99 / max"),
        figure: format!("{} / {} / {}", ms(percentile(&late, 50.0)), ms(p99), ms(late[late.len() - 1])),
        limit: "the 1 s polling interval".into(),
        ratio: None,
        target: "p99 ≤ 1.5 s".into(),
        met: Some(p99 <= 1.5),
    });
    Ok(())
}

/// The `remind_at` of a reminder mail, seconds since the epoch, from its Message-ID
/// (`<reminder-<id>-<remind_at in µs>@todo-events>`).
fn remind_at_of(mail: &str) -> anyhow::Result<f64> {
    let id = mail
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: <reminder-"))
        .context("a reminder mail without its Message-ID")?;
    let micros: i64 = id
        .split(['-', '@'])
        .nth(1)
        .context("a Message-ID without remind_at")?
        .parse()?;
    Ok(micros as f64 / 1e6)
}

/// `recur consume` and `notify consume` draining a topic filled beforehand.
pub async fn consumers(env: &Env, report: &mut Report, items: u64) -> anyhow::Result<()> {
    // recur
    let broker = Broker::start(env).await?;
    let tpl = env.database("cons_recur_tpl", None).await?;
    seed::recurring(&tpl, items, seed::DTSTART_TODAY).await?;
    let limit =
        crate::http::pgbench_batched(env, "cons_recur_tpl", "recur_batch.sql", items, PARTITIONS as u32)
            .await?;
    fill(&broker, (1..=items).map(occurrence_event).collect()).await?;
    let url = env.database("cons_recur", Some("cons_recur_tpl")).await?;
    let figure = drain(env, &broker, "recur", &url, items, "SELECT count(*) FROM tasks WHERE recurring_task_id IS NOT NULL",
        "SELECT extract(epoch FROM max(created_at) - min(created_at))::float8 FROM tasks WHERE recurring_task_id IS NOT NULL", &[]).await?;
    let advanced = scalar(
        &url,
        "SELECT count(*) FROM recurring_tasks WHERE next_occurrence = '2026-11-02T08:00:00Z'",
    )
    .await?;
    anyhow::ensure!(
        advanced as u64 == items,
        "only {advanced} of {items} recurring tasks advanced"
    );
    env.drop_database("cons_recur").await?;
    env.drop_database("cons_recur_tpl").await?;
    let ratio = figure / limit;
    report.add(Row {
        section: "consumer",
        what: format!("`recur consume`: {items} events from the topic, instances created (batched)"),
        figure: rate(figure),
        limit: format!(
            "pgbench, the batched SQL, 100 rows per transaction, {PARTITIONS} clients: {} rows",
            rate(limit)
        ),
        ratio: Some(ratio),
        target: "≥ 20 000/s".into(),
        met: Some(figure >= 20_000.0),
    });
    drop(broker);

    // notify, file mailer
    let broker = Broker::start(env).await?;
    let tpl = env.database("cons_notify_tpl", None).await?;
    seed::reminders(&tpl, items, "2026-11-01T09:45:00Z", "published").await?;
    let limit = crate::http::pgbench_batched(
        env,
        "cons_notify_tpl",
        "notify_batch.sql",
        items,
        PARTITIONS as u32,
    )
    .await?;
    let remind_at: DateTime<Utc> = "2026-11-01T09:45:00Z".parse()?;
    fill(
        &broker,
        (1..=items).map(|i| reminder_event(i, remind_at)).collect(),
    )
    .await?;
    let url = env.database("cons_notify", Some("cons_notify_tpl")).await?;
    let outbox = tempfile::tempdir_in(&env.out)?;
    let figure = drain(
        env,
        &broker,
        "notify",
        &url,
        items,
        "SELECT count(*) FROM deliveries WHERE status = 'sent' AND remind_at = '2026-11-01T09:45:00Z'",
        "SELECT extract(epoch FROM max(completed_at) - min(claimed_at))::float8 FROM deliveries WHERE remind_at = '2026-11-01T09:45:00Z'",
        &[
            ("MAILER", "file".into()),
            ("OUTBOX_DIR", outbox.path().display().to_string()),
        ],
    )
    .await?;
    let files = std::fs::read_dir(outbox.path())?.count() as u64;
    anyhow::ensure!(files == items, "{files} mail files for {items} reminders");
    env.drop_database("cons_notify").await?;
    env.drop_database("cons_notify_tpl").await?;
    // Limit 2, right after: the same mails written again as the file mailer writes them.
    let files_limit = outbox_writes(env, outbox.path())?;
    let slower = limit.min(files_limit);
    report.add(Row {
        section: "consumer",
        what: format!(
            "`notify consume`, file mailer: {items} events from the topic, mails written (batched)"
        ),
        figure: rate(figure),
        limit: format!(
            "pgbench, the batched SQL, 100 rows per transaction, {PARTITIONS} clients: {} rows; \
             the same mail files written and renamed by {PARTITIONS} threads: {} files",
            rate(limit),
            rate(files_limit)
        ),
        ratio: Some(figure / slower),
        target: "≥ 10 000/s".into(),
        met: Some(figure >= 10_000.0),
    });
    Ok(())
}

/// The rate at which this machine's kernel takes the mails of `outbox` as the file mailer
/// writes them (`write` of a `.partial`, `rename`), by as many threads as the consumer has
/// partitions, into a fresh directory beside it: file creation, not the database, bounds
/// the file mailer on some machines (docs/PERFORMANCE.md, the file-mailer readings).
fn outbox_writes(env: &Env, outbox: &std::path::Path) -> anyhow::Result<f64> {
    let mails: Vec<Vec<u8>> = std::fs::read_dir(outbox)?
        .map(|e| Ok(std::fs::read(e?.path())?))
        .collect::<anyhow::Result<_>>()?;
    let dir = tempfile::tempdir_in(&env.out)?;
    let share = mails.len().div_ceil(PARTITIONS as usize);
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let writers: Vec<_> = mails
            .chunks(share)
            .enumerate()
            .map(|(w, chunk)| {
                let dir = dir.path();
                s.spawn(move || -> std::io::Result<()> {
                    for (i, bytes) in chunk.iter().enumerate() {
                        let path = dir.join(format!("w{w}-{i}.eml"));
                        let partial = path.with_extension("eml.partial");
                        std::fs::write(&partial, bytes)?;
                        std::fs::rename(&partial, &path)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    })?;
    Ok(mails.len() as f64 / started.elapsed().as_secs_f64())
}

/// Publishes the events with the scheduler's own Kafka publisher, in chunks.
pub async fn fill(broker: &Broker, events: Vec<Outgoing>) -> anyhow::Result<()> {
    let publisher = KafkaPublisher::new(broker.config.clone()).map_err(|e| anyhow::anyhow!(e))?;
    for chunk in events.chunks(10_000) {
        for r in publisher.publish(chunk).await {
            r.map_err(|e| anyhow::anyhow!(e))?;
        }
    }
    Ok(())
}

/// Starts `<function> consume`, waits until `count_sql` reaches `items`, and returns the
/// rate over the span the database recorded (`span_sql`): group joining is not counted.
#[allow(clippy::too_many_arguments)]
pub async fn drain(
    env: &Env,
    broker: &Broker,
    function: &str,
    url: &str,
    items: u64,
    count_sql: &str,
    span_sql: &str,
    extra: &[(&str, String)],
) -> anyhow::Result<f64> {
    let mut vars = broker.vars();
    vars.push(("DATABASE_URL", url.to_owned()));
    vars.extend(extra.iter().cloned());
    let mut svc = Service::start(env, &format!("{function}-consume"), function, &["consume"], &vars)?;
    svc.wait_ready(Duration::from_secs(20))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = scalar(url, count_sql).await?;
        if done as u64 >= items {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{function} consume handled only {done} of {items} in 10 minutes"
        );
        if let Some(status) = svc.child.try_wait()? {
            anyhow::bail!("{function} consume exited with {status}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, peak) = svc.rss_mib();
    svc.stop()?;
    println!("[consumer] {function} consume peak RSS {peak:.1} MiB");
    let span = float(url, span_sql).await?;
    Ok(items as f64 / span)
}
