//! Secrets hygiene with the real binaries: the database password (in `DATABASE_URL`) and the
//! Kafka SASL password (`KAFKA_SASL_PASSWORD`) never appear in logs (at `RUST_LOG=trace`),
//! error lines, HTTP answers or `/metrics` — while a failing start still says what is wrong.
//! The SMTP password is covered by `functions/notify/tests/all/smtp.rs`
//! (`passwords_never_appear_in_config_debug_errors_or_logs`).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use todo_events_testkit::kafka::free_port;
use todo_events_testkit::{self as kit};

const DB_PASSWORD: &str = "Db-pw-9c41e7-never-shown";
const SASL_PASSWORD: &str = "Sasl-pw-2b7f0d-never-shown";

/// A workspace binary, as `cargo test --workspace` built it.
fn bin(name: &str) -> PathBuf {
    kit::binary(name)
}

/// A `DATABASE_URL` with the distinctive password, for a database nobody listens for.
fn unreachable_db() -> String {
    format!("postgres://todo:{DB_PASSWORD}@127.0.0.1:{}/todo", free_port())
}

/// The Kafka settings with the distinctive SASL password, for a broker nobody runs.
fn sasl_env() -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BROKERS", format!("127.0.0.1:{}", free_port())),
        ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext".into()),
        ("KAFKA_SASL_MECHANISM", "PLAIN".into()),
        ("KAFKA_SASL_USERNAME", "todo".into()),
        ("KAFKA_SASL_PASSWORD", SASL_PASSWORD.into()),
        ("KAFKA_DELIVERY_TIMEOUT", "2s".into()),
    ]
}

fn command(name: &str, database_url: &str, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(bin(name));
    c.env("DATABASE_URL", database_url)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .env("MAILER", "stdout")
        .env_remove("SINK_REMINDERS")
        .env_remove("SINK_TASK_EVENTS")
        .env_remove("K_SINK")
        .env_remove("KAFKA_BROKERS")
        .env_remove("SMTP_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Everything a process printed, for the assertions.
fn printed(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [DB_PASSWORD, SASL_PASSWORD] {
        // Also a fragment, in case a formatter cut or escaped it.
        for needle in [secret, &secret[..12]] {
            assert!(
                !text.contains(needle),
                "{what} shows the password {needle:?}:\n{text}"
            );
        }
    }
}

/// A long-running function: started, asked over HTTP, then stopped with SIGTERM.
struct Running {
    child: Child,
    port: u16,
}

impl Running {
    fn start(name: &str, args: &[&str], database_url: &str, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let child = command(name, database_url, env)
            .args(args)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self { child, port }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .ok()?;
        Some((r.status().as_u16(), r.text().await.unwrap()))
    }

    async fn wait_alive(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/health/liveness").await.is_none() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited early with {status}");
            }
            assert!(Instant::now() < deadline, "not alive after 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(self) -> Output {
        kit::signal(self.child.id(), kit::Signal::TERM);
        self.child.wait_with_output().unwrap()
    }
}

#[tokio::test]
async fn http_functions_never_show_the_database_password() {
    let url = unreachable_db();
    for (name, ty, data) in [
        (
            "notify",
            "dev.todo.reminder.due",
            r#"{"reminder_id":1,"task_id":1,"user_id":1,"remind_at":"2026-11-27T14:34:48Z"}"#,
        ),
        (
            "recur",
            "dev.todo.recurring-task.due",
            r#"{"recurring_task_id":1,"user_id":1,"occurrence_at":"2026-11-27T14:34:48Z"}"#,
        ),
    ] {
        let mut f = Running::start(name, &[], &url, &[("DATABASE_MAX_CONNECTIONS", "2".into())]);
        f.wait_alive().await;
        let (status, readiness) = f.get("/health/readiness").await.unwrap();
        assert_eq!(
            status, 503,
            "{name}: readiness with the database down: {readiness}"
        );
        let answer = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/", f.port))
            .header("ce-specversion", "1.0")
            .header("ce-id", "x/1")
            .header("ce-source", "/todo/scheduler-cron")
            .header("ce-type", ty)
            .header("content-type", "application/json")
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status().as_u16(),
            503,
            "{name}: an event with the database down"
        );
        let answer = answer.text().await.unwrap();
        let (_, metrics) = f.get("/metrics").await.unwrap();
        assert!(metrics.contains("todo_events_events_total"), "{name}: {metrics}");
        let out = f.stop();
        let logs = printed(&out);
        // The logs say what is wrong (the database could not be reached) …
        assert!(
            logs.to_lowercase().contains("database") || logs.contains("127.0.0.1"),
            "{name}: the logs do not say the database is unreachable:\n{logs}"
        );
        // … and nothing shows the password.
        for (what, text) in [
            ("readiness", &readiness),
            ("the 503 answer", &answer),
            ("/metrics", &metrics),
            ("the logs", &logs),
        ] {
            assert_no_secret(&format!("{name}: {what}"), text);
        }
    }
}

