//! When passes run: one ([`Mode::Once`]), or one on each wall-clock boundary of `every` until
//! a deadline or shutdown (the CronJob and loop modes). Apart from `pass.rs`, which is how a
//! pass goes.

use crate::pass::{Scheduler, LOG_TARGET};
use crate::publish::Publisher;

/// How long the scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One pass; failure to publish anything exits non-zero.
    Once,
    /// Poll every `every` until `duration` has passed (the CronJob mode: the next job
    /// starts on the next minute).
    For {
        duration: std::time::Duration,
        every: std::time::Duration,
    },
    /// Poll every `every` until shutdown.
    Loop { every: std::time::Duration },
}

impl<P: Publisher> Scheduler<P> {
    /// Polls: passes according to `mode` (one, or one every `every`) until done or `shutdown`.
    pub async fn poll(&self, mode: Mode, shutdown: todo_events_host::Shutdown) -> anyhow::Result<()> {
        let (deadline, every) = match mode {
            Mode::Once => return self.once().await,
            Mode::For { duration, every } => (Some(tokio::time::Instant::now() + duration), every),
            Mode::Loop { every } => (None, every),
        };
        let mut first = true;
        loop {
            // The first pass at once, then on the wall clock's `every` boundaries (whole
            // seconds for `--every 1s`): items are mostly due on whole seconds and minutes,
            // so a pass just after the boundary finds them at once, where a free-running
            // ticker would find them up to `every` later.
            let wait = if first {
                std::time::Duration::ZERO
            } else {
                until_boundary(every)
            };
            first = false;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => break,
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
            self.tick(every).await;
        }
        Ok(())
    }

    /// [`Mode::Once`]: one pass, an error if an event was not published.
    async fn once(&self) -> anyhow::Result<()> {
        let report = self.pass().await?;
        tracing::info!(
            target: LOG_TARGET,
            "pass done: {} reminder(s), {} occurrence(s) and {} agenda(s) published, {} failed",
            report.reminders_published,
            report.occurrences_published,
            report.agendas_published,
            report.failed
        );
        match report.first_error {
            Some(e) => Err(anyhow::anyhow!("{} event(s) not published: {e}", report.failed)),
            None => Ok(()),
        }
    }

    /// The pass of one tick. A pooled connection the database dropped (a restart, a
    /// terminated backend) fails one statement before the pool replaces it: such a pass is
    /// tried again at once, for up to half a tick, instead of a whole tick later per dead
    /// connection. A database that stays away is waited out tick by tick.
    async fn tick(&self, every: std::time::Duration) {
        let tick = tokio::time::Instant::now();
        loop {
            match self.pass().await {
                Ok(report) if report.published() + report.failed > 0 => {
                    tracing::debug!(target: LOG_TARGET, ?report, "pass done")
                }
                Ok(_) => {}
                Err(e) if e.is_transient() && tick.elapsed() < every / 2 => {
                    tracing::info!(target: LOG_TARGET, "pass failed, trying again at once: {e}");
                    tokio::time::sleep(PROMPT_RETRY_PAUSE).await;
                    continue;
                }
                Err(e) => tracing::warn!(target: LOG_TARGET, "pass failed, retrying on the next tick: {e}"),
            }
            break;
        }
    }
}

/// Pause before a failed pass is tried again within its tick.
const PROMPT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Time from now to just after the next multiple of `every` since the Unix epoch.
fn until_boundary(every: std::time::Duration) -> std::time::Duration {
    /// After the boundary, so that what is due exactly on it is due.
    const PAST_BOUNDARY: std::time::Duration = std::time::Duration::from_millis(5);
    let every_us = every.as_micros().max(1);
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let to_next = every_us - now_us % every_us;
    std::time::Duration::from_micros(to_next as u64) + PAST_BOUNDARY
}

#[cfg(test)]
mod tests {
    use super::until_boundary;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn passes_wake_just_after_the_wall_clock_boundary() {
        for every in [
            Duration::from_secs(1),
            Duration::from_millis(250),
            Duration::from_secs(60),
        ] {
            let wait = until_boundary(every);
            assert!(
                wait > Duration::ZERO && wait <= every + Duration::from_millis(5),
                "{wait:?}"
            );
            let wake = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + wait;
            let past = wake.as_micros() % every.as_micros();
            assert!(past <= 10_000, "wakes {past} µs after the boundary of {every:?}");
        }
    }
}
