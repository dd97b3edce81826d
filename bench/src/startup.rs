//! Cold start (process start to the first `200` on `/health/readiness`), idle memory and the
//! size of the stripped release binaries: what scale-from-zero costs.

use crate::env::{one_cpu, percentile, Env, Service};
use crate::report::{ms, Report, Row};
use std::time::{Duration, Instant};

const STARTS: usize = 25;

pub async fn measure(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let url = env.database("startup", None).await?;
    for function in ["notify", "recur"] {
        let mut starts = Vec::with_capacity(STARTS);
        let mut idle = Vec::new();
        for i in 0..STARTS {
            let outbox = tempfile::tempdir_in(&env.out)?;
            let began = Instant::now();
            let vars = one_cpu(vec![
                ("DATABASE_URL", url.clone()),
                ("OUTBOX_DIR", outbox.path().display().to_string()),
            ]);
            let mut svc = Service::start(env, &format!("{function}-start"), function, &[], &vars)?;
            svc.wait_ready(Duration::from_secs(10))?;
            starts.push(began.elapsed().as_secs_f64());
            if i < 5 {
                // Idle: ready, one readiness probe answered, nothing else to do.
                std::thread::sleep(Duration::from_millis(1500));
                idle.push(svc.rss_mib().0);
            }
            svc.stop()?;
        }
        starts.sort_by(f64::total_cmp);
        idle.sort_by(f64::total_cmp);
        let median = percentile(&starts, 50.0);
        report.add(Row {
            section: "startup",
            what: format!(
                "{function}: process start → first 200 on /health/readiness, median of {STARTS} (p90)"
            ),
            figure: format!("{} ({})", ms(median), ms(percentile(&starts, 90.0))),
            limit: "—".into(),
            ratio: None,
            target: "≤ 20 ms".into(),
            met: Some(median <= 0.020),
        });
        let rss = percentile(&idle, 50.0);
        report.add(Row {
            section: "startup",
            what: format!("{function}: idle RSS (PostgreSQL pool open)"),
            figure: format!("{rss:.1} MiB"),
            limit: "—".into(),
            ratio: None,
            target: "≤ 15 MiB".into(),
            met: Some(rss <= 15.0),
        });
    }
    env.drop_database("startup").await?;
    for binary in ["notify", "recur", "scheduler-cron", "todo-events"] {
        let size = std::fs::metadata(env.binary(binary))?.len() as f64 / 1024.0 / 1024.0;
        report.add(Row {
            section: "startup",
            what: format!("`{binary}` stripped release binary"),
            figure: format!("{size:.1} MiB"),
            limit: "—".into(),
            ratio: None,
            target: "— (reported)".into(),
            met: None,
        });
    }
    Ok(())
}
