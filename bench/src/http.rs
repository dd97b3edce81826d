//! HTTP mode, one event per request (the Knative path): recur and notify under `wrk`, beside
//! `pgbench` running the same SQL at the same concurrency.

use crate::env::{cpu_per_item, machine_busy_seconds, one_cpu, scalar, seed, Env, Service};
use crate::report::{ms, rate, Report, Row};
use anyhow::{bail, Context};
use serde::Deserialize;
use std::process::Command;
use std::time::Duration;
use todo_events_testkit::smtp::{Options, SmtpServer};

/// Seeded rows per template: more than the fastest run can use up.
const ROWS: u64 = 400_000;

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
}

impl WrkResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }

    /// `1 234/s (1.20 ms / 2.30 ms), peak RSS 17.0 MiB, machine CPU 550 µs per event`
    fn figure(&self, peak_rss_mib: f64) -> String {
        format!(
            "{} ({} / {}), peak RSS {peak_rss_mib:.1} MiB, machine CPU {} per event",
            rate(self.rate()),
            ms(self.p50_us as f64 / 1e6),
            ms(self.p99_us as f64 / 1e6),
            cpu_per_item(self.cpu_seconds, self.requests as f64)
        )
    }
}

/// Waits for the function to be ready, puts it under `wrk` load, stops it: the load's
/// result and the function's peak RSS.
fn under_load(mut svc: Service, kind: &str, clients: u32, seconds: u64) -> anyhow::Result<(WrkResult, f64)> {
    svc.wait_ready(Duration::from_secs(20))?;
    let busy = machine_busy_seconds();
    let mut w = wrk(&svc.url(), kind, clients, seconds)?;
    w.cpu_seconds = machine_busy_seconds() - busy;
    let (_, peak) = svc.rss_mib();
    svc.stop()?;
    Ok((w, peak))
}

pub async fn measure(env: &Env, report: &mut Report, seconds: u64) -> anyhow::Result<()> {
    let tpl = env.database("recur_tpl", None).await?;
    seed::recurring(&tpl, ROWS, seed::DTSTART_TODAY).await?;
    let old_tpl = env.database("recur_old_tpl", None).await?;
    seed::recurring(&old_tpl, ROWS, seed::DTSTART_TEN_YEARS_AGO).await?;
    // The last run: the tasks started ten years ago, beside the same load on new ones.
    let mut today_rate = None;
    for (clients, template) in [
        (1u32, "recur_tpl"),
        (16, "recur_tpl"),
        (64, "recur_tpl"),
        (64, "recur_old_tpl"),
    ] {
        let old = template == "recur_old_tpl";
        let limit = pgbench(env, template, "recur.sql", clients, seconds).await?;
        let url = env.database("recur", Some(template)).await?;
        let svc = Service::start(
            env,
            "recur-http",
            "recur",
            &[],
            &one_cpu(vec![
                ("DATABASE_URL", url.clone()),
                ("DATABASE_MAX_CONNECTIONS", clients.max(2).to_string()),
                ("MAX_IN_FLIGHT", "1024".into()),
            ]),
        )?;
        let (w, peak) = under_load(svc, "recur", clients, seconds)?;
        let created = scalar(
            &url,
            "SELECT count(*) FROM tasks WHERE recurring_task_id IS NOT NULL",
        )
        .await?;
        check(&w, created, "task instances")?;
        let ratio = w.rate() / limit.tps;
        report.add(Row {
            section: "http",
            what: if old {
                format!("recur, {clients} client(s), DTSTART ten years ago: events/s (p50 / p99)")
            } else {
                format!("recur, {clients} client(s): events/s (p50 / p99)")
            },
            figure: w.figure(peak),
            limit: format!("pgbench, same SQL, {clients} client(s): {}", limit.figure()),
            ratio: Some(ratio),
            target: "≥ 80 % of pgbench".into(),
            met: Some(ratio >= 0.8),
        });
        if clients == 64 && !old {
            today_rate = Some(w.rate());
        }
        if let (true, Some(today)) = (old, today_rate) {
            let age = w.rate() / today;
            report.add(Row {
                section: "http",
                what: format!("recur, {clients} client(s): DTSTART ten years ago against today"),
                figure: format!("{:.0} against {today:.0} events/s", w.rate()),
                limit: "(the row before)".into(),
                ratio: Some(age),
                target: "within 10 %".into(),
                met: Some((0.9..=1.1).contains(&age)),
            });
        }
        env.drop_database("recur").await?;
    }
    env.drop_database("recur_tpl").await?;
    env.drop_database("recur_old_tpl").await?;

    let tpl = env.database("notify_tpl", None).await?;
    seed::reminders(&tpl, ROWS, "2026-11-01T09:45:00Z", "published").await?;
    let clients = 16;
    let limit = pgbench(env, "notify_tpl", "notify.sql", clients, seconds).await?;
    let smtp = SmtpServer::start_in(&Options::default(), tempfile::tempdir_in(&env.out)?);
    for (mailer, vars) in [
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
        let url = env.database("notify", Some("notify_tpl")).await?;
        let outbox = tempfile::tempdir_in(&env.out)?;
        let mut vars = vars;
        vars.extend([
            ("DATABASE_URL", url.clone()),
            ("DATABASE_MAX_CONNECTIONS", clients.to_string()),
            ("MAX_IN_FLIGHT", "1024".into()),
            ("OUTBOX_DIR", outbox.path().display().to_string()),
        ]);
        let svc = Service::start(env, "notify-http", "notify", &[], &one_cpu(vars))?;
        let (w, peak) = under_load(svc, "notify", clients, seconds)?;
        let sent = scalar(
            &url,
            "SELECT count(*) FROM deliveries WHERE status = 'sent' AND remind_at = '2026-11-01T09:45:00Z'",
        )
        .await?;
        check(&w, sent, "sent deliveries")?;
        let ratio = w.rate() / limit.tps;
        report.add(Row {
            section: "http",
            what: format!("notify, {mailer}, {clients} clients: events/s (p50 / p99)"),
            figure: w.figure(peak),
            limit: format!("pgbench, notify's SQL, {clients} clients: {}", limit.figure()),
            ratio: Some(ratio),
            target: "— (reported)".into(),
            met: None,
        });
        env.drop_database("notify").await?;
    }
    drop(smtp);
    env.drop_database("notify_tpl").await?;
    Ok(())
}

/// Every request answered `2xx`, and every answered one left its effect in the database.
fn check(w: &WrkResult, effects: i64, what: &str) -> anyhow::Result<()> {
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
/// the function and PostgreSQL).
pub fn wrk(url: &str, kind: &str, clients: u32, seconds: u64) -> anyhow::Result<WrkResult> {
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
            "1",
            &(ROWS / u64::from(threads)).to_string(),
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
