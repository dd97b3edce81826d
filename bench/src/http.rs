//! HTTP mode, one event per request (the Knative path): recur and notify under `wrk`, beside
//! `pgbench` running the same SQL at the same concurrency, with group commit (the host's
//! default) and without it (`GROUP_COMMIT_MAX_EVENTS=1`, one transaction per event), and the
//! seed-style Python peer under the same load.

use crate::env::{
    cpu_per_item, machine_busy_seconds, one_cpu, process_cpu_seconds, scalar, seed, Env, Service,
};
use crate::report::{ms, rate, Report, Row};
use anyhow::{bail, Context};
use serde::Deserialize;
use std::process::Command;
use std::time::Duration;
use todo_events_testkit::smtp::{Options, SmtpServer};

/// Seeded rows per template: more than the fastest run can use up.
pub const ROWS: u64 = 400_000;

/// Concurrent connections of the group-commit comparison (the figure).
pub const CLIENTS: u32 = 64;

#[derive(Debug, Deserialize)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub non2xx: u64,
    pub socket_errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Machine CPU over the run (filled in by the caller).
    #[serde(default)]
    pub cpu_seconds: f64,
    /// The measured service's own CPU over the run (filled in by the caller).
    #[serde(default)]
    pub service_cpu_seconds: f64,
}

impl WrkResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }

    /// The service's own CPU per event, in seconds.
    pub fn service_cpu_per_event(&self) -> f64 {
        self.service_cpu_seconds / self.requests as f64
    }

    /// `1 234/s (1.20 ms / 2.30 ms), peak RSS 17.0 MiB, own CPU 210 µs, machine CPU 550 µs per event`
    pub fn figure(&self, peak_rss_mib: f64) -> String {
        format!(
            "{} ({} / {}), peak RSS {peak_rss_mib:.1} MiB, own CPU {}, machine CPU {} per event",
            rate(self.rate()),
            ms(self.p50_us as f64 / 1e6),
            ms(self.p99_us as f64 / 1e6),
            cpu_per_item(self.service_cpu_seconds, self.requests as f64),
            cpu_per_item(self.cpu_seconds, self.requests as f64)
        )
    }
}

/// Waits for the function to be ready, puts it under `wrk` load, stops it: the load's
/// result and the function's peak RSS.
fn under_load(mut svc: Service, kind: &str, clients: u32, seconds: u64) -> anyhow::Result<(WrkResult, f64)> {
    svc.wait_ready(Duration::from_secs(20))?;
    let w = measured_wrk(svc.child.id(), &svc.url(), kind, clients, seconds)?;
    let (_, peak) = svc.rss_mib();
    svc.stop()?;
    Ok((w, peak))
}

/// `wrk` against the service of process `pid`, with the machine's and the service's CPU.
pub fn measured_wrk(
    pid: u32,
    url: &str,
    kind: &str,
    clients: u32,
    seconds: u64,
) -> anyhow::Result<WrkResult> {
    measured_wrk_rows(pid, url, kind, clients, seconds, ROWS)
}

/// [`measured_wrk`] over the seeded ids `1 ..= rows`.
pub fn measured_wrk_rows(
    pid: u32,
    url: &str,
    kind: &str,
    clients: u32,
    seconds: u64,
    rows: u64,
) -> anyhow::Result<WrkResult> {
    let (busy, own) = (machine_busy_seconds(), process_cpu_seconds(pid));
    let mut w = wrk_rows(url, kind, clients, seconds, 1, rows)?;
    w.cpu_seconds = machine_busy_seconds() - busy;
    w.service_cpu_seconds = process_cpu_seconds(pid) - own;
    Ok(w)
}

/// With or without group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// The host's default: concurrent requests written together.
    Group,
    /// `GROUP_COMMIT_MAX_EVENTS=1`: one transaction per request, as before group commit.
    PerEvent,
}

impl Commit {
    fn vars(self) -> Vec<(&'static str, String)> {
        match self {
            Self::Group => vec![],
            Self::PerEvent => vec![("GROUP_COMMIT_MAX_EVENTS", "1".into())],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Group => "group commit",
            Self::PerEvent => "one transaction per event",
        }
    }
}

