//! The command-line contract: `todo-events demo | migrate | seed` as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_todo-events");

fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("MAILER")
        .env_remove("OUTBOX_DIR")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    cmd
}

#[test]
fn demo_mails_a_reminder_and_creates_recurring_instances_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        // Without NO_COLOR too, logs written to a pipe (a file, a log collector) are plain.
        .env_remove("NO_COLOR")
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let logs = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(logs).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(45);
    let (mut mailed, mut created, mut status_sent, mut agenda) = (false, false, false, false);
    let mut pruned = false;
    let mut log = Vec::new();
    while !(mailed && created && status_sent && agenda && pruned) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            // The reminder mailed 40 days ago: its delivery record goes with the first pass.
            pruned |= line.contains("pruned 1 deliveries")
                && line.contains("past their retention (deliveries 30days");
            mailed |= line.contains("reminder mailed");
            agenda |= line.contains("daily agenda mailed");
            created |= line.contains("task instance created");
            status_sent |= line.contains("status event for the todo app: sent");
            log.push(line);
        }
    }
    let eml: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    todo_events_testkit::signal(child.id(), todo_events_testkit::Signal::INT);
    let status = child.wait().unwrap();
    assert!(
        mailed && created && status_sent && agenda && pruned,
        "demo log:\n{}",
        log.join("\n")
    );
    // Ada's reminder came due inside her quiet hours: put off, then sent, each said.
    let said = |what: &str| log.iter().position(|l| l.contains(what));
    let (deferred, sent) = (
        said("status event for the todo app: deferred"),
        said("reminder mailed"),
    );
    assert!(
        deferred.is_some() && deferred < sent,
        "demo log:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().all(|l| !l.contains('\u{1b}')),
        "no terminal colour codes in piped logs:\n{}",
        log.join("\n")
    );
    // In Ada's language (de-DE): the subjects are encoded, so they are read back parsed.
    let mut subjects: Vec<String> = eml
        .iter()
        .map(|e| {
            let mail = std::fs::read_to_string(e.path()).unwrap();
            let parsed = mail_parser::MessageParser::default()
                .parse(mail.as_bytes())
                .unwrap();
            parsed.subject().unwrap_or_default().to_owned()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects.len(),
        2,
        "the reminder and the daily agenda in ./outbox: {subjects:?}"
    );
    assert!(subjects[0].starts_with("Dein Tag, "), "{subjects:?}");
    assert!(
        subjects[1].starts_with("Erinnerung: Water the plants"),
        "{subjects:?}"
    );
    assert!(
        dir.path().join("todo-events.db").exists(),
        "SQLite file in the current directory"
    );
    assert!(status.success(), "Ctrl-C stops the demo cleanly: {status:?}");
}

#[test]
fn migrate_and_seed_on_sqlite_print_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("seed.db").display());
    let out = command(dir.path())
        .env("DATABASE_URL", &url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = command(dir.path())
        .env("DATABASE_URL", &url)
        .args([
            "seed",
            "--users",
            "3",
            "--reminders",
            "10",
            "--recurring",
            "4",
            "--due-in",
            "5m",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("seeded 3 user(s), 10 reminder(s) and 4 daily recurring task(s)"),
        "{stdout}"
    );
}

#[test]
fn bad_settings_and_flags_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("DATABASE_URL", "mysql://nope")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");

    let out = command(dir.path())
        .args(["seed", "--due-in", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("invalid duration"));

    let out = command(dir.path())
        .env("SCHEDULER_EVERY", "0s")
        .arg("up")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("SCHEDULER_EVERY"));
}

