//! Section `prune`: notify's HTTP latency while `todo-events prune` deletes a year's finished
//! deliveries from the same database (docs/PERFORMANCE.md, "Cost flat as history grows"):
//! the retention must be able to run in the day without the hot path noticing. notify at 64
//! clients with group commit (file mailer) runs six times, each on a fresh copy of one seed,
//! in the order alone, with, with, alone, alone, with ("with": `todo-events prune
//! --older-than 30d` started as its load starts, at its defaults), and the row compares the
//! medians of the two sides' p99s, giving each run's: one 10-second run a side moved by
//! ±10 % on its own, and one run in six of either side met a stall of its own (a p99 of
//! 50 ms against 28, 2026-12-07), which a mean of two carried into the ratio.
//! Opt-in (`--only prune`): its seed of `rows` deliveries (default 10 M) takes minutes.
//! Without a `prune` subcommand in the binary the row says so and nothing is seeded.
//! `BENCH_PRUNE_DUTY` (a percent) and `HISTORY_PRUNE_BATCH` reach the prune, to try other
//! paces than the defaults the row is for.

use crate::env::{scalar, seed, Env, Service};
use crate::http::{check, measured_wrk_rows, WrkResult, CLIENTS};
use crate::report::{ms, rate, Report, Row};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The due reminders' instant in every seed.
const REMIND_AT: &str = "2026-11-01T09:45:00Z";

/// The deliveries the prune may delete: finished ones completed before its cutoff.
const PRUNABLE: &str = "SELECT count(*) FROM deliveries WHERE status IN ('sent', 'failed') \
     AND completed_at < now() - interval '30 days'";

const WHAT: &str = "notify, file mailer, 64 clients, group commit: p99 while `todo-events prune --older-than 30d` runs, against without";

