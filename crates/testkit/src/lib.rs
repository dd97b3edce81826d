//! Test support shared by the integration tests of every crate: a fresh database on each
//! backend, a function served on a random port, fixtures and CloudEvents requests, the shared
//! bad-input table ([`bad_requests`] for requests, [`bad_stored`] for stored data, both read
//! from `data/bad_requests.json`).
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test gets a database of its own, dropped when the test is done. When PostgreSQL is
//! unreachable the PostgreSQL half of a test is skipped with a message, except under
//! `CI=true`, where it fails ([`require`] has every such need).

pub mod bad_requests;
pub mod bad_stored;
pub mod hostile;
pub mod kafka;
pub mod oidc;
mod peer;
pub mod require;
pub mod slow;
pub mod smtp;
pub mod webhook;

pub use bad_requests::{assert_bad_cases_rejected, bad_cases, BadCase, BAD_CASES};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::net::TcpListener;
use std::sync::Arc;
use todo_events_domain::{RecurringTaskId, ReminderDue, ReminderId, TaskId, UserId};
use todo_events_host::{serve, Function, HostOptions, Shutdown};
use todo_events_store::seed::{NewRecurringTask, NewTask, NewUser};
use todo_events_store::{Store, StoreOptions};

/// A fresh, migrated database; a PostgreSQL one is dropped with it.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// Last, so the store's pool goes first.
    _dropped_with_it: Option<DropDatabase>,
}

/// Drops a test's PostgreSQL database when the test is done (passed or failed), so runs do
/// not leave databases behind. `WITH (FORCE)` ends the connections still open, such as those
/// of the test's pool or of a binary the test started.
struct DropDatabase {
    admin: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = require::block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .map(|_| ())
        });
        if let Err(e) = dropped {
            eprintln!("test database {} was not dropped: {e}", self.name);
        }
    }
}

impl TestDb {
    /// Writes one `channel_endpoints` row for `user` with plain SQL, as the todo app would
    /// (the store's typed insert cannot write an unknown channel); the database's error as
    /// text when it refuses the row.
    pub async fn insert_endpoint_row(
        &self,
        user: UserId,
        e: &bad_stored::StoredEndpoint,
    ) -> Result<i64, String> {
        use sqlx::Connection;
        const SQL: &str =
            "INSERT INTO channel_endpoints (user_id, channel, target, format, secret, p256dh, auth) \
             VALUES ($1, $2, $3, COALESCE($4, 'standard'), $5, $6, $7) RETURNING id";
        macro_rules! insert {
            ($conn:ty) => {{
                let mut conn = <$conn>::connect(&self.url).await.expect("connect");
                sqlx::query_scalar::<_, i64>(SQL)
                    .bind(user.get())
                    .bind(&e.channel)
                    .bind(&e.target)
                    .bind(&e.format)
                    .bind(&e.secret)
                    .bind(&e.p256dh)
                    .bind(&e.auth)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| e.to_string())
            }};
        }
        if self.backend == "postgres" {
            insert!(sqlx::PgConnection)
        } else {
            insert!(sqlx::SqliteConnection)
        }
    }

    /// Makes the database refuse every task instance of recurring task `id`, with an error
    /// that is not transient (as a broken constraint would): a trigger on `tasks`, so that a
    /// batch's write fails because of one of its events.
    pub async fn refuse_instances_of(&self, id: todo_events_domain::RecurringTaskId) {
        use sqlx::{Connection, Executor};
        let id = id.get();
        if self.backend == "postgres" {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect");
            conn.execute(
                format!(
                    "CREATE FUNCTION te_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                     RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514'; END $$; \
                     CREATE TRIGGER te_refuse BEFORE INSERT ON tasks FOR EACH ROW \
                     WHEN (NEW.recurring_task_id = {id}) EXECUTE FUNCTION te_refuse();"
                )
                .as_str(),
            )
            .await
            .expect("trigger created");
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
            conn.execute(
                format!(
                    "CREATE TRIGGER te_refuse BEFORE INSERT ON tasks \
                     WHEN NEW.recurring_task_id = {id} \
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
                )
                .as_str(),
            )
            .await
            .expect("trigger created");
        }
    }
}

/// A fresh SQLite file in a temporary directory.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::open(&StoreOptions::new(url.clone())).expect("sqlite opens");
    store.migrate().await.expect("sqlite migrates");
    TestDb {
        store,
        url,
        backend: "sqlite",
        _dir: Some(dir),
        _dropped_with_it: None,
    }
}