/// The bad-input table's history rows (`crates/testkit/data/bad_settings.json`): each a clear
/// refusal naming the setting or flag, exit status 2, and no database made.
#[test]
fn bad_retention_and_erase_settings_are_refused_naming_what_is_wrong() {
    let table: serde_json::Value =
        serde_json::from_str(include_str!("../../crates/testkit/data/bad_settings.json")).unwrap();
    let mut checked = 0;
    for row in table["rows"].as_array().unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        for arg in row["args"].as_array().unwrap() {
            cmd.arg(arg.as_str().unwrap());
        }
        for (k, v) in row["env"].as_object().unwrap() {
            cmd.env(k, v.as_str().unwrap());
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{row}: {stderr}");
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
        for says in row["says"].as_array().unwrap() {
            assert!(first.contains(says.as_str().unwrap()), "{row}: {first}");
        }
        assert!(
            !dir.path().join("todo-events.db").exists(),
            "{row}: a database was made"
        );
        checked += 1;
    }
    assert_eq!(checked, 26, "every row of the table");
}

/// The variables README's "Configuration" table lists for the programs `todo-events up`
/// runs (functions, scheduler, all), each as a row names it.
fn readme_settings_of_the_stack() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("README has a Configuration section");
    let mut names = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').collect();
        let (variables, used_by) = (cells[1], cells[2]);
        let runs = [
            "notify",
            "recur",
            "scheduler",
            "functions",
            "all",
            "todo-events up",
        ];
        let kafka_only = ["Kafka clients", "`consume`", "dead letters", "tests"];
        if !runs.iter().any(|r| used_by.contains(r)) || kafka_only.iter().any(|k| used_by.contains(k)) {
            continue;
        }
        names.extend(
            variables
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| {
                    n.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
                .map(str::to_owned),
        );
    }
    names
}