pub async fn measure(
    env: &Env,
    report: &mut Report,
    seconds: u64,
    items: u64,
    rows: u64,
) -> anyhow::Result<()> {
    if !has_prune(env) {
        report.add(Row {
            section: "prune",
            what: WHAT.into(),
            figure: "not measured: todo-events prune missing".into(),
            limit: "—".into(),
            ratio: None,
            target: "p99 within 10 %".into(),
            met: None,
        });
        return Ok(());
    }
    let http = (20_000 * seconds).clamp(items, crate::http::ROWS);
    let started = Instant::now();
    let url = env.database("prune_tpl", None).await?;
    seed::users(&url).await?;
    seed::due_reminders(&url, http, REMIND_AT, "published").await?;
    seed::history(&url, items).await?;
    prunable(&url, rows).await?;
    seed::exec(&url, "VACUUM ANALYZE").await?;
    println!(
        "[prune] {rows} prunable deliveries seeded in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let (mut alone, mut with, mut pruned) = (Vec::new(), Vec::new(), None);
    for prune in [false, true, true, false, false, true] {
        let copy = env.file_copy("prune", "prune_tpl").await?;
        let (w, p) = notify(env, &copy, seconds, http, prune).await?;
        env.drop_database("prune").await?;
        println!(
            "[prune] notify {}: {} (p50 {} / p99 {})",
            if prune { "with the prune" } else { "alone" },
            rate(w.rate()),
            ms(w.p50_us as f64 / 1e6),
            ms(w.p99_us as f64 / 1e6)
        );
        match p {
            Some(p) => {
                with.push(w);
                pruned.get_or_insert(p);
            }
            None => alone.push(w),
        }
    }
    env.drop_database("prune_tpl").await?;
    let pruned = pruned.expect("the prune ran");
    let (alone_p99, with_p99) = (median_p99(&alone), median_p99(&with));
    let tail = with_p99 / alone_p99;
    report.add(Row {
        section: "prune",
        what: format!("{WHAT} ({rows} finished deliveries a year old; median of three runs a side, in the order alone, with, with, alone, alone, with)"),
        figure: format!(
            "with: {} (median p99 {}; the runs' {}); the first prune deleted {} rows during the {seconds} s load, {} in all ({})",
            rate(with.iter().map(WrkResult::rate).sum::<f64>() / with.len() as f64),
            ms(with_p99),
            runs_p99(&with),
            pruned.during,
            pruned.wall,
            pruned.said
        ),
        limit: format!(
            "without: {} (median p99 {}; the runs' {})",
            rate(alone.iter().map(WrkResult::rate).sum::<f64>() / alone.len() as f64),
            ms(alone_p99),
            runs_p99(&alone)
        ),
        ratio: Some(tail),
        target: "p99 within 10 % (≤ 110 %)".into(),
        met: Some(tail <= 1.1),
    });
    Ok(())
}

/// The median of the runs' p99s, in seconds.
fn median_p99(runs: &[WrkResult]) -> f64 {
    let mut p99s: Vec<u64> = runs.iter().map(|w| w.p99_us).collect();
    p99s.sort_unstable();
    p99s[p99s.len() / 2] as f64 / 1e6
}

/// Each run's p99, in order.
fn runs_p99(runs: &[WrkResult]) -> String {
    runs.iter()
        .map(|w| ms(w.p99_us as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `todo-events --help` lists a `prune` subcommand.
fn has_prune(env: &Env) -> bool {
    Command::new(env.binary("todo-events"))
        .arg("--help")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim_start().starts_with("prune"))
        })
        .unwrap_or(false)
}

/// `rows` finished deliveries a year old: a hundred daily occurrences (from 2025-11-01) of
/// each of `rows / 100` reminders (ids from 20 000 001, on finished tasks), nine in ten
/// sent, one failed. Day after day, as notify records them: the table's order is their
/// time's, as a year of traffic leaves it. (Seeded reminder after reminder instead, each
/// batch of the prune's oldest rows lay on a thousand pages, each a whole page in the WAL
/// after a checkpoint, and the functions' commits waited behind them: p99 332 % of without,
/// 2026-12-07.)
async fn prunable(url: &str, rows: u64) -> anyhow::Result<()> {
    let reminders = rows.div_ceil(100);
    seed::exec(url, &format!(
        "INSERT INTO tasks (id, user_id, title, description, status, due_at, completed_at, created_at, updated_at)
           SELECT 20000000 + g, 1 + g % 1000, 'Daily ' || g, '', 'done', '2026-02-08T10:00:00Z', '2026-02-08T11:00:00Z',
             '2025-10-30T00:00:00Z', '2026-02-08T11:00:00Z'
           FROM generate_series(1::bigint, {reminders}) g;
         INSERT INTO reminders (id, task_id, user_id, remind_at, state, published_at, publish_count, created_at, updated_at)
           SELECT 20000000 + g, 20000000 + g, 1 + g % 1000, '2026-02-08T09:45:00Z', 'sent', '2026-02-08T09:45:01Z', 1,
             '2025-10-30T00:00:00Z', '2026-02-08T09:45:02Z'
           FROM generate_series(1::bigint, {reminders}) g;
         INSERT INTO deliveries (reminder_id, remind_at, channel, event_id, status, attempts, recipient, message_id,
                                 detail, claimed_at, lease_until, completed_at, first_claimed_at)
           SELECT r, at, 'email', 'reminder/' || r || '/' || extract(epoch FROM at)::bigint,
             CASE WHEN g % 10 = 9 THEN 'failed' ELSE 'sent' END, 1, 'user' || (1 + r % 1000) || '@bench.test',
             '<reminder-' || r || '-' || g || '@todo-events>', CASE WHEN g % 10 = 9 THEN 'gave up' END,
             at + interval '1 second', at + interval '2 minutes', at + interval '2 seconds', at + interval '1 second'
           FROM (SELECT g, 20000001 + g % {reminders} AS r,
                   timestamptz '2025-11-01T09:45:00Z' + (g / {reminders}) * interval '1 day' AS at
                 FROM generate_series(0::bigint, {rows} - 1) g) s;"
    )).await
}

/// What the prune did.
struct Pruned {
    /// Rows it deleted while the load ran.
    during: i64,
    /// Its wall time, or how long it had run when it was stopped.
    wall: String,
    /// Its last line of output.
    said: String,
}

/// notify under load on `url`, with the prune running beside it when `prune`.
async fn notify(
    env: &Env,
    url: &str,
    seconds: u64,
    rows: u64,
    prune: bool,
) -> anyhow::Result<(WrkResult, Option<Pruned>)> {
    let before = if prune { scalar(url, PRUNABLE).await? } else { 0 };
    // Every run from a checkpoint just taken: else a run met the checkpoint of the seed's or
    // the copy's writes under way beside it (116 % instead of 201 %, 2026-12-07).
    seed::exec(url, "CHECKPOINT").await?;
    let outbox = crate::history::mail_dir(env)?;
    let vars = vec![
        ("DATABASE_URL", url.to_owned()),
        ("DATABASE_MAX_CONNECTIONS", CLIENTS.to_string()),
        ("MAX_IN_FLIGHT", "1024".to_owned()),
        ("MAILER", "file".to_owned()),
        ("OUTBOX_DIR", outbox.path().display().to_string()),
    ];
    let mut svc = Service::start(env, "notify-http", "notify", &[], &crate::env::one_cpu(vars))?;
    svc.wait_ready(Duration::from_secs(20))?;
    let running = prune.then(|| Prune::start(env, url)).transpose()?;
    let w = measured_wrk_rows(svc.child.id(), &svc.url(), "notify", CLIENTS, seconds, rows)?;
    let pruned = match running {
        Some(p) => {
            let during = before - scalar(url, PRUNABLE).await?;
            Some(p.finish(env, during)?)
        }
        None => None,
    };
    svc.stop()?;
    let sent = scalar(
        url,
        "SELECT count(*) FROM deliveries WHERE status = 'sent' AND remind_at = '2026-11-01T09:45:00Z'",
    )
    .await?;
    check(&w, sent, "sent deliveries")?;
    Ok((w, pruned))
}

/// `todo-events prune` as a subprocess, waited for by a thread of its own so that its wall
/// time is known whenever it ends.
struct Prune {
    pid: u32,
    ended: mpsc::Receiver<std::io::Result<(std::process::ExitStatus, Duration)>>,
    started: Instant,
}

impl Prune {
    fn start(env: &Env, url: &str) -> anyhow::Result<Self> {
        let mut args = vec!["prune".to_owned(), "--older-than".into(), "30d".into()];
        if let Ok(duty) = std::env::var("BENCH_PRUNE_DUTY") {
            args.extend(["--duty".into(), duty]);
        }
        let mut child = Command::new(env.binary("todo-events"))
            .args(&args)
            .env("DATABASE_URL", url)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(env.out.join("prune.log"))?)
            .stderr(std::fs::File::create(env.out.join("prune.err"))?)
            .spawn()?;
        let (pid, started) = (child.id(), Instant::now());
        let (tx, ended) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait().map(|s| (s, started.elapsed())));
        });
        Ok(Self { pid, ended, started })
    }

    /// Stops the prune once the load is over (at its pace, 5 % of the time, 10 M rows take
    /// the better part of an hour), or reports how it ended before.
    fn finish(self, env: &Env, during: i64) -> anyhow::Result<Pruned> {
        let wall = match self.ended.try_recv() {
            Ok(ended) => {
                let (status, took) = ended?;
                anyhow::ensure!(
                    status.success(),
                    "todo-events prune failed ({status}): see target/bench/prune.err"
                );
                format!("{:.1} s", took.as_secs_f64())
            }
            Err(_) => {
                todo_events_testkit::signal(self.pid, todo_events_testkit::Signal::TERM);
                let _ = self.ended.recv_timeout(Duration::from_secs(20));
                let secs = self.started.elapsed().as_secs_f64();
                format!(
                    "stopped with the load after {secs:.0} s, unfinished: {:.0} rows/s at its pace",
                    during as f64 / secs
                )
            }
        };
        let said = std::fs::read_to_string(env.out.join("prune.log"))?
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_owned();
        Ok(Pruned { during, wall, said })
    }
}
