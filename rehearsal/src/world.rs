//! The real parts around the stand-ins: a fresh PostgreSQL database, a Kafka-protocol
//! broker with the topics as docs/DEPLOYMENT.md creates them, and an SMTP relay (STARTTLS,
//! AUTH, a per-message delay) that keeps every copy it accepts. Effects are counted where a
//! user sees them: messages at the relay, task instances in the database, records on the
//! dead-letter topic.

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use sqlx::{Connection, Executor, PgConnection};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use todo_events_domain::{ReminderId, TaskId};
use todo_events_kafka::KafkaConfig;
use todo_events_testkit::kafka::MemoryBroker;
use todo_events_testkit::oidc::Issuer;
use todo_events_testkit::smtp::{Options, SmtpServer};

/// Users of the seeded data: 1 … USERS; the one after them has the address the relay
/// always defers (the poison).
pub const USERS: i64 = 1000;
pub const POISON_ADDRESS: &str = "poison@rehearsal.test";
/// The daily agenda's users are `AGENDA_USERS` + an id of the world's ([`World::agendas`]).
pub const AGENDA_USERS: i64 = 1_000_000;

pub struct World {
    admin_url: String,
    pub db: String,
    pub url: String,
    /// Stopped when the world is dropped.
    _broker: MemoryBroker,
    pub kafka: KafkaConfig,
    pub smtp: SmtpServer,
    pub addresses: BTreeMap<String, String>,
    /// The cluster's service-account issuer (the API server's discovery document and keys),
    /// played by the test kit's stand-in: the dispatchers' tokens are signed by it.
    pub issuer: Arc<Issuer>,
    /// What a pod with `OIDC_AUDIENCE` is given beside `addresses`: where the API server
    /// is (`OIDC_DISCOVERY_URL`) and its own service-account token (`OIDC_TOKEN_FILE`).
    pub oidc: BTreeMap<String, String>,
    _pod_token: tempfile::NamedTempFile,
    next_id: i64,
    /// Each message file read so far, and the reminder it was for (other mail: `None`).
    seen: HashMap<PathBuf, Option<Effect>>,
    /// The same for the daily agendas: the user, and when the relay accepted it.
    agendas_seen: HashMap<PathBuf, Option<(i64, DateTime<Utc>)>>,
}

/// A record of a topic as a reader sees it.
pub struct Record {
    pub ce_id: String,
    /// When the broker took it (the record's timestamp).
    pub at: DateTime<Utc>,
    /// Its headers (`ce_*`: the CloudEvent's attributes and extensions).
    pub headers: BTreeMap<String, String>,
}

/// One effect: what it was for, when it was due, when it happened.
#[derive(Clone, Copy, Debug)]
pub struct Effect {
    pub id: i64,
    pub due: DateTime<Utc>,
    pub done: DateTime<Utc>,
}

impl World {
    pub async fn start(
        out: &Path,
        name: &str,
        relay_delay: Duration,
        partitions: i32,
    ) -> anyhow::Result<Self> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        let db = format!("te_rehearsal_{name}");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
            .await?;
        admin.execute(format!("CREATE DATABASE {db}").as_str()).await?;
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("TEST_DATABASE_URL ends with /<db>")?;
        let url = format!("{base}/{db}");
        let store = todo_events_store::Store::open(&todo_events_store::StoreOptions::new(url.clone()))?;
        store.migrate().await?;
        store.close().await;
        let mut conn = PgConnection::connect(&url).await?;
        conn.execute(
            format!(
                "INSERT INTO users (id, email, display_name, timezone)
                   SELECT g, 'user' || g || '@rehearsal.test', 'User ' || g, 'Europe/Berlin' FROM generate_series(1, {USERS}) g;
                 INSERT INTO users (id, email, display_name, timezone) VALUES ({USERS} + 1, '{POISON_ADDRESS}', 'Poison', 'UTC');
                 SELECT setval('users_id_seq', {USERS} + 1);
                 -- Task instances (recur) take ids far above the seeded tasks'.
                 SELECT setval('tasks_id_seq', 1000000000);"
            )
            .as_str(),
        )
        .await?;

