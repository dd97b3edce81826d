//! The system under test and its peers: a fresh PostgreSQL database, the Kafka-protocol broker
//! (object storage, so a restart keeps topics and committed offsets, though Tansu can lose
//! acknowledged messages across it: docs/RELIABILITY.md), the SMTP server, and the
//! real binaries as processes of their own, so that a fault is what production would see:
//! a SIGKILL, a connection reset, a `4xx` reply.

use anyhow::{bail, Context};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use todo_events_kafka::admin::ensure_topics;
use todo_events_kafka::KafkaConfig;
use todo_events_testkit::kafka::{free_port, KafkaBroker};
use todo_events_testkit::smtp::{Options, SmtpServer};
use todo_events_testkit::TestDb;

/// Partitions per topic: more than one, so a consumer restart rebalances several.
const PARTITIONS: i32 = 3;

/// Settings that make the faults' windows short enough for a run of minutes: a scheduler
/// claim and an e-mail claim left by a killed process are taken over seconds later.
const SCHEDULER_LEASE: &str = "5s";
const SMTP_TIMEOUT: &str = "5s";
/// Four times `SMTP_TIMEOUT`, as the manifests set them (2 m against 30 s): a send that used
/// its whole wait for a session and its whole conversation still has the time the manifests
/// leave to record its outcome, a PostgreSQL restart included. (11 s, barely over the twice
/// notify requires, left about a second in the worst case.)
const DELIVERY_LEASE: &str = "20s";
/// An item published this long ago without effect is published again: what heals messages
/// the broker loses (Tansu's storage does across restarts; see docs/RELIABILITY.md).
const SCHEDULER_REPUBLISH_AFTER: &str = "20s";

/// One of the binaries, run as a process that can be killed and started again. Its output
/// goes to `<out>/<label>.log`, appended across restarts.
pub struct Proc {
    pub label: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // Each start its own health port: the killed process's may linger in TIME_WAIT.
            .env("PORT", free_port().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown, no offset commit, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status (SIGKILL after 30 s without one).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        todo_events_testkit::signal(child.id(), todo_events_testkit::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status when the process ended on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct World {
    pub db_url: String,
    /// The suite's own connections (seeding, counting, terminating backends).
    pub pool: PgPool,
    pub broker: KafkaBroker,
    pub kafka: KafkaConfig,
    pub smtp: SmtpServer,
    pub notify: Proc,
    pub recur: Proc,
    /// Two schedulers polling the same database at once.
    pub schedulers: [Proc; 2],
    bins: PathBuf,
    _db: TestDb,
}

impl World {
    /// Starts the peers (database, broker, SMTP server); the functions are started later
    /// with [`World::start_functions`], once the work is seeded.
    pub async fn start(out: &Path) -> anyhow::Result<Self> {
        let bins = std::env::current_exe()?
            .parent()
            .context("the suite's directory")?
            .to_owned();
        for name in ["notify", "recur", "scheduler-cron"] {
            if !bins.join(name).exists() {
                bail!(
                    "{} is missing: build the workspace's binaries first (faults/run does)",
                    bins.join(name).display()
                );
            }
        }
        std::fs::create_dir_all(out)?;
        let db = todo_events_testkit::postgres()
            .await
            .context("PostgreSQL is required (TEST_DATABASE_URL, default 127.0.0.1:5432)")?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&db.url)
            .await?;
        let broker = tokio::task::block_in_place(KafkaBroker::start);
        let kafka = KafkaConfig::plaintext(broker.brokers());
        ensure_topics(
            &kafka,
            &["reminders", "reminders.dlq", "task-events", "task-events.dlq"],
            PARTITIONS,
        )
        .await?;
        let smtp = tokio::task::block_in_place(|| {
            SmtpServer::start_in(&Options::default(), tempfile::tempdir_in(out).expect("SMTP dir"))
        });

        let common = vec![
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("KAFKA_BROKERS".to_owned(), broker.brokers()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        let proc = |label: &'static str, program: &str, args: &[&str], extra: &[(&str, String)]| {
            let mut env = common.clone();
            env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            Proc {
                label,
                program: bins.join(program),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                env,
                log: out.join(format!("{label}.log")),
                child: None,
            }
        };
        let notify = proc(
            "notify",
            "notify",
            &["consume"],
            &[
                ("MAILER", "smtp".into()),
                ("SMTP_URL", format!("smtp://127.0.0.1:{}?tls=none", smtp.port)),
                ("SMTP_MAX_SESSIONS", "16".into()),
                ("SMTP_TIMEOUT", SMTP_TIMEOUT.into()),
                ("DELIVERY_LEASE", DELIVERY_LEASE.into()),
            ],
        );
        let recur = proc("recur", "recur", &["consume"], &[]);
        let scheduler = |label| {
            proc(
                label,
                "scheduler-cron",
                &["--loop", "--every", "1s"],
                &[
                    ("SCHEDULER_LEASE", SCHEDULER_LEASE.into()),
                    ("SCHEDULER_REPUBLISH_AFTER", SCHEDULER_REPUBLISH_AFTER.into()),
                ],
            )
        };
        let schedulers = [scheduler("scheduler-a"), scheduler("scheduler-b")];
        Ok(Self {
            db_url: db.url.clone(),
            pool,
            broker,
            kafka,
            smtp,
            notify,
            recur,
            schedulers,
            bins,
            _db: db,
        })
    }

    pub fn start_functions(&mut self) -> anyhow::Result<()> {
        self.notify.start()?;
        self.recur.start()?;
        for s in &mut self.schedulers {
            s.start()?;
        }
        Ok(())
    }

    pub fn processes(&mut self) -> impl Iterator<Item = &mut Proc> {
        [&mut self.notify, &mut self.recur]
            .into_iter()
            .chain(self.schedulers.iter_mut())
    }

    /// Runs one of the binaries to its end (e.g. `notify replay-dead-letters --dry-run`).
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(self.bins.join(program))
            .args(args)
            .env("DATABASE_URL", &self.db_url)
            .env("KAFKA_BROKERS", self.broker.brokers())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .output()?)
    }
}
