//! One scheduler pass: claim due rows in batches, publish, mark published.

use crate::config::SchedulerConfig;
use crate::publish::Publisher;
use chrono::{DateTime, Duration, Utc};
use todo_events_domain::events::Outgoing;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{CatchUp, RecurringTaskDue, RecurringTaskId, ReminderDue, ReminderId};
use todo_events_store::scheduler::{ClaimedOccurrence, ClaimedReminder};
use todo_events_store::{Malformed, Store, StoreError};

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub reminders_published: usize,
    pub occurrences_published: usize,
    /// Events the sink did not acknowledge; their rows are republished after the lease.
    pub failed: usize,
    /// Missed occurrences skipped by the `latest` catch-up policy.
    pub occurrences_skipped: usize,
    /// Items published again: no effect `SCHEDULER_REPUBLISH_AFTER` after their publishing.
    pub republished: usize,
    /// The first failure, for the log and the exit status.
    pub first_error: Option<String>,
}

impl PassReport {
    pub fn published(&self) -> usize {
        self.reminders_published + self.occurrences_published
    }

    /// Adds what another worker of the same pass did.
    fn absorb(&mut self, other: PassReport) {
        self.reminders_published += other.reminders_published;
        self.occurrences_published += other.occurrences_published;
        self.failed += other.failed;
        self.occurrences_skipped += other.occurrences_skipped;
        self.republished += other.republished;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

pub struct Scheduler<P> {
    store: Store,
    publisher: P,
    config: SchedulerConfig,
}

impl<P: Publisher> Scheduler<P> {
    pub fn new(store: Store, publisher: P, config: SchedulerConfig) -> Self {
        Self {
            store,
            publisher,
            config,
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_std(self.config.lease.0).unwrap_or(Duration::minutes(1))
    }

    fn republish_after(&self) -> Option<Duration> {
        self.config
            .republish_after
            .and_then(|after| Duration::from_std(after.0).ok())
    }

    /// Claims and publishes until nothing due is left (or a batch fails to publish).
    /// `SCHEDULER_WORKERS` claim → publish → mark loops run at once: while one waits for
    /// the broker's acknowledgements another claims, so the database and the broker are
    /// busy together. (`FOR UPDATE SKIP LOCKED` keeps their claims apart on PostgreSQL;
    /// SQLite's single connection takes them in turn.)
    pub async fn pass(&self) -> Result<PassReport, StoreError> {
        let workers = self.config.workers.max(1);
        let mut report = PassReport::default();
        let parts = futures::future::try_join_all((0..workers).map(|_| self.reminders_until_done())).await?;
        parts.into_iter().for_each(|p| report.absorb(p));
        let parts =
            futures::future::try_join_all((0..workers).map(|_| self.occurrences_until_done())).await?;
        parts.into_iter().for_each(|p| report.absorb(p));
        Ok(report)
    }

    async fn reminders_until_done(&self) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        loop {
            let claimed = self
                .store
                .claim_reminders(
                    &self.config.owner,
                    now(),
                    self.lease(),
                    self.config.batch,
                    self.republish_after(),
                )
                .await?;
            if claimed.is_empty() {
                break;
            }
            let full = claimed.len() as i64 == self.config.batch;
            if !self.publish_reminders(claimed, &mut report).await? || !full {
                break;
            }
        }
        Ok(report)
    }

    async fn occurrences_until_done(&self) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        loop {
            let claimed = self
                .store
                .claim_occurrences(
                    &self.config.owner,
                    now(),
                    self.lease(),
                    self.config.batch,
                    self.republish_after(),
                )
                .await?;
            if claimed.is_empty() {
                break;
            }
            let full = claimed.len() as i64 == self.config.batch;
            if !self.publish_occurrences(claimed, &mut report).await? || !full {
                break;
            }
        }
        Ok(report)
    }

    /// Returns whether every event of the batch was acknowledged.
    async fn publish_reminders(
        &self,
        claimed: Vec<ClaimedReminder>,
        report: &mut PassReport,
    ) -> Result<bool, StoreError> {
        self.note_republished(claimed.iter().filter(|r| r.again).count(), "reminder", report);
        let events: Vec<Outgoing> = claimed
            .iter()
            .map(|r| {
                Outgoing::from(&ReminderDue {
                    reminder_id: r.id,
                    task_id: r.task_id,
                    user_id: r.user_id,
                    remind_at: r.remind_at,
                })
            })
            .collect();
        let ids: Vec<ReminderId> = claimed.iter().map(|r| r.id).collect();
        let results = self.publisher.publish(&events).await;
        let mut acked = Vec::with_capacity(ids.len());
        for ((id, event), result) in ids.iter().zip(&events).zip(results) {
            match result {
                Ok(()) => {
                    tracing::debug!(event_id = %event.id, "reminder {id} is due: event published");
                    acked.push(*id);
                }
                Err(e) => record_failure(report, &event.id, e.0),
            }
        }
        self.store
            .mark_reminders_published(&self.config.owner, &acked, now())
            .await?;
        report.reminders_published += acked.len();
        if let (Some(first), Some(last)) = (acked.first(), acked.last()) {
            tracing::info!(
                "{} due reminder(s) published (reminders {first} … {last}; each event id at debug level)",
                acked.len()
            );
        }
        Ok(acked.len() == ids.len())
    }

    async fn publish_occurrences(
        &self,
        claimed: Vec<Result<ClaimedOccurrence, Malformed>>,
        report: &mut PassReport,
    ) -> Result<bool, StoreError> {
        let republished = claimed
            .iter()
            .filter(|c| c.as_ref().is_ok_and(|c| c.again))
            .count();
        self.note_republished(republished, "occurrence", report);
        let owner = self.config.owner.as_str();
        let current = now();
        let mut events = Vec::with_capacity(claimed.len());
        let mut targets = Vec::with_capacity(claimed.len());
        for c in claimed {
            let c = match c {
                Ok(c) => c,
                Err(malformed) => {
                    self.deactivate(malformed.id, &malformed.to_string(), current)
                        .await?;
                    continue;
                }
            };
            let occurrence = match self.catch_up(&c, current, report).await? {
                Ok(occurrence) => occurrence,
                Err(reason) => {
                    self.deactivate(c.id.get(), &reason, current).await?;
                    continue;
                }
            };
            let due = RecurringTaskDue {
                recurring_task_id: c.id,
                user_id: c.user_id,
                occurrence_at: occurrence,
            };
            events.push(Outgoing::from(&due));
            targets.push((c.id, occurrence));
        }
        let results = self.publisher.publish(&events).await;
        let mut all_acked = true;
        for ((target, event), result) in targets.iter().zip(&events).zip(results) {
            match result {
                Ok(()) => {
                    tracing::info!(event_id = %event.id, "recurring task {} is due ({}): event published", target.0, rfc3339(target.1));
                    self.store
                        .mark_occurrence_published(owner, target.0, target.1, now())
                        .await?;
                    report.occurrences_published += 1;
                }
                Err(e) => {
                    all_acked = false;
                    record_failure(report, &event.id, e.0);
                }
            }
        }
        Ok(all_acked)
    }

    /// Deactivates a claimed recurring task whose stored rule cannot be used: it would be
    /// claimed again at every pass.
    async fn deactivate(&self, id: i64, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        tracing::error!(recurring_task_id = id, "recurring task deactivated: {reason}");
        match RecurringTaskId::new(id) {
            Some(id) => self.store.deactivate_recurring(&self.config.owner, id, now).await,
            None => Ok(()),
        }
    }

    /// Items claimed again because their effect did not follow their publishing: the broker
    /// lost them, or the consumers are that far behind. Worth a warning either way.
    fn note_republished(&self, n: usize, what: &str, report: &mut PassReport) {
        if n == 0 {
            return;
        }
        report.republished += n;
        let after = self
            .config
            .republish_after
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::warn!(
            "{n} {what}(s) published again: no effect {after} after their publishing \
             (lost by the broker, or the consumers are that far behind)"
        );
    }

    /// The occurrence to publish for a claimed task: its next occurrence, or under the
    /// `latest` policy the latest one already due (skipping the missed ones before it).
    /// The outer error is the store's; the inner one says why the stored rule is unusable.
    async fn catch_up(
        &self,
        c: &ClaimedOccurrence,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Result<DateTime<Utc>, String>, StoreError> {
        if c.catch_up == CatchUp::All {
            return Ok(Ok(c.next_occurrence));
        }
        let schedule = &c.schedule;
        let latest = match schedule.latest_due(c.next_occurrence, now) {
            Ok(latest) => latest,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if latest == c.next_occurrence {
            return Ok(Ok(latest));
        }
        if self
            .store
            .fast_forward(&self.config.owner, c.id, c.next_occurrence, latest, now)
            .await?
        {
            let skipped = schedule
                .occurrences(Some(c.next_occurrence))
                .take_while(|t| t.as_ref().is_ok_and(|t| *t < latest))
                .count()
                + 1;
            report.occurrences_skipped += skipped;
            tracing::info!(
                recurring_task_id = c.id.get(),
                "recurring task {} missed {skipped} occurrence(s); catching up with the latest only ({})",
                c.id,
                rfc3339(latest)
            );
            Ok(Ok(latest))
        } else {
            // The row moved under us (recur advanced it): publish what we claimed.
            Ok(Ok(c.next_occurrence))
        }
    }
}

fn record_failure(report: &mut PassReport, event_id: &str, reason: String) {
    tracing::warn!(event_id, "not published, will retry after the lease: {reason}");
    report.failed += 1;
    if report.first_error.is_none() {
        report.first_error = Some(reason);
    }
}

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
            Mode::Once => {
                let report = self.pass().await?;
                tracing::info!(
                    "pass done: {} reminder(s) and {} occurrence(s) published, {} failed",
                    report.reminders_published,
                    report.occurrences_published,
                    report.failed
                );
                return match report.first_error {
                    Some(e) => Err(anyhow::anyhow!("{} event(s) not published: {e}", report.failed)),
                    None => Ok(()),
                };
            }
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
            // A pooled connection the database dropped (a restart, a terminated backend)
            // fails one statement before the pool replaces it: such a pass is tried again at
            // once, for up to half a tick, instead of a whole tick later per dead connection.
            // A database that stays away is waited out tick by tick.
            let tick = tokio::time::Instant::now();
            loop {
                match self.pass().await {
                    Ok(report) if report.published() + report.failed > 0 => {
                        tracing::debug!(?report, "pass done")
                    }
                    Ok(_) => {}
                    Err(e) if e.is_transient() && tick.elapsed() < every / 2 => {
                        tracing::info!("pass failed, trying again at once: {e}");
                        tokio::time::sleep(PROMPT_RETRY_PAUSE).await;
                        continue;
                    }
                    Err(e) => tracing::warn!("pass failed, retrying on the next tick: {e}"),
                }
                break;
            }
        }
        Ok(())
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