/// A fresh PostgreSQL database, dropped with the [`TestDb`], or `None` when PostgreSQL is
/// unreachable outside CI ([`require::postgres`]: one message per test binary).
pub async fn postgres() -> Option<TestDb> {
    use sqlx::Connection;
    let admin = require::postgres()?;
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} was reachable a moment ago: {e}"));
    let name = format!("te_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let dropped_with_it = DropDatabase {
        admin: admin.clone(),
        name: name.clone(),
    };
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("TEST_DATABASE_URL must end with /<database>"),
    };
    let mut opts = StoreOptions::new(url.clone());
    opts.max_connections = 20;
    // As the functions open it (crates/kafka/src/cli.rs).
    opts.generic_plans = true;
    let store = Store::open(&opts).expect("postgres opens");
    store.migrate().await.expect("postgres migrates");
    Some(TestDb {
        store,
        url,
        backend: "postgres",
        _dir: None,
        _dropped_with_it: Some(dropped_with_it),
    })
}

/// Every backend available: SQLite always, PostgreSQL when reachable (always under CI).
pub async fn backends() -> Vec<TestDb> {
    let mut all = vec![sqlite().await];
    all.extend(postgres().await);
    all
}

/// A store whose database cannot be reached (for 503 / readiness tests).
pub fn unreachable_store() -> Store {
    let mut opts = StoreOptions::new("postgres://postgres@127.0.0.1:9/nothing");
    opts.acquire_timeout = std::time::Duration::from_millis(500);
    Store::open(&opts).expect("lazy pool opens")
}

/// Asserts a `503` problem answer that names `dependency` ("the database") and holds none
/// of `hidden` (the dependency's own error text: its address, its words):
/// what is unavailable goes to the caller, why goes to the log.
pub async fn assert_unavailable(response: reqwest::Response, dependency: &str, hidden: &[&str]) {
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(response.headers().contains_key("retry-after"));
    let body = response.text().await.expect("a body");
    let problem: Value = serde_json::from_str(&body).expect("problem+json");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(dependency),
        "the answer names {dependency}: {body}"
    );
    for text in hidden {
        assert!(!body.contains(text), "the answer shows {text:?}: {body}");
    }
}

/// What an [`unreachable_store`]'s errors say, which no answer may show.
pub const UNREACHABLE_STORE_TEXT: &[&str] = &[
    "127.0.0.1:9",
    "os error",
    "pool",
    "connection",
    "refused",
    "timed out",
];

/// A function served on a random loopback port; stopped when dropped.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    shutdown: Shutdown,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub async fn spawn<F: Function>(function: F) -> TestApp {
    spawn_with(
        function,
        HostOptions {
            workers: 2,
            ..HostOptions::default()
        },
    )
    .await
}

pub async fn spawn_with<F: Function>(function: F, opts: HostOptions) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    tokio::spawn(serve(Arc::new(function), listener, opts, shutdown.clone()));
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{url}/health/liveness")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    TestApp {
        url,
        client,
        shutdown,
    }
}

impl TestApp {
    /// The function's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics answered");
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.expect("metrics text")
    }

    /// POSTs an event in binary mode.
    pub async fn post_binary(&self, ty: &str, id: &str, data: &Value) -> reqwest::Response {
        self.post_binary_as(ty, id, data, None).await
    }

    /// POSTs an event in binary mode with `authorization` as its `Authorization` header.
    pub async fn post_binary_as(
        &self,
        ty: &str,
        id: &str,
        data: &Value,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/", self.url))
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/todo/scheduler-cron")
            .header("ce-type", ty)
            .header("content-type", "application/json")
            .body(data.to_string());
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.send().await.expect("request sent")
    }

    /// POSTs an event in structured mode.
    pub async fn post_structured(&self, ty: &str, id: &str, data: &Value) -> reqwest::Response {
        let body = serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/todo/scheduler-cron", "type": ty,
            "datacontenttype": "application/json", "data": data,
        });
        self.client
            .post(format!("{}/", self.url))
            .header("content-type", "application/cloudevents+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }
}