        let broker = MemoryBroker::start(&out.join(format!("tansu-{name}.log"))).context("starting tansu")?;
        let kafka = KafkaConfig::plaintext(broker.brokers());
        todo_events_kafka::admin::ensure_topics(
            &kafka,
            &["reminders", "task-events", "reminders.dlq", "task-events.dlq"],
            partitions,
        )
        .await?;

        let (cert, key) = certificate(out)?;
        let smtp = SmtpServer::start_in(
            &Options {
                starttls: Some((cert.clone(), key)),
                auth: Some(("todo-events".into(), "rehearsal".into())),
                replies: vec![format!(
                    "rcpt:{POISON_ADDRESS}=451 4.3.0 Mailbox busy, try again later"
                )],
                data_delay: Some(relay_delay.as_secs_f64()),
                ..Options::default()
            },
            tempfile::tempdir_in(out)?,
        );
        let addresses = BTreeMap::from([
            ("DATABASE_URL".to_owned(), url.clone()),
            ("KAFKA_BROKERS".to_owned(), broker.brokers()),
            (
                "SMTP_URL".to_owned(),
                format!("smtp://todo-events:rehearsal@localhost:{}", smtp.port),
            ),
            // The relay's certificate is our own; a cluster's relay has a public one.
            ("SMTP_CA_FILE".to_owned(), cert.display().to_string()),
        ]);
        let issuer = Arc::new(Issuer::start());
        let pod_token = issuer.pod_token_file();
        let oidc = BTreeMap::from([
            ("OIDC_DISCOVERY_URL".to_owned(), issuer.url.clone()),
            (
                "OIDC_TOKEN_FILE".to_owned(),
                pod_token.path().display().to_string(),
            ),
        ]);
        Ok(Self {
            admin_url,
            db,
            url,
            _broker: broker,
            kafka,
            smtp,
            addresses,
            issuer,
            oidc,
            _pod_token: pod_token,
            next_id: 1,
            seen: HashMap::new(),
            agendas_seen: HashMap::new(),
        })
    }

    /// The Kafka controller's offset initialisation for a KafkaSource with `initialOffset:
    /// latest`, before any of its consumers starts: every partition of `topic` without a
    /// committed offset in `group` gets the partition's end (eventing-kafka-broker
    /// `control-plane/pkg/kafka/offset`, `InitOffsets`, called from the ConsumerGroup
    /// reconciler). Partitions that have one keep it. With `earliest` the controller does
    /// nothing of the kind, and a partition that never carries an event keeps no committed
    /// offset: KEDA's scaler then reads it as lag for ever (1 per partition with the trigger
    /// the controller generates).
    pub fn init_offsets_latest(&self, group: &str, topic: &str) -> anyhow::Result<usize> {
        let (consumer, partitions) = self.reader(group, topic)?;
        let mut all = rdkafka::TopicPartitionList::new();
        for p in &partitions {
            all.add_partition(topic, *p);
        }
        let committed = consumer.committed_offsets(all, Duration::from_secs(5))?;
        let mut at_end = rdkafka::TopicPartitionList::new();
        for p in partitions {
            let has = committed
                .find_partition(topic, p)
                .is_some_and(|e| matches!(e.offset(), rdkafka::Offset::Offset(_)));
            if !has {
                let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
                at_end.add_partition_offset(topic, p, rdkafka::Offset::Offset(high))?;
            }
        }
        let n = at_end.count();
        if n > 0 {
            consumer.commit(&at_end, rdkafka::consumer::CommitMode::Sync)?;
        }
        Ok(n)
    }

    /// A consumer of `group` that commits nothing by itself, and the partitions of `topic`.
    fn reader(&self, group: &str, topic: &str) -> anyhow::Result<(BaseConsumer, Vec<i32>)> {
        let consumer: BaseConsumer = self
            .kafka
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let partitions = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        Ok((consumer, partitions))
    }

    /// PostgreSQL's `max_connections`.
    pub async fn max_connections() -> anyhow::Result<i64> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        let v: String = sqlx::query_scalar("SHOW max_connections")
            .fetch_one(&mut admin)
            .await?;
        Ok(v.parse()?)
    }

    fn ids(&mut self, n: usize) -> Vec<i64> {
        let ids = (self.next_id..self.next_id + n as i64).collect();
        self.next_id += n as i64;
        ids
    }

    /// Reminders due at `due` (one task each, users in turn); their ids.
    pub async fn reminders(&mut self, due: &[DateTime<Utc>]) -> anyhow::Result<Vec<i64>> {
        let ids = self.ids(due.len());
        let mut conn = PgConnection::connect(&self.url).await?;
        sqlx::query(
            "INSERT INTO tasks (id, user_id, title, description, due_at)
               SELECT i, 1 + i % $3, 'Rehearsal task ' || i, '', d + interval '1 hour' FROM unnest($1::bigint[], $2::timestamptz[]) AS t(i, d);
             ",
        )
        .bind(&ids)
        .bind(due)
        .bind(USERS)
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "INSERT INTO reminders (id, task_id, user_id, remind_at, state)
               SELECT i, i, 1 + i % $3, d, 'pending' FROM unnest($1::bigint[], $2::timestamptz[]) AS t(i, d)",
        )
        .bind(&ids)
        .bind(due)
        .bind(USERS)
        .execute(&mut conn)
        .await?;
        Ok(ids)
    }

    /// One reminder of the user whose address the relay always defers.
    pub async fn poison_reminder(&mut self, due: DateTime<Utc>) -> anyhow::Result<i64> {
        let id = self.ids(1)[0];
        let mut conn = PgConnection::connect(&self.url).await?;
        sqlx::query("INSERT INTO tasks (id, user_id, title, description) VALUES ($1, $2, 'Poison', '')")
            .bind(id)
            .bind(USERS + 1)
            .execute(&mut conn)
            .await?;
        sqlx::query("INSERT INTO reminders (id, task_id, user_id, remind_at, state) VALUES ($1, $1, $2, $3, 'pending')")
            .bind(id)
            .bind(USERS + 1)
            .bind(due)
            .execute(&mut conn)
            .await?;
        Ok(id)
    }

    /// Daily recurring tasks (UTC) whose next occurrence is `due` (whole seconds: RFC 5545
    /// times have no fractions); their ids.
    pub async fn occurrences(&mut self, due: &[DateTime<Utc>]) -> anyhow::Result<Vec<i64>> {
        let ids = self.ids(due.len());
        let mut conn = PgConnection::connect(&self.url).await?;
        sqlx::query(
            "INSERT INTO recurring_tasks (id, user_id, title, rrule, timezone, dtstart, next_occurrence, reminder_offsets)
               SELECT i, 1 + i % $3, 'Rehearsal routine ' || i, 'FREQ=DAILY', 'UTC',
                      to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), d, '[]'
               FROM unnest($1::bigint[], $2::timestamptz[]) AS t(i, d)",
        )
        .bind(&ids)
        .bind(due)
        .bind(USERS)
        .execute(&mut conn)
        .await?;
        Ok(ids)
    }

    /// Every message the relay accepted for the reminders `ids` (each copy), by its
    /// Message-ID `<reminder-<id>-<remind_at µs>@todo-events>`, with the time it was accepted.
    pub fn mails(&mut self, ids: &[i64]) -> anyhow::Result<Vec<Effect>> {
        let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
        for entry in std::fs::read_dir(self.smtp.dir())? {
            let path = entry?.path();
            if path.extension().is_none_or(|x| x != "eml") || self.seen.contains_key(&path) {
                continue;
            }
            let raw = std::fs::read(&path)?;
            let accepted: DateTime<Utc> = std::fs::metadata(&path)?.modified()?.into();
            let parsed = mail_parser::MessageParser::default()
                .parse(&raw)
                .and_then(|m| m.message_id().map(str::to_owned))
                .and_then(|id| parse_message_id(&id))
                .map(|(id, due)| Effect {
                    id,
                    due,
                    done: accepted,
                });
            self.seen.insert(path, parsed);
        }
        Ok(self
            .seen
            .values()
            .flatten()
            .filter(|e| wanted.contains(&e.id))
            .copied()
            .collect())
    }

    /// `n` users in Europe/Berlin whose daily agenda is at `due`'s local time there, each with
    /// one task overdue (so that the agenda has something to say); their ids.
    pub async fn agendas(&mut self, n: usize, due: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
        let users: Vec<i64> = self.ids(n).into_iter().map(|i| AGENDA_USERS + i).collect();
        let tasks = self.ids(n);
        let zone = todo_events_domain::recurrence::Zone::parse("Europe/Berlin")?;
        let local = zone.wall_time(due).format("%H:%M:%S").to_string();
        let mut conn = PgConnection::connect(&self.url).await?;
        sqlx::query(
            "INSERT INTO users (id, email, display_name, timezone)
               SELECT u, 'agenda' || u || '@rehearsal.test', 'Agenda ' || u, 'Europe/Berlin' FROM unnest($1::bigint[]) u",
        )
        .bind(&users)
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "INSERT INTO tasks (id, user_id, title, description, due_at)
               SELECT t, u, 'Overdue ' || t, '', $3::timestamptz - interval '1 day'
               FROM unnest($1::bigint[], $2::bigint[]) AS v(t, u)",
        )
        .bind(&tasks)
        .bind(&users)
        .bind(due)
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "INSERT INTO user_preferences (user_id, agenda_at) SELECT u, $2 FROM unnest($1::bigint[]) u",
        )
        .bind(&users)
        .bind(&local)
        .execute(&mut conn)
        .await?;
        Ok(users)
    }

    /// Every agenda the relay accepted for `users` (each copy), by its Message-ID
    /// `<agenda-<user>-<date>@todo-events>`, with the time it was accepted; each was due at
    /// `due`.
    pub fn agenda_mails(&mut self, users: &[i64], due: DateTime<Utc>) -> anyhow::Result<Vec<Effect>> {
        let wanted: std::collections::HashSet<i64> = users.iter().copied().collect();
        for entry in std::fs::read_dir(self.smtp.dir())? {
            let path = entry?.path();
            if path.extension().is_none_or(|x| x != "eml") || self.agendas_seen.contains_key(&path) {
                continue;
            }
            let raw = std::fs::read(&path)?;
            let accepted: DateTime<Utc> = std::fs::metadata(&path)?.modified()?.into();
            let user = mail_parser::MessageParser::default()
                .parse(&raw)
                .and_then(|m| m.message_id().map(str::to_owned))
                .and_then(|id| parse_agenda_id(&id));
            self.agendas_seen.insert(path, user.map(|u| (u, accepted)));
        }
        Ok((self.agendas_seen.values().flatten())
            .filter(|(u, _)| wanted.contains(u))
            .map(|&(id, done)| Effect { id, due, done })
            .collect())
    }

    /// Task instances of the recurring tasks `ids`, created when their transaction ran.
    pub async fn instances(&self, ids: &[i64]) -> anyhow::Result<Vec<Effect>> {
        let mut conn = PgConnection::connect(&self.url).await?;
        let rows: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT recurring_task_id, occurrence_at, created_at FROM tasks WHERE recurring_task_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, due, done)| Effect { id, due, done })
            .collect())
    }

    /// Records on `topic`, from its start.
    pub fn records(&self, topic: &str) -> anyhow::Result<Vec<Record>> {
        let (consumer, partitions) = self.reader("rehearsal-reader", topic)?;
        let mut from_start = rdkafka::TopicPartitionList::new();
        for p in partitions {
            from_start.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
        }
        consumer.assign(&from_start)?;
        let mut out = Vec::new();
        let mut quiet = std::time::Instant::now();
        while quiet.elapsed() < Duration::from_secs(3) {
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m?;
            quiet = std::time::Instant::now();
            let mut headers = BTreeMap::new();
            if let Some(hs) = m.headers() {
                for h in hs.iter() {
                    headers.insert(
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            let at = m
                .timestamp()
                .to_millis()
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                .unwrap_or_else(Utc::now);
            out.push(Record {
                ce_id: headers.get("ce_id").cloned().unwrap_or_default(),
                at,
                headers,
            });
        }
        Ok(out)
    }

    /// The relay's own limit: `n` messages sent straight to it by notify's SMTP client over
    /// `sessions` sessions (no database, broker or HTTP); the seconds it took.
    pub async fn relay_limit(&self, n: usize, sessions: usize) -> anyhow::Result<f64> {
        let mut settings =
            notify::config::SmtpSettings::new(&self.addresses["SMTP_URL"]).map_err(|e| anyhow::anyhow!(e))?;
        settings.ca_file = Some(self.addresses["SMTP_CA_FILE"].clone().into());
        settings.max_sessions = sessions.max(1);
        let cfg = notify::NotifyConfig::smtp(settings.clone());
        let mailer = notify::mail::SmtpMailer::new(&settings).map_err(|e| anyhow::anyhow!(e))?;
        let messages = (0..n)
            .map(|i| {
                notify::mail::build_message(
                    &cfg,
                    &notify::mail::ReminderMail {
                        to_email: "limit@rehearsal.test",
                        to_name: "Limit",
                        timezone: "UTC",
                        task_id: TaskId::new(i as i64 + 1).expect("positive"),
                        task_title: "The relay's limit",
                        task_description: "",
                        due_at: None,
                        remind_at: Utc::now(),
                        // Ids no scenario uses: these messages are not counted as reminders.
                        reminder_id: ReminderId::new(i64::MAX - i as i64).expect("positive"),
                        locale: "en",
                    },
                )
                .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let started = std::time::Instant::now();
        let sent = futures::future::join_all(messages.iter().map(|m| mailer.send(m))).await;
        let elapsed = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            sent.iter().all(Result::is_ok),
            "the relay refused some of the limit's messages"
        );
        Ok(elapsed)
    }

    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db).as_str())
            .await?;
        Ok(())
    }
}