/// What the peer is compared with: our figures of the same load.
pub struct Ours {
    pub recur: WrkResult,
    pub notify: WrkResult,
}

pub async fn measure(env: &Env, report: &mut Report, seconds: u64) -> anyhow::Result<()> {
    let recur = recur(env, report, seconds).await?;
    let notify = notify(env, report, seconds).await?;
    crate::peer::measure(env, report, seconds, &Ours { recur, notify }).await
}

/// recur at 1, 16 and 64 clients; at 64 also one transaction per event and ten-year-old
/// tasks. Returns the 64-client group-commit figure.
async fn recur(env: &Env, report: &mut Report, seconds: u64) -> anyhow::Result<WrkResult> {
    let tpl = env.database("recur_tpl", None).await?;
    seed::recurring(&tpl, ROWS, seed::DTSTART_TODAY).await?;
    let old_tpl = env.database("recur_old_tpl", None).await?;
    seed::recurring(&old_tpl, ROWS, seed::DTSTART_TEN_YEARS_AGO).await?;
    let run = |clients: u32, template: &'static str, commit: Commit| async move {
        let url = env.database("recur", Some(template)).await?;
        let mut vars = vec![
            ("DATABASE_URL", url.clone()),
            ("DATABASE_MAX_CONNECTIONS", clients.max(2).to_string()),
            ("MAX_IN_FLIGHT", "1024".into()),
        ];
        vars.extend(commit.vars());
        let svc = Service::start(env, "recur-http", "recur", &[], &one_cpu(vars))?;
        let (w, peak) = under_load(svc, "recur", clients, seconds)?;
        let created = scalar(
            &url,
            "SELECT count(*) FROM tasks WHERE recurring_task_id IS NOT NULL",
        )
        .await?;
        check(&w, created, "task instances")?;
        env.drop_database("recur").await?;
        anyhow::Ok((w, peak))
    };
    for clients in [1u32, 16] {
        let limit = pgbench(env, "recur_tpl", "recur.sql", clients, seconds).await?;
        let (w, peak) = run(clients, "recur_tpl", Commit::Group).await?;
        let ratio = w.rate() / limit.tps;
        report.add(Row {
            section: "http",
            what: format!("recur, {clients} client(s): events/s (p50 / p99)"),
            figure: w.figure(peak),
            limit: format!("pgbench, same SQL, {clients} client(s): {}", limit.figure()),
            ratio: Some(ratio),
            target: "≥ 80 % of pgbench".into(),
            met: Some(ratio >= 0.8),
        });
    }
    let limit = pgbench(env, "recur_tpl", "recur.sql", CLIENTS, seconds).await?;
    let limit_text = format!(
        "pgbench, recur's one-event transaction, {CLIENTS} clients: {}",
        limit.figure()
    );
    let (group, peak) = run(CLIENTS, "recur_tpl", Commit::Group).await?;
    // Ten-year-old tasks against today's, in the order today, old, old, today, so that
    // neither side gains from coming later in the run (the machine drifts).
    let (old, old_peak) = run(CLIENTS, "recur_old_tpl", Commit::Group).await?;
    let (old_again, _) = run(CLIENTS, "recur_old_tpl", Commit::Group).await?;
    let (today_again, _) = run(CLIENTS, "recur_tpl", Commit::Group).await?;
    let (single, single_peak) = run(CLIENTS, "recur_tpl", Commit::PerEvent).await?;
    for (w, peak, commit) in [
        (&group, peak, Commit::Group),
        (&single, single_peak, Commit::PerEvent),
    ] {
        let ratio = w.rate() / limit.tps;
        let (target, met) = match commit {
            Commit::Group => ("≥ 1.5 × pgbench".to_owned(), Some(ratio >= 1.5)),
            Commit::PerEvent => ("— (as before group commit)".to_owned(), None),
        };
        report.add(Row {
            section: "http",
            what: format!(
                "recur, {CLIENTS} clients, {}: events/s (p50 / p99)",
                commit.label()
            ),
            figure: w.figure(peak),
            limit: limit_text.clone(),
            ratio: Some(ratio),
            target,
            met,
        });
    }
    let tail = group.p99_us as f64 / single.p99_us as f64;
    report.add(Row {
        section: "http",
        what: format!("recur, {CLIENTS} clients: p99 with group commit against one transaction per event"),
        figure: format!(
            "{} against {}",
            ms(group.p99_us as f64 / 1e6),
            ms(single.p99_us as f64 / 1e6)
        ),
        limit: "(the two rows before)".into(),
        ratio: Some(tail),
        target: "≤ 1 (no worse)".into(),
        met: Some(tail <= 1.0),
    });
    let old_limit = pgbench(env, "recur_old_tpl", "recur.sql", CLIENTS, seconds).await?;
    report.add(Row {
        section: "http",
        what: format!("recur, {CLIENTS} clients, group commit, DTSTART ten years ago: events/s (p50 / p99)"),
        figure: old.figure(old_peak),
        limit: format!("pgbench, same SQL, {CLIENTS} clients: {}", old_limit.figure()),
        ratio: Some(old.rate() / old_limit.tps),
        target: "≥ 1.5 × pgbench".into(),
        met: Some(old.rate() / old_limit.tps >= 1.5),
    });
    let (old_rate, today_rate) = (
        (old.rate() + old_again.rate()) / 2.0,
        (group.rate() + today_again.rate()) / 2.0,
    );
    let age = old_rate / today_rate;
    report.add(Row {
        section: "http",
        what: format!(
            "recur, {CLIENTS} clients: DTSTART ten years ago against today (mean of two runs each, \
             in the order today, old, old, today)"
        ),
        figure: format!("{old_rate:.0} against {today_rate:.0} events/s"),
        limit: "(the rows before)".into(),
        ratio: Some(age),
        target: "within 10 %".into(),
        met: Some((0.9..=1.1).contains(&age)),
    });
    env.drop_database("recur_tpl").await?;
    env.drop_database("recur_old_tpl").await?;
    Ok(group)
}