/// A user with one task and one pending reminder due at `remind_at`.
pub struct ReminderFixture {
    pub user_id: UserId,
    pub task_id: TaskId,
    pub reminder_id: ReminderId,
    pub remind_at: DateTime<Utc>,
}

impl ReminderFixture {
    /// The event for this reminder, as notify receives it: its id and data.
    pub fn due(&self) -> (String, ReminderDue) {
        let due = ReminderDue {
            reminder_id: self.reminder_id,
            task_id: self.task_id,
            user_id: self.user_id,
            remind_at: self.remind_at,
        };
        (due.event_id(), due)
    }

    /// The `dev.todo.reminder.due` data for this reminder.
    pub fn data(&self) -> Value {
        serde_json::json!({
            "reminder_id": self.reminder_id, "task_id": self.task_id, "user_id": self.user_id,
            "remind_at": todo_events_domain::time::rfc3339(self.remind_at),
        })
    }
    pub fn event_id(&self) -> String {
        format!(
            "reminder/{}/{}",
            self.reminder_id,
            todo_events_domain::time::rfc3339(self.remind_at)
        )
    }
}

pub async fn user(store: &Store, email: &str, timezone: &str) -> UserId {
    store
        .insert_user(&NewUser {
            email,
            display_name: "Test User",
            timezone,
        })
        .await
        .expect("user inserted")
}

pub async fn reminder(store: &Store, title: &str, remind_at: DateTime<Utc>) -> ReminderFixture {
    let user_id = user(store, "ada@example.test", "Europe/Berlin").await;
    let task_id = store
        .insert_task(&NewTask {
            user_id,
            title,
            description: "",
            due_at: Some(remind_at + Duration::minutes(15)),
        })
        .await
        .expect("task inserted");
    let reminder_id = store
        .insert_reminder(task_id, user_id, remind_at)
        .await
        .expect("reminder inserted");
    ReminderFixture {
        user_id,
        task_id,
        reminder_id,
        remind_at,
    }
}

/// A recurring task with `rule` from local `dtstart` in `tz`; `next` is its next occurrence.
pub struct RecurringFixture {
    pub user_id: UserId,
    pub id: RecurringTaskId,
}

impl RecurringFixture {
    pub fn data(&self, occurrence: DateTime<Utc>) -> Value {
        serde_json::json!({
            "recurring_task_id": self.id, "user_id": self.user_id,
            "occurrence_at": todo_events_domain::time::rfc3339(occurrence),
        })
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn recurring(
    store: &Store,
    rule: &str,
    dtstart: &str,
    tz: &str,
    next: DateTime<Utc>,
    catch_up: &str,
    reminder_offsets: &[i64],
) -> RecurringFixture {
    let user_id = user(store, "grace@example.test", tz).await;
    let id = store
        .insert_recurring_task(&NewRecurringTask {
            user_id,
            title: "Recurring chore",
            description: "",
            rrule: rule,
            timezone: tz,
            dtstart,
            next_occurrence: next,
            catch_up: catch_up.parse().expect("catch-up policy latest or all"),
            reminder_offsets,
        })
        .await
        .expect("recurring task inserted");
    RecurringFixture { user_id, id }
}

/// Parses an RFC 3339 instant (test shorthand).
pub fn at(s: &str) -> DateTime<Utc> {
    todo_events_domain::time::parse_instant(s).expect("valid instant")
}

/// The Python interpreter of the test virtualenv (`target/test-python`), created on first use
/// with `.ci/python-requirements.txt`. Tests use it to run independent peers (an SMTP server,
/// a reference recurrence implementation). Panics with the reason when it cannot be made;
/// tests ask [`require::python`] first, which skips them with a message instead (outside CI).
pub fn python() -> std::path::PathBuf {
    make_python().unwrap_or_else(|e| panic!("the test Python environment could not be created: {e}"))
}

/// Makes the test virtualenv unless it is ready: ready means the marker of the current
/// requirements is there and its interpreter runs. Anything else (no marker: a creation that
/// failed half-way, e.g. Debian's `venv` without `ensurepip`, which leaves an interpreter
/// without pip; requirements that changed; an interpreter whose system Python is gone) is
/// removed and made again, never reused. Failures carry the output of the failing command,
/// standard output included: Debian prints its `apt install python3-venv` hint there.
pub(crate) fn make_python() -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target/test-python");
    let python = venv.join("bin/python");
    let requirements = std::fs::read(root.join(".ci/python-requirements.txt")).expect("requirements file");
    // The marker names the requirements it was made from: a changed list installs again.
    let ready = venv.join(format!(".ready-{:016x}", fnv1a(&requirements)));
    // `exists` follows the interpreter's symlink: false when its system Python is gone.
    let is_ready = || ready.exists() && python.exists();
    if is_ready() {
        return Ok(python);
    }
    // One creator at a time: `mkdir` is atomic; others wait for the marker.
    let lock = root.join("target/test-python.lock");
    std::fs::create_dir_all(root.join("target")).expect("target dir");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        if is_ready() {
            return Ok(python);
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("timed out waiting for {}", lock.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let result = (|| -> Result<(), String> {
        if is_ready() {
            return Ok(());
        }
        let run = |cmd: &mut std::process::Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                return Ok(());
            }
            let said = [&out.stdout, &out.stderr]
                .iter()
                .map(|o| String::from_utf8_lossy(o).trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            Err(format!("{cmd:?} failed ({}): {said}", out.status))
        };
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .map_err(|e| format!("removing the unfinished {}: {e}", venv.display()))?;
        }
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv))?;
        run(std::process::Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(root.join(".ci/python-requirements.txt")))?;
        std::fs::write(&ready, "").map_err(|e| e.to_string())
    })();
    let _ = std::fs::remove_dir(&lock);
    result.map(|()| python)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// A workspace binary (`notify`, `recur`, `scheduler-cron`, `todo-events`, …) from the target