#[tokio::test]
async fn failing_starts_say_what_is_wrong_without_the_password() {
    // Migrations at start against a database nobody listens for: start-up fails.
    for name in ["notify", "recur"] {
        let out = command(name, &unreachable_db(), &[("RUN_MIGRATIONS", "true".into())])
            .env("PORT", free_port().to_string())
            .output()
            .unwrap();
        let logs = printed(&out);
        assert!(
            !out.status.success(),
            "{name} started without its database:\n{logs}"
        );
        assert_no_secret(name, &logs);
    }
    // A malformed DATABASE_URL with a password: one line naming the variable.
    let bad = format!("postgres://todo:{DB_PASSWORD}@127.0.0.1:notaport/todo");
    for name in ["notify", "recur", "scheduler-cron"] {
        let out = command(name, &bad, &[])
            .env("PORT", free_port().to_string())
            .output()
            .unwrap();
        let logs = printed(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {logs}");
        assert!(
            logs.contains("DATABASE_URL"),
            "{name} does not name DATABASE_URL:\n{logs}"
        );
        assert_no_secret(name, &logs);
    }
    // The scheduler's pass with the database down: a failure line, no password.
    let out = command(
        "scheduler-cron",
        &unreachable_db(),
        &[
            ("SINK_REMINDERS", "http://127.0.0.1:9/".into()),
            ("SINK_TASK_EVENTS", "http://127.0.0.1:9/".into()),
        ],
    )
    .output()
    .unwrap();
    let logs = printed(&out);
    assert!(
        !out.status.success(),
        "a pass without its database succeeded:\n{logs}"
    );
    assert_no_secret("scheduler-cron", &logs);
}

#[tokio::test]
async fn kafka_clients_never_show_the_sasl_password() {
    // The Kafka clients are the binaries' `kafka` feature.
    if !cfg!(feature = "kafka") {
        return kit::require::kafka_feature(
            "the SASL password test of the Kafka clients (tests/system/secrets.rs)",
        );
    }
    // A real database (PostgreSQL accepts any password under trust auth, so the password in
    // the URL travels through a working system), due work, and a SASL broker nobody runs.
    let Some(db) = kit::postgres().await else { return };
    let url = match db.url.split_once("://") {
        Some((scheme, rest)) => format!(
            "{scheme}://postgres:{DB_PASSWORD}@{}",
            rest.split_once('@').map_or(rest, |(_, host)| host)
        ),
        None => unreachable!(),
    };
    let seeded = command("todo-events", &url, &[])
        .args(["seed", "--users", "1", "--reminders", "2", "--recurring", "1"])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", printed(&seeded));
    assert_no_secret("todo-events seed", &printed(&seeded));
    let env = sasl_env();

    // The scheduler cannot publish: it says so, and shows no password.
    let started = Instant::now();
    let out = command("scheduler-cron", &url, &env).output().unwrap();
    let logs = printed(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a pass whose broker is down must fail:\n{logs}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_no_secret("scheduler-cron", &logs);

    // The consumers run (health and metrics on PORT) while they cannot reach the broker.
    for name in ["notify", "recur"] {
        let mut c = Running::start(name, &["consume"], &url, &env);
        c.wait_alive().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, metrics) = c.get("/metrics").await.unwrap();
        let out = c.stop();
        let logs = printed(&out);
        assert!(
            logs.contains("127.0.0.1"),
            "{name} consume does not say which broker:\n{logs}"
        );
        assert_no_secret(&format!("{name} consume: /metrics"), &metrics);
        assert_no_secret(&format!("{name} consume: the logs"), &logs);
    }

    // Replaying dead letters with the broker down fails with a line, no password.
    let out = command("notify", &url, &env)
        .args(["replay-dead-letters", "--dry-run"])
        .output()
        .unwrap();
    assert_no_secret("notify replay-dead-letters", &printed(&out));
}

/// `Debug` of the database settings (what a `{:?}` of the configuration would log).
#[test]
fn database_settings_debug_hides_the_password() {
    let opts = todo_events_store::StoreOptions::new(format!("postgres://todo:{DB_PASSWORD}@db:5432/todo"));
    let debug = format!("{opts:?}");
    assert!(debug.contains("postgres://todo:***@db:5432/todo"), "{debug}");
    assert_no_secret("StoreOptions Debug", &debug);
}