/// notify at 64 clients, file mailer and SMTP, with and without group commit. Returns the
/// file mailer's group-commit figure.
async fn notify(env: &Env, report: &mut Report, seconds: u64) -> anyhow::Result<WrkResult> {
    let tpl = env.database("notify_tpl", None).await?;
    seed::reminders(&tpl, ROWS, "2026-11-01T09:45:00Z", "published").await?;
    let limit = pgbench(env, "notify_tpl", "notify.sql", CLIENTS, seconds).await?;
    let smtp = SmtpServer::start_in(&Options::default(), tempfile::tempdir_in(&env.out)?);
    let mut file_group = None;
    for (mailer, mail_vars) in [
        ("file mailer", vec![("MAILER", "file".to_owned())]),
        (
            "SMTP (aiosmtpd sink)",
            vec![
                ("MAILER", "smtp".to_owned()),
                ("SMTP_URL", format!("smtp://127.0.0.1:{}?tls=none", smtp.port)),
                ("SMTP_MAX_SESSIONS", "16".to_owned()),
            ],
        ),
    ] {
        for commit in [Commit::Group, Commit::PerEvent] {
            let url = env.database("notify", Some("notify_tpl")).await?;
            let outbox = tempfile::tempdir_in(&env.out)?;
            let mut vars = mail_vars.clone();
            vars.extend([
                ("DATABASE_URL", url.clone()),
                ("DATABASE_MAX_CONNECTIONS", CLIENTS.to_string()),
                ("MAX_IN_FLIGHT", "1024".into()),
                ("OUTBOX_DIR", outbox.path().display().to_string()),
            ]);
            vars.extend(commit.vars());
            let svc = Service::start(env, "notify-http", "notify", &[], &one_cpu(vars))?;
            let (w, peak) = under_load(svc, "notify", CLIENTS, seconds)?;
            let sent = scalar(
                &url,
                "SELECT count(*) FROM deliveries WHERE status = 'sent' AND remind_at = '2026-11-01T09:45:00Z'",
            )
            .await?;
            check(&w, sent, "sent deliveries")?;
            report.add(Row {
                section: "http",
                what: format!(
                    "notify, {mailer}, {CLIENTS} clients, {}: events/s (p50 / p99)",
                    commit.label()
                ),
                figure: w.figure(peak),
                limit: format!(
                    "pgbench, notify's SQL, one event per transaction, {CLIENTS} clients: {}",
                    limit.figure()
                ),
                ratio: Some(w.rate() / limit.tps),
                target: "— (reported)".into(),
                met: None,
            });
            env.drop_database("notify").await?;
            if mailer == "file mailer" && commit == Commit::Group {
                file_group = Some(w);
            }
        }
    }
    drop(smtp);
    env.drop_database("notify_tpl").await?;
    file_group.context("the file mailer ran")
}

