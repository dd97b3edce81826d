//! Stand-in for the CronJob and Job controllers, as far as the scheduler's CronJob uses
//! them. Follows kubernetes/kubernetes `pkg/controller/cronjob/cronjob_controllerv2.go`
//! (`syncCronJob`) and `pkg/controller/cronjob/utils.go` (`mostRecentScheduleTime`):
//!
//! - each sync looks for the most recent schedule time that has not been run yet;
//! - with `startingDeadlineSeconds`, a time older than that deadline is missed, not run;
//! - `Forbid` with a Job still active starts nothing; the same unmet time is looked at again
//!   when the active Job finishes (the controller is told of Job changes), so it may start
//!   late, within the starting deadline; `Replace` deletes the active Jobs first; `Allow`
//!   starts it regardless;
//! - the Job controller (`pkg/controller/job/job_controller.go`) fails a Job whose pod runs
//!   longer than `activeDeadlineSeconds` from the Job's start and deletes its pod (SIGTERM,
//!   then SIGKILL after `terminationGracePeriodSeconds`).
//!
//! The container start delay (pod scheduling, image pull, container creation) is the
//! rehearsal's `--container-start` parameter.

use crate::manifests::CronJob;
use crate::pods::Cluster;
use chrono::{DateTime, Utc};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What happened to the CronJob's runs, for the report.
#[derive(Default, Debug, Clone)]
pub struct Runs {
    pub started: usize,
    pub missed: usize,
    pub deadline_exceeded: usize,
    pub failed: usize,
    /// Most runs active at once.
    pub most_at_once: usize,
}

pub struct Controller {
    pub runs: Arc<Mutex<Runs>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Controller {
    pub fn start(cluster: Cluster, cron: CronJob) -> anyhow::Result<Self> {
        let schedule = croner::Cron::from_str(&cron.schedule)
            .map_err(|e| anyhow::anyhow!("CronJob schedule {:?}: {e}", cron.schedule))?;
        let runs = Arc::new(Mutex::new(Runs::default()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(controller(cluster, cron, schedule, runs.clone(), stop.clone()));
        Ok(Self { runs, stop, task })
    }

    /// Stops scheduling and deletes the active Jobs (SIGTERM, grace, SIGKILL).
    pub async fn stop(self) -> Runs {
        self.stop.cancel();
        let _ = self.task.await;
        let runs = self.runs.lock().expect("not poisoned").clone();
        runs
    }
}

async fn controller(
    cluster: Cluster,
    cron: CronJob,
    schedule: croner::Cron,
    runs: Arc<Mutex<Runs>>,
    stop: CancellationToken,
) {
    // The CronJob was created now: its first run is at the next schedule time.
    let mut last_scheduled: DateTime<Utc> = Utc::now();
    let mut active: Vec<(CancellationToken, tokio::task::JoinHandle<()>)> = Vec::new();
    loop {
        active.retain(|(_, job)| !job.is_finished());
        let now = Utc::now();
        let next = schedule
            .find_next_occurrence(&last_scheduled, false)
            .expect("a five-field schedule has a next time");
        if next <= now {
            let late = (now - next).to_std().unwrap_or_default();
            if cron.starting_deadline.is_some_and(|d| late > d) {
                tracing::warn!("CronJob: run of {next} missed (started {late:?} late)");
                runs.lock().expect("not poisoned").missed += 1;
                last_scheduled = next;
                continue;
            }
            match cron.concurrency_policy.as_str() {
                "Forbid" if !active.is_empty() => {
                    // Looked at again when the active Job finishes (below, every 100 ms).
                }
                policy => {
                    if policy == "Replace" {
                        for (cancel, job) in active.drain(..) {
                            cancel.cancel();
                            let _ = job.await;
                        }
                    }
                    let cancel = CancellationToken::new();
                    let job = tokio::spawn(run_job(
                        cluster.clone(),
                        cron.clone(),
                        runs.clone(),
                        cancel.clone(),
                    ));
                    active.push((cancel, job));
                    last_scheduled = next;
                    let mut r = runs.lock().expect("not poisoned");
                    r.started += 1;
                    r.most_at_once = r.most_at_once.max(active.len());
                    continue;
                }
            }
        }
        let until_next = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(until_next.min(Duration::from_millis(100))) => {}
        }
    }
    for (cancel, job) in active {
        cancel.cancel();
        let _ = job.await;
    }
}

/// One Job: its pod, stopped at `activeDeadlineSeconds` after the Job started.
async fn run_job(cluster: Cluster, cron: CronJob, runs: Arc<Mutex<Runs>>, cancel: CancellationToken) {
    let job_start = tokio::time::Instant::now();
    let pod = tokio::select! {
        _ = cancel.cancelled() => return,
        pod = cluster.start("scheduler-cron", &cron.container, false, cron.termination_grace) => pod,
    };
    let mut pod = match pod {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("CronJob: pod did not start: {e:#}");
            runs.lock().expect("not poisoned").failed += 1;
            return;
        }
    };
    let left = cron
        .active_deadline
        .map(|d| d.saturating_sub(job_start.elapsed()));
    let outcome = tokio::select! {
        _ = cancel.cancelled() => None,
        status = pod.wait(left) => Some(status),
    };
    match outcome {
        Some(Ok(Some(status))) if status.success() => {}
        Some(Ok(Some(status))) => {
            tracing::warn!("CronJob: {} exited with {status}", pod.name);
            runs.lock().expect("not poisoned").failed += 1;
        }
        Some(Ok(None)) => {
            tracing::warn!("CronJob: {} passed activeDeadlineSeconds", pod.name);
            runs.lock().expect("not poisoned").deadline_exceeded += 1;
            pod.terminate().await;
        }
        Some(Err(e)) => tracing::error!("CronJob: waiting for {}: {e}", pod.name),
        None => pod.terminate().await,
    }
}
