//! The seed-style peer under the same load as ours: FastAPI + SQLAlchemy 2 async + asyncpg
//! under uvicorn, the stack most teams would write these functions in (the workspace's
//! `../shared/peers/python-fastapi`, or `BENCH_PEER_DIR`). It is not part of this repository:
//! the bench copies it to `target/bench/peer-python-fastapi`, installs it with its own
//! `setup.sh` (a venv from PyPI) and starts it with its own `run.sh` (2 uvicorn workers, on
//! 127.0.0.1:18080), on a database of its own. Where the peer is not found, its rows say so.
//!
//! Same load: the same `wrk` script, connections and duration as our 64-client rows, one
//! distinct seeded row per request; the peer's events carry what its API takes (its
//! `dev.todo.recurring.due` advances a row by a day and inserts the instance; its
//! `dev.todo.reminder.due` records the notification and appends the mail to a file).

use crate::env::{memory, scalar, Env, Service};
use crate::http::{measured_wrk, Ours, WrkResult, CLIENTS};
use crate::report::{rate, Report, Row};
use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where the peer's run.sh listens.
const PORT: u16 = 18080;
/// Rows seeded for the peer (as many as for ours).
const ROWS: u64 = crate::http::ROWS;

fn source(env: &Env) -> PathBuf {
    std::env::var_os("BENCH_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env.root.join("../shared/peers/python-fastapi"))
}

pub async fn measure(env: &Env, report: &mut Report, seconds: u64, ours: &Ours) -> anyhow::Result<()> {
    let from = source(env);
    if !from.join("app.py").is_file() {
        report.add(Row {
            section: "http",
            what: "python-fastapi peer".into(),
            figure: format!("not measured: no peer at {} (BENCH_PEER_DIR)", from.display()),
            limit: "—".into(),
            ratio: None,
            target: "— (reported)".into(),
            met: None,
        });
        return Ok(());
    }
    let dir = env.out.join("peer-python-fastapi");
    copy(&from, &dir)?;
    let setup = Command::new("./setup.sh")
        .current_dir(&dir)
        .output()
        .context("running the peer's setup.sh")?;
    anyhow::ensure!(
        setup.status.success(),
        "the peer's setup.sh failed (python3-venv installed? bench/run installs it): {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    for (kind, ours, what, effects) in [
        (
            "peer-recur",
            &ours.recur,
            "recurring task due (advance + instance)",
            "SELECT count(*) FROM peer_tasks",
        ),
        (
            "peer-notify",
            &ours.notify,
            "reminder due (record + mail to a file)",
            "SELECT count(*) FROM peer_notifications",
        ),
    ] {
        let url = env.database("peer", None).await?;
        let (w, peak) = run(env, &dir, &url, kind, seconds).await?;
        let done = scalar(&url, effects).await?;
        crate::http::check(&w, done, "peer effects")?;
        env.drop_database("peer").await?;
        let ours_what = if kind == "peer-recur" {
            "recur"
        } else {
            "notify, file mailer"
        };
        report.add(Row {
            section: "http",
            what: format!(
                "python-fastapi peer (uvicorn, 2 workers), {what}, {CLIENTS} clients: events/s (p50 / p99); ratio: ours / peer"
            ),
            figure: w.figure(peak),
            limit: format!(
                "ours ({ours_what}, {CLIENTS} clients, group commit, 1 CPU): {}, own CPU {:.0} µs per event against the peer's {:.0} µs",
                rate(ours.rate()),
                ours.service_cpu_per_event() * 1e6,
                w.service_cpu_per_event() * 1e6
            ),
            ratio: Some(ours.rate() / w.rate()),
            target: "— (reported)".into(),
            met: None,
        });
    }
    Ok(())
}

/// The peer's files, without a previous run's output (its venv is kept: setup.sh reuses it).
fn copy(from: &PathBuf, to: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Starts the peer on database `url`, seeds its rows once its schema is there, loads it.
async fn run(
    env: &Env,
    dir: &PathBuf,
    url: &str,
    kind: &str,
    seconds: u64,
) -> anyhow::Result<(WrkResult, f64)> {
    let log = env.out.join("peer-python-fastapi.log");
    let child = Command::new("./run.sh")
        .arg("2")
        .current_dir(dir)
        .env(
            "PEER_DATABASE_URL",
            url.replacen("postgres://", "postgresql+asyncpg://", 1),
        )
        .env("PEER_MAIL_FILE", dir.join("out/mail.out"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the peer's run.sh")?;
    let mut svc = Service {
        child,
        port: PORT,
        log,
    };
    // Its readiness comes after its schema is created.
    svc.wait_ready(Duration::from_secs(60))?;
    let mut conn = PgConnection::connect(url).await?;
    conn.execute(
        format!(
            "INSERT INTO peer_recurring (id, title, next_occurrence)
               SELECT g, 'Water the plants', '2026-11-01T08:00:00Z' FROM generate_series(1, {ROWS}) g"
        )
        .as_str(),
    )
    .await?;
    conn.execute("VACUUM ANALYZE peer_recurring").await?;
    conn.close().await?;
    let _ = std::fs::remove_file(dir.join("out/mail.out"));
    let w = measured_wrk(svc.child.id(), &svc.url(), kind, CLIENTS, seconds)?;
    // Peak RSS of the whole server: the supervisor and its workers.
    let peak = peak_rss_tree(svc.child.id());
    svc.stop()?;
    let _ = std::fs::remove_file(dir.join("out/mail.out"));
    Ok((w, peak))
}

/// Sum of the peak RSS of process `pid` and its children, in MiB.
fn peak_rss_tree(pid: u32) -> f64 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    memory(pid).1
        + children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .map(|c| memory(c).1)
            .sum::<f64>()
}