/// Every request answered `2xx`, and every answered one left its effect in the database.
pub fn check(w: &WrkResult, effects: i64, what: &str) -> anyhow::Result<()> {
    if w.non2xx > 0 || w.socket_errors > 0 {
        bail!(
            "{} of {} requests failed ({} socket errors)",
            w.non2xx,
            w.requests,
            w.socket_errors
        );
    }
    if (effects as u64) < w.requests {
        bail!(
            "{} requests answered but only {effects} {what} recorded",
            w.requests
        );
    }
    Ok(())
}

/// `wrk` with `clients` connections (at most 2 threads: the machine's cores are shared with
/// the function and PostgreSQL) over ids `first ..= last`.
pub fn wrk_rows(
    url: &str,
    kind: &str,
    clients: u32,
    seconds: u64,
    first: u64,
    last: u64,
) -> anyhow::Result<WrkResult> {
    let threads = clients.min(2);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/events.lua");
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &clients.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "10s",
            "-s",
            script,
            url,
            "--",
            kind,
            &first.to_string(),
            &((last - first + 1) / u64::from(threads)).to_string(),
        ])
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_RESULT "))
        .with_context(|| {
            format!(
                "wrk printed no result: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(serde_json::from_str(line)?)
}

/// What a `pgbench` run did.
pub struct Pgbench {
    /// Transactions per second.
    pub tps: f64,
    /// Machine CPU per transaction, in seconds (pgbench's client included).
    pub cpu_per_txn: f64,
}

impl Pgbench {
    /// `2 213/s (machine CPU 380 µs per transaction)`
    fn figure(&self) -> String {
        format!(
            "{} (machine CPU {} per transaction)",
            rate(self.tps),
            cpu_per_item(self.cpu_per_txn, 1.0)
        )
    }
}

/// `pgbench` running `script` on a fresh copy of `template` for `seconds`.
pub async fn pgbench(
    env: &Env,
    template: &str,
    script: &str,
    clients: u32,
    seconds: u64,
) -> anyhow::Result<Pgbench> {
    pgbench_with(env, template, script, clients, &["-T", &seconds.to_string()]).await
}

/// `pgbench` running a 100-row batch `script` over `items` seeded rows, with as many
/// clients as the topics have partitions (the consumer's concurrency): rows per second.
pub async fn pgbench_batched(
    env: &Env,
    template: &str,
    script: &str,
    items: u64,
    clients: u32,
) -> anyhow::Result<f64> {
    let per_client = (items / 100 / u64::from(clients)).max(1);
    let run = pgbench_with(env, template, script, clients, &["-t", &per_client.to_string()]).await?;
    Ok(run.tps * 100.0)
}

async fn pgbench_with(
    env: &Env,
    template: &str,
    script: &str,
    clients: u32,
    how_long: &[&str],
) -> anyhow::Result<Pgbench> {
    let url = env.database("pgbench", Some(template)).await?;
    // Built from the store's statements (crate::scripts), written where the results go.
    let script = crate::scripts::write_all(&env.out.join("scripts"))?.join(script);
    let busy = machine_busy_seconds();
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            // The scripts' per-client row counter and the client count (crate::scripts).
            "-D",
            "n=0",
            "-D",
            &format!("clients={clients}"),
        ])
        .args(how_long)
        .arg("-f")
        .arg(&script)
        .arg(&url)
        .output()
        .context("running pgbench")?;
    let cpu = machine_busy_seconds() - busy;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output: {stdout}"))?;
    let transactions = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next()?.trim().parse::<f64>().ok())
        .with_context(|| format!("no transaction count in pgbench output: {stdout}"))?;
    env.drop_database("pgbench").await?;
    Ok(Pgbench {
        tps,
        cpu_per_txn: cpu / transactions,
    })
}
