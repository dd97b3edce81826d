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
    let (mut mailed, mut created) = (false, false);
    let mut log = Vec::new();
    while !(mailed && created) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            mailed |= line.contains("reminder mailed");
            created |= line.contains("task instance created");
            log.push(line);
        }
    }
    let eml: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    todo_events_testkit::signal(child.id(), todo_events_testkit::Signal::INT);
    let status = child.wait().unwrap();
    assert!(mailed && created, "demo log:\n{}", log.join("\n"));
    assert!(
        log.iter().all(|l| !l.contains('\u{1b}')),
        "no terminal colour codes in piped logs:\n{}",
        log.join("\n")
    );
    assert_eq!(eml.len(), 1, "one reminder e-mail in ./outbox");
    let mail = std::fs::read_to_string(eml[0].path()).unwrap();
    assert!(mail.contains("Subject: Reminder: Water the plants"), "{mail}");
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