/// `todo-events up` honours the settings README lists for the functions and the scheduler it
/// runs: it reads each with the programs' own readers (`TODO_EVENTS_ENV_TRACE` records every
/// lookup), every one set here to a value of its own; those it does not apply it names at
/// start when set (README, "Configuration": PORT, LISTEN_ADDRESS, RUN_MIGRATIONS, SINK_*,
/// KAFKA_BROKERS, OIDC_AUDIENCE). A user trying webhooks against a local receiver with
/// WEBHOOK_ALLOW_PRIVATE gets what the variable says.
#[test]
fn up_reads_every_setting_readme_lists_for_what_it_runs_and_names_those_it_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let (notify_port, recur_port) = (
        todo_events_testkit::kafka::free_port(),
        todo_events_testkit::kafka::free_port(),
    );
    let settings: &[(&str, String)] = &[
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("up.db").display()),
        ),
        ("DATABASE_MAX_CONNECTIONS", "3".into()),
        ("AUTH_TOKEN", "0123456789abcdef0123456789abcdef-up".into()),
        ("MAX_BODY_BYTES", "70000".into()),
        ("MAX_IN_FLIGHT", "100".into()),
        ("BODY_TIMEOUT", "5s".into()),
        ("MAX_CONNECTIONS", "500".into()),
        ("HTTP_WORKERS", "1".into()),
        ("GROUP_COMMIT_MAX_EVENTS", "10".into()),
        ("GROUP_COMMIT_LANES", "2".into()),
        ("SHUTDOWN_TIMEOUT", "5s".into()),
        ("CLOCK_SKEW_TOLERANCE", "5s".into()),
        ("MAILER", "smtp".into()),
        ("SMTP_URL", "smtp://todo:secret@127.0.0.1:9".into()),
        ("SMTP_CA_FILE", dir.path().join("ca.pem").display().to_string()),
        ("SMTP_TIMEOUT", "5s".into()),
        ("SMTP_MAX_SESSIONS", "2".into()),
        ("MAIL_TEMPLATE_DIR", "".into()),
        ("OUTBOX_DIR", dir.path().join("mail").display().to_string()),
        ("MAIL_FROM", "Up <up@example.test>".into()),
        ("APP_URL", "https://todo.example.test".into()),
        ("DELIVERY_LEASE", "1m".into()),
        ("WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("WEBHOOK_ALLOWED_PORTS", "443,8443".into()),
        ("WEBHOOK_DENY_CIDRS", "198.51.100.0/24".into()),
        ("WEBHOOK_TIMEOUT", "5s".into()),
        ("CHANNEL_RETRY_FIRST", "10s".into()),
        ("CHANNEL_RETRY_ATTEMPTS", "3".into()),
        ("PUSH_TTL", "30m".into()),
        ("SCHEDULER_BATCH", "50".into()),
        ("SCHEDULER_WORKERS", "2".into()),
        ("SCHEDULER_LEASE", "30s".into()),
        ("SCHEDULER_REPUBLISH_AFTER", "5m".into()),
        ("SCHEDULER_ID", "up-test".into()),
        ("SINK_TIMEOUT", "5s".into()),
        ("NOTIFY_PORT", notify_port.to_string()),
        ("RECUR_PORT", recur_port.to_string()),
        ("SCHEDULER_EVERY", "2s".into()),
        ("LOG_FORMAT", "text".into()),
        // Not applied by up: each must be named at start.
        ("PORT", "9999".into()),
        ("SINK_REMINDERS", "http://127.0.0.1:9/".into()),
    ];
    std::fs::write(dir.path().join("ca.pem"), rcgen_free_pem()).unwrap();
    let mut child = command(dir.path())
        .env("TODO_EVENTS_ENV_TRACE", &trace)
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("up")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = todo_events_testkit::output_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    // Both functions listening: the stack's signal handler is in place by then.
    let listening = |log: &[String]| log.iter().filter(|l| l.contains("listening for events")).count() == 2;
    while !listening(&log) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    todo_events_testkit::signal(child.id(), todo_events_testkit::Signal::INT);
    let status = child.wait().unwrap();
    let log = log.join("\n");
    assert!(log.contains("running: notify on"), "up did not start:\n{log}");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(!log.contains("secret"), "the SMTP password is shown:\n{log}");
    let read: std::collections::BTreeSet<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Read by tokio and tracing themselves, in the same process, not through our readers.
    let by_libraries = ["TOKIO_WORKER_THREADS", "RUST_LOG"];
    // Read only when traces are exported (OTEL_EXPORTER_OTLP_ENDPOINT set).
    let with_traces = ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME"];
    // OIDC settings are read (a bad value stops the start) but not applied: see NOT_HONOURED.
    let listed = readme_settings_of_the_stack();
    assert!(listed.len() >= 45, "README rows read: {listed:?}");
    let mut checked = 0;
    for name in &listed {
        // The stack goes over HTTP: no Kafka setting applies (KAFKA_BROKERS is named at start).
        if by_libraries.contains(&name.as_str())
            || with_traces.contains(&name.as_str())
            || name.starts_with("KAFKA_")
        {
            continue;
        }
        assert!(read.contains(name), "todo-events up never reads {name}");
        checked += 1;
    }
    println!("{checked} README settings read by todo-events up");
    for named in [
        "PORT is set but not applied",
        "SINK_REMINDERS is set but not applied",
    ] {
        assert!(log.contains(named), "{named}:\n{log}");
    }
    for honoured in ["WEBHOOK_ALLOW_PRIVATE", "MAX_IN_FLIGHT", "SCHEDULER_BATCH"] {
        assert!(
            !log.contains(&format!("{honoured} is set but not applied")),
            "{honoured}:\n{log}"
        );
    }
    // WEBHOOK_ALLOW_PRIVATE=true is applied: notify says at start that private targets are allowed.
    assert!(
        log.to_lowercase().contains("private"),
        "no word of private targets:\n{log}"
    );
}

/// A CA file that parses as PEM (the relay's CA, SMTP_CA_FILE): a self-signed certificate.
fn rcgen_free_pem() -> String {
    // A fixed, short self-signed certificate is enough: notify only loads it at start.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    cert.cert.pem()
}