/// `<agenda-1000042-20261207@todo-events>` (angle brackets optional) → 1000042.
fn parse_agenda_id(id: &str) -> Option<i64> {
    let inner = id.trim_matches(['<', '>']).strip_suffix("@todo-events")?;
    let (user, _date) = inner.strip_prefix("agenda-")?.split_once('-')?;
    user.parse().ok()
}

/// `<reminder-42-1795790088000000@todo-events>` (angle brackets optional) → (42, remind_at).
fn parse_message_id(id: &str) -> Option<(i64, DateTime<Utc>)> {
    let inner = id.trim_matches(['<', '>']).strip_suffix("@todo-events")?;
    let rest = inner.strip_prefix("reminder-")?;
    let (id, micros) = rest.split_once('-')?;
    Some((
        id.parse().ok()?,
        Utc.timestamp_micros(micros.parse().ok()?).single()?,
    ))
}

/// A certificate for `localhost`, made once per run.
fn certificate(out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = out.join("relay-cert.pem");
    let key = out.join("relay-key.pem");
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.signing_key.serialize_pem())?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::parse_message_id;

    #[test]
    fn message_ids() {
        let (id, at) = parse_message_id("<reminder-42-1795790088250000@todo-events>").unwrap();
        assert_eq!(id, 42);
        assert_eq!(at.timestamp_micros(), 1795790088250000);
        assert!(parse_message_id("<other@todo-events>").is_none());
    }
}
