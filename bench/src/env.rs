//! What every benchmark stands on: release binaries, PostgreSQL databases seeded in bulk,
//! function processes with their memory figures, the machine's description.

use anyhow::{bail, Context};
use sqlx::{Connection, Executor, PgConnection};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Env {
    pub root: PathBuf,
    pub out: PathBuf,
    admin_url: String,
}

impl Env {
    /// Builds the release binaries and checks the tools and PostgreSQL.
    pub async fn prepare() -> anyhow::Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
        // `bench/run` builds everything first; started any other way, bring the measured
        // binaries up to date here.
        if std::env::var_os("TODO_EVENTS_BENCH_BUILT").is_none() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--release", "--bins", "--workspace"])
                .current_dir(&root)
                .status()?;
            anyhow::ensure!(status.success(), "cargo build --release failed");
        }
        for tool in ["wrk", "pgbench"] {
            anyhow::ensure!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()?
                    .success(),
                "{tool} is missing (bench/run installs it)"
            );
        }
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        let out = root.join("target/bench");
        std::fs::create_dir_all(&out)?;
        Ok(Self { root, out, admin_url })
    }

    /// A measured binary: `target/release/<name>`, or from `BENCH_BINARIES` (e.g.
    /// `target/profiling`, built with symbols for perf).
    pub fn binary(&self, name: &str) -> PathBuf {
        let dir = std::env::var("BENCH_BINARIES").unwrap_or_else(|_| "target/release".into());
        self.root.join(dir).join(name)
    }

    pub fn url_of(&self, db: &str) -> String {
        let (base, _) = self.admin_url.rsplit_once('/').expect("URL ends with /<db>");
        format!("{base}/{db}")
    }

    async fn admin(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&self.admin_url).await?)
    }

    /// A new database named `te_bench_<name>` (dropped first if a run left it), migrated,
    /// or copied from `template`. The `te_` prefix lets `.ci/run` clean leftovers.
    pub async fn database(&self, name: &str, template: Option<&str>) -> anyhow::Result<String> {
        let db = format!("te_bench_{name}");
        let mut admin = self.admin().await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
            .await?;
        match template {
            Some(t) => {
                // A connection to the template that was just closed can linger a moment.
                let sql = format!("CREATE DATABASE {db} TEMPLATE te_bench_{t}");
                let mut tries = 0;
                loop {
                    match admin.execute(sql.as_str()).await {
                        Ok(done) => break done,
                        Err(e) if tries < 50 && e.to_string().contains("being accessed") => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            None => admin.execute(format!("CREATE DATABASE {db}").as_str()).await?,
        };
        let url = self.url_of(&db);
        if template.is_none() {
            let store = todo_events_store::Store::open(&todo_events_store::StoreOptions::new(url.clone()))?;
            store.migrate().await?;
            store.close().await;
        }
        Ok(url)
    }

    /// `te_bench_<name>` as a file copy of `te_bench_<template>` (dropped first), then a
    /// checkpoint: for templates of a gigabyte or more (the `history` section), which the
    /// default `WAL_LOG` strategy would write through the WAL, leaving checkpoints to fall in
    /// the measurement that follows. Copies of small templates are made the same way where
    /// they are compared with large ones.
    pub async fn file_copy(&self, name: &str, template: &str) -> anyhow::Result<String> {
        let db = format!("te_bench_{name}");
        let mut admin = self.admin().await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
            .await?;
        let sql = format!("CREATE DATABASE {db} TEMPLATE te_bench_{template} STRATEGY FILE_COPY");
        let mut tries = 0;
        loop {
            match admin.execute(sql.as_str()).await {
                Ok(_) => break,
                Err(e) if tries < 50 && e.to_string().contains("being accessed") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        admin.execute("CHECKPOINT").await?;
        Ok(self.url_of(&db))
    }

    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS te_bench_{name} WITH (FORCE)").as_str())
            .await?;
        Ok(())
    }

    /// One line about the machine for the report.
    pub fn machine(&self) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
        let pg = Command::new("psql")
            .args([&self.admin_url, "-Atc", "SHOW server_version"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        format!("{cores} cores ({cpu}), {mem_gib:.0} GiB, PostgreSQL {pg} (fsync on, defaults), Tansu 0.6 (memory storage)")
    }
}

/// Bulk seed through SQL (`generate_series`), so seeding 300 000 rows takes seconds.
pub mod seed {
    use super::*;

    /// History, as a todo database in use has: `n` finished tasks, each with a reminder
    /// mailed a month ago and its delivery record (ids from 10 000 001, users as below).
    /// Without it the tables the benchmark writes start empty, and PostgreSQL's cached
    /// plans for the foreign-key checks chosen on an empty `tasks` table (sequential
    /// scans) stay in use as it grows: a fresh-install artefact, not the steady state
    /// (docs/PERFORMANCE.md). All on one instant: [`year`] spreads a larger one.
    pub async fn history(url: &str, n: u64) -> anyhow::Result<()> {
        exec(url, &format!(
            "INSERT INTO tasks (id, user_id, title, description, status, due_at, completed_at)
               SELECT 10000000 + g, 1 + g % 1000, 'Done before ' || g, '', 'done', '2026-10-01T10:00:00Z', '2026-10-01T11:00:00Z' FROM generate_series(1, {n}) g;
             INSERT INTO reminders (id, task_id, user_id, remind_at, state)
               SELECT 10000000 + g, 10000000 + g, 1 + g % 1000, '2026-10-01T09:45:00Z', 'sent' FROM generate_series(1, {n}) g;
             INSERT INTO deliveries (reminder_id, remind_at, channel, event_id, status, attempts, recipient, message_id, claimed_at, lease_until, completed_at)
               SELECT 10000000 + g, '2026-10-01T09:45:00Z', 'email', 'reminder/' || (10000000 + g) || '/2026-10-01T09:45:00Z', 'sent', 1,
                      'user' || (1 + g % 1000) || '@bench.test', '<old-' || g || '@todo-events>', '2026-10-01T09:45:01Z', '2026-10-01T09:47:01Z', '2026-10-01T09:45:02Z'
               FROM generate_series(1, {n}) g;
             SELECT setval('tasks_id_seq', 10000000 + {n}); SELECT setval('reminders_id_seq', 10000000 + {n});"
        )).await
    }

    pub async fn exec(url: &str, sql: &str) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(url).await?;
        conn.execute(sql).await?;
        Ok(())
    }

    /// DTSTART of the recurring tasks: the occurrence the benchmark asks about, as for a task
    /// created today.
    pub const DTSTART_TODAY: &str = "2026-11-01T09:00:00";
    /// The same daily rule started ten years earlier (3 652 occurrences before the one asked
    /// about): what a task's age costs.
    pub const DTSTART_TEN_YEARS_AGO: &str = "2016-11-01T09:00:00";

    /// 1 000 users; `n` daily recurring tasks in Europe/Berlin (09:00 local = 08:00Z in
    /// November) started at local `dtstart`, each due at 2026-11-01T08:00:00Z with one
    /// reminder 15 minutes before. Recurring task `i` belongs to user `1 + i % 1000`.
    pub async fn recurring(url: &str, n: u64, dtstart: &str) -> anyhow::Result<()> {
        users(url).await?;
        due_recurring(url, n, dtstart).await?;
        history(url, n).await?;
        exec(url, "VACUUM ANALYZE").await
    }

    /// 1 000 users; `n` tasks, each with one reminder (same id) at `remind_at` in `state`.
    /// Reminder `i` belongs to task `i` and user `1 + i % 1000`.
    pub async fn reminders(url: &str, n: u64, remind_at: &str, state: &str) -> anyhow::Result<()> {
        users(url).await?;
        due_reminders(url, n, remind_at, state).await?;
        history(url, n).await?;
        exec(url, "VACUUM ANALYZE").await
    }

    /// The 1 000 users every seed's rows belong to.
    pub async fn users(url: &str) -> anyhow::Result<()> {
        exec(url,
            "INSERT INTO users (id, email, display_name, timezone) SELECT g, 'user' || g || '@bench.test', 'User ' || g, 'Europe/Berlin' FROM generate_series(1, 1000) g;
             SELECT setval('users_id_seq', 1000);",
        ).await
    }

    /// The recurring tasks of [`recurring`], without users or history.
    pub async fn due_recurring(url: &str, n: u64, dtstart: &str) -> anyhow::Result<()> {
        exec(url, &format!(
            "INSERT INTO recurring_tasks (id, user_id, title, rrule, timezone, dtstart, next_occurrence, reminder_offsets)
               SELECT g, 1 + g % 1000, 'Water the plants', 'FREQ=DAILY', 'Europe/Berlin', '{dtstart}', '2026-11-01T08:00:00Z', '[900]'
               FROM generate_series(1, {n}) g;
             SELECT setval('recurring_tasks_id_seq', {n});"
        )).await
    }

    /// The tasks and reminders of [`reminders`], without users or history.
    pub async fn due_reminders(url: &str, n: u64, remind_at: &str, state: &str) -> anyhow::Result<()> {
        exec(url, &format!(
            "INSERT INTO tasks (id, user_id, title, description, due_at)
               SELECT g, 1 + g % 1000, 'Renew the passport ' || g, 'Bring two photos.', '2026-11-01T10:00:00Z' FROM generate_series(1, {n}) g;
             INSERT INTO reminders (id, task_id, user_id, remind_at, state)
               SELECT g, g, 1 + g % 1000, '{remind_at}', '{state}' FROM generate_series(1, {n}) g;"
        )).await
    }
}

pub async fn scalar(url: &str, sql: &str) -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect(url).await?;
    Ok(sqlx::query_scalar(sql).fetch_one(&mut conn).await?)
}

pub async fn float(url: &str, sql: &str) -> anyhow::Result<f64> {
    let mut conn = PgConnection::connect(url).await?;
    Ok(sqlx::query_scalar(sql).fetch_one(&mut conn).await?)
}

/// A function process of the benchmark; SIGTERM and wait when dropped.
pub struct Service {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Service {
    /// Starts `binary args` with `env` (plus `PORT`), logs to `target/bench/<name>.log`.
    pub fn start(
        env: &Env,
        name: &str,
        binary: &str,
        args: &[&str],
        vars: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = todo_events_testkit::kafka::free_port();
        let log = env.out.join(format!("{name}.log"));
        let mut cmd = Command::new(env.binary(binary));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("starting {binary}"))?;
        Ok(Self { child, port, log })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Waits for `200` on `/health/readiness`; the time from now until then.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if readiness_ok(self.port) {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "exited with {status} before it was ready; see {}",
                    self.log.display()
                );
            }
            if started.elapsed() > timeout {
                bail!("not ready after {timeout:?}; see {}", self.log.display());
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Resident memory now and at its peak, in MiB.
    pub fn rss_mib(&self) -> (f64, f64) {
        memory(self.child.id())
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            todo_events_testkit::signal(self.child.id(), todo_events_testkit::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    self.child.kill()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// `GET /health/readiness` answered `200`.
pub fn readiness_ok(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health/readiness HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

/// (VmRSS, VmHWM) of a process in MiB.
pub fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Percentile (0–100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub use todo_events_testkit::machine_busy_seconds;

/// Machine CPU per item over a run: `1 234 µs`.
pub fn cpu_per_item(busy_seconds: f64, items: f64) -> String {
    format!("{:.0} µs", busy_seconds / items * 1e6)
}

/// `vars` plus the sizing the functions are deployed with: knative/ and keda/ give each
/// `limits.cpu: "1"`, where actix and tokio size themselves to the container's one CPU.
/// Here, on 2 cores shared with PostgreSQL and the load, each would start a worker per core.
pub fn one_cpu(mut vars: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    vars.extend([
        ("HTTP_WORKERS", "1".to_owned()),
        ("TOKIO_WORKER_THREADS", "1".to_owned()),
    ]);
    vars
}

/// CPU time (user + system) that process `pid` and its descendants have used so far, in
/// seconds, from `/proc/<pid>/stat`: a service's own cost (uvicorn's workers are children of
/// its supervisor), where [`machine_busy_seconds`] counts everything on the machine.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    // (pid, ppid, utime + stime in ticks) of every process.
    let stats: Vec<(u32, u32, f64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // Fields after the command name, which is in parentheses and may hold spaces.
            let (head, rest) = stat.rsplit_once(") ")?;
            let pid = head.split_once(" (")?.0.parse().ok()?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
            let ppid = fields.get(1)?.parse().ok()?;
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((pid, ppid, utime + stime))
        })
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(stats.iter().filter(|s| s.1 == parent).map(|s| s.0));
        i += 1;
    }
    let ticks: f64 = stats.iter().filter(|s| tree.contains(&s.0)).map(|s| s.2).sum();
    // USER_HZ is 100 on Linux whatever the kernel's tick rate.
    ticks / 100.0
}