/// directory the running test was built into. Tests never build it: `cargo test --workspace`
/// (the README's command) builds every binary of the workspace before it runs any test, and a
/// test of the binary's own package can use `env!("CARGO_BIN_EXE_<name>")` instead. Panics
/// with what to run when the binary is not there (e.g. under `cargo test -p <one package>`).
pub fn binary(name: &str) -> std::path::PathBuf {
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: this test starts the workspace's binaries; run `cargo build --workspace --bins` \
         first (`cargo test --workspace` does), and again after changing them",
        path.display()
    );
    path
}

/// [`binary`] for a test of the Kafka path: also checks that the binary was built with the
/// `kafka` feature (its `--help` lists the `consume` command). A `cargo build -p notify` without the
/// feature replaces it with an HTTP-only one, with which such a test would only time out.
pub fn kafka_binary(name: &str) -> std::path::PathBuf {
    let path = binary(name);
    if matches!(name, "notify" | "recur") {
        let help = std::process::Command::new(&path)
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("{} --help: {e}", path.display()));
        // Listed among the commands (the HTTP-only binary names it only to say it is missing).
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.lines().any(|l| l.trim_start().starts_with("consume ")),
            "{} was built without the `kafka` feature (no `consume` command): run \
             `cargo build --workspace --bins --features kafka` (`cargo test --workspace --features kafka` does)",
            path.display()
        );
    }
    path
}

/// Sends `signal` (`Signal::INT` as Ctrl-C does, `Signal::TERM` as Kubernetes does) to the
/// process `pid`, through kill(2) rather than the `kill` program, which a minimal system
/// (a bare Debian has no procps) does not have. A process that is gone already is no error.
pub fn signal(pid: u32, signal: Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a process id");
    match rustix::process::kill_process(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => panic!("signal {signal:?} to process {pid:?}: {e}"),
    }
}

pub use rustix::process::Signal;

/// A function's answer as a test reads it: status, reply CloudEvent type (`ce-type`) and the
/// JSON body (reply data or problem).
/// Every line `child` writes on its stdout and stderr, as it writes them (its pipes must be
/// set to `Stdio::piped()`).
pub fn output_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [stdout, stderr].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

pub async fn reply(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let ty = response
        .headers()
        .get("ce-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, ty, response.json().await.unwrap_or(Value::Null))
}

/// The value of the sample of metric `name` whose labels include each of `labels`
/// (`key="value"`) in a Prometheus text exposition, or 0 when there is none.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name && labels.iter().all(|label| rest.contains(label))
        })
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0.0)
}

/// CPU time the whole machine has spent busy (not idle, not waiting for I/O) since boot, in
/// seconds, from `/proc/stat`: the difference over a run is what every process of the run
/// cost together (the function, PostgreSQL, the broker, the load generator).
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // USER_HZ is 100 on Linux whatever the kernel's tick rate.
    busy / 100.0
}
