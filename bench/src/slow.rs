//! Slow and abusive clients (section `slow`): 3 000 connections to notify's port directly
//! (no queue-proxy in front), each announcing a 60 KB body and sending 5 bytes a second
//! (`todo_events_testkit::slow`), held open for 8 s (less than the default `BODY_TIMEOUT`,
//! so that every admitted body is still hanging). notify runs with its default limits, sized
//! as deployed. Figures: its RSS at its peak while they are open, beside the manifests'
//! 256 Mi limit, and after they have closed, beside its idle RSS; what the clients were
//! answered. The CI-sized check of the same bound: functions/notify/tests/all/slow_clients.rs.

use crate::env::{memory, one_cpu, Env, Service};
use crate::report::{Report, Row};
use std::time::{Duration, Instant};
use todo_events_testkit::slow::{Slow, SlowClients};

const CONNECTIONS: usize = 3000;
const LIMIT_MIB: f64 = 256.0;

pub async fn measure(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let url = env.database("slow", None).await?;
    let outbox = tempfile::tempdir_in(&env.out)?;
    let vars = one_cpu(vec![
        ("DATABASE_URL", url),
        ("OUTBOX_DIR", outbox.path().display().to_string()),
    ]);
    let mut svc = Service::start(env, "notify-slow", "notify", &[], &vars)?;
    svc.wait_ready(Duration::from_secs(10))?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = svc.child.id();
    let (idle, _) = memory(pid);

    let clients = SlowClients::start(
        &format!("127.0.0.1:{}", svc.port),
        &Slow {
            connections: CONNECTIONS,
            body_bytes: 60_000,
            chunk: 5,
            every: Duration::from_secs(1),
        },
    )
    .await;
    let opened = Instant::now();
    let mut peak: f64 = 0.0;
    while opened.elapsed() < Duration::from_secs(8) {
        peak = peak.max(memory(pid).0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = clients.tally();
    let tally = clients.close().await;
    // The server gives a burst's memory back at its next idle check (every 2 s, host::trim).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (after, hwm) = memory(pid);
    let peak = peak.max(hwm);
    svc.stop()?;
    env.drop_database("slow").await?;

    let answered = |s: u16| tally.answers.get(&s).copied().unwrap_or(0);
    report.add(Row {
        section: "slow",
        what: format!(
            "notify: peak RSS with {CONNECTIONS} connections trickling 60 KB bodies at 5 B/s \
             (at 8 s: {} open, {} answered 429 at once, {} not accepted)",
            during.open,
            answered(429),
            during.not_connected
        ),
        figure: format!("{peak:.1} MiB"),
        limit: format!("{LIMIT_MIB:.0} MiB (manifest limit)"),
        ratio: Some(peak / LIMIT_MIB),
        target: "< 256 MiB".into(),
        met: Some(peak < LIMIT_MIB),
    });
    report.add(Row {
        section: "slow",
        what: "notify: RSS 4 s after the slow clients closed".into(),
        figure: format!("{after:.1} MiB"),
        limit: format!("{idle:.1} MiB (idle, before)"),
        ratio: Some(after / idle),
        target: "≤ idle + 10 MiB".into(),
        met: Some(after <= idle + 10.0),
    });
    Ok(())
}
