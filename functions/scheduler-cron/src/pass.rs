//! One scheduler pass: claim due rows in batches, publish, mark published.
//!
//! The claim → publish → mark loop is written once, over [`Kind`] (reminders, occurrences:
//! `kind.rs`), so both kinds follow the same rules: an item is marked only once the sink
//! acknowledged its event, a failed event is counted and left to its lease, and a loop stops
//! at a short batch or a batch not wholly acknowledged. When passes run is `poll.rs`.

use crate::agenda::Agendas;
use crate::config::{SchedulerConfig, PRUNE_BATCHES_PER_PASS};
use crate::kind::{Db, Kind, Occurrences, Reminders};
use crate::publish::Publisher;
use crate::status::Statuses;
use chrono::Duration;
use todo_events_domain::events::Outgoing;
use todo_events_domain::time::now;
use todo_events_store::history::{Prune, Pruned};
use todo_events_store::sealed::SealedRows;

/// Endpoints a sealing statement reads at most.
const SEAL_BATCH: i64 = 500;
use todo_events_store::scheduler::ClaimRequest;
use todo_events_store::{Store, StoreError};

pub use crate::poll::Mode;

/// The target of the pass's log lines, in whichever file they are written: the one they had
/// when this file wrote them all (`RUST_LOG` filters, the JSON logs' `target`).
pub(crate) const LOG_TARGET: &str = "scheduler_cron::pass";

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub reminders_published: usize,
    pub occurrences_published: usize,
    /// Daily agendas published (`agenda.rs`).
    pub agendas_published: usize,
    /// Events the sink did not acknowledge; their rows are republished after the lease.
    pub failed: usize,
    /// Missed occurrences skipped by the `latest` catch-up policy.
    pub occurrences_skipped: usize,
    /// Items published again: no effect `SCHEDULER_REPUBLISH_AFTER` after their publishing.
    pub republished: usize,
    /// The first failure, for the log and the exit status.
    pub first_error: Option<String>,
    /// Status events published (`NOTIFICATION_EVENTS=on`), and those the sink did not
    /// acknowledge: apart from the due items, never the pass's failure.
    pub statuses_published: usize,
    pub statuses_failed: usize,
    /// What the retention deleted after the items (never the pass's failure).
    pub pruned: Pruned,
    /// Endpoints whose secrets this pass sealed (`SECRETS_KEYS`; never the pass's failure).
    pub sealed: u64,
}

impl PassReport {
    pub fn published(&self) -> usize {
        self.reminders_published + self.occurrences_published + self.agendas_published
    }

    /// Adds what another worker of the same pass did.
    fn absorb(&mut self, other: PassReport) {
        self.reminders_published += other.reminders_published;
        self.occurrences_published += other.occurrences_published;
        self.agendas_published += other.agendas_published;
        self.failed += other.failed;
        self.occurrences_skipped += other.occurrences_skipped;
        self.republished += other.republished;
        self.statuses_published += other.statuses_published;
        self.statuses_failed += other.statuses_failed;
        self.pruned.add(other.pruned);
        self.sealed += other.sealed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

pub struct Scheduler<P> {
    store: Store,
    publisher: P,
    config: SchedulerConfig,
    /// When this process last pruned and sealed ([`UPKEEP_EVERY`]).
    upkeep: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long one pass goes on pruning, at most (the batch under way is finished): a backlog
/// (the retention turned on over a year of history) is deleted a little each pass, about a
/// twentieth of the time at one pass a second (as `todo-events prune --duty 5`), so that
/// neither the due items' passes nor the functions' latency notice it (docs/PERFORMANCE.md,
/// "Prune under load").
pub const PRUNE_BUDGET: std::time::Duration = std::time::Duration::from_millis(50);

/// How often one scheduler process prunes and seals at most, unless its last prune left rows
/// past the retention: once a minute, as the CronJob starts one (its passes run every second
/// for 70 s and would otherwise look for old rows, and scan the endpoints, 70 times).
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl<P: Publisher> Scheduler<P> {
    pub fn new(store: Store, publisher: P, config: SchedulerConfig) -> Self {
        Self {
            store,
            publisher,
            config,
            upkeep: std::sync::Mutex::new(None),
        }
    }

    fn db(&self) -> Db<'_> {
        Db {
            store: &self.store,
            owner: &self.config.owner,
        }
    }

    /// A claim of one batch, at `now`.
    fn claim_request(&self, now: chrono::DateTime<chrono::Utc>) -> ClaimRequest<'_> {
        ClaimRequest {
            owner: &self.config.owner,
            now,
            lease: Duration::from_std(self.config.lease.0).unwrap_or(Duration::minutes(1)),
            limit: self.config.batch,
            republish_after: (self.config.republish_after).and_then(|after| Duration::from_std(after.0).ok()),
        }
    }

    /// Claims and publishes until nothing due is left (or a batch fails to publish): the
    /// reminders, then the occurrences, then the daily agendas.
    pub async fn pass(&self) -> Result<PassReport, StoreError> {
        let mut report = self.workers(&Reminders).await?;
        report.absorb(self.workers(&Occurrences).await?);
        report.absorb(self.workers(&Agendas).await?);
        if self.config.notification_events {
            self.statuses(&mut report).await?;
        }
        if self.upkeep_due() {
            let (pruned, more) = self.prune().await;
            report.pruned = pruned;
            report.sealed = self.seal().await;
            if more {
                self.upkeep_again();
            }
        }
        Ok(report)
    }

    /// The status events, after the due items and counted apart (`status.rs`): their
    /// failures are warned about and retried after their lease, never the pass's.
    async fn statuses(&self, report: &mut PassReport) -> Result<(), StoreError> {
        let statuses = self.workers(&Statuses).await?;
        report.statuses_published += statuses.statuses_published;
        report.statuses_failed += statuses.failed;
        if let Some(e) = statuses.first_error {
            tracing::warn!(
                target: LOG_TARGET,
                "{} status event(s) not published, retried after their lease: {e}",
                statuses.failed
            );
        }
        Ok(())
    }

    /// Whether this pass prunes and seals: the first of the process, then one a minute
    /// ([`UPKEEP_EVERY`]); marks it done.
    fn upkeep_due(&self) -> bool {
        let mut last = self
            .upkeep
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| at.elapsed() < UPKEEP_EVERY) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }

    /// Lets the next pass prune again at once (the last one left rows past the retention).
    fn upkeep_again(&self) {
        *self
            .upkeep
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// The retention (`crate::history` of the store): deletes what is older than
    /// `HISTORY_RETENTION` (deliveries) and `NOTIFICATION_EVENTS_RETENTION` (status events),
    /// batch after batch while a batch comes full, at most [`PRUNE_BATCHES_PER_PASS`] and for
    /// [`PRUNE_BUDGET`]. A failure is only logged: the next pass deletes what this one left.
    /// What it deleted, and whether rows past the retention may be left.
    async fn prune(&self) -> (Pruned, bool) {
        let clock = now();
        let p = Prune {
            deliveries_before: self.config.history_retention.cutoff(clock),
            statuses_before: self.config.notification_retention.cutoff(clock),
            batch: self.config.prune_batch,
        };
        let (mut pruned, mut more) = (Pruned::default(), false);
        if p.deliveries_before.is_none() && p.statuses_before.is_none() {
            return (pruned, more);
        }
        let started = std::time::Instant::now();
        for _ in 0..PRUNE_BATCHES_PER_PASS {
            if started.elapsed() >= PRUNE_BUDGET {
                break;
            }
            match self.store.prune(&p).await {
                Ok(batch) => {
                    pruned.add(batch);
                    more = batch.full(p.batch);
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, "history not pruned, the next pass tries again: {e}");
                    break;
                }
            }
        }
        if pruned.total() > 0 {
            tracing::info!(
                target: LOG_TARGET,
                "pruned {pruned} past their retention (deliveries {}, status events {})",
                self.config.history_retention,
                self.config.notification_retention
            );
        }
        (pruned, more)
    }

    /// Seals the endpoints' secrets and keys stored plain or under an older key
    /// (`SECRETS_KEYS`; `todo_events_store::sealed`), [`SEAL_BATCH`] rows at a time, at most
    /// [`PRUNE_BATCHES_PER_PASS`] batches. A failure is only logged.
    async fn seal(&self) -> u64 {
        let keys = &self.config.secrets_keys;
        let (mut done, mut from) = (SealedRows::default(), Some(0));
        for _ in 0..PRUNE_BATCHES_PER_PASS {
            let Some(start) = from else { break };
            match self.store.seal_endpoints(keys, start, SEAL_BATCH).await {
                Ok((batch, next)) => {
                    done.add(batch);
                    from = next;
                }
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, "secrets not sealed, the next pass tries again: {e}");
                    break;
                }
            }
        }
        if done.sealed > 0 {
            let key = keys.sealing_id().unwrap_or_default();
            tracing::info!(target: LOG_TARGET, "sealed the secrets of {} endpoint(s) with key {key}", done.sealed);
        }
        done.sealed
    }

    /// `SCHEDULER_WORKERS` claim → publish → mark loops of one kind at once: while one waits
    /// for the broker's acknowledgements another claims, so the database and the broker are
    /// busy together. (`FOR UPDATE SKIP LOCKED` keeps their claims apart on PostgreSQL;
    /// SQLite's single connection takes them in turn.)
    async fn workers<K: Kind>(&self, kind: &K) -> Result<PassReport, StoreError> {
        let workers = self.config.workers.max(1);
        let parts = futures::future::try_join_all((0..workers).map(|_| self.until_done(kind))).await?;
        let mut report = PassReport::default();
        parts.into_iter().for_each(|p| report.absorb(p));
        Ok(report)
    }

    /// The loop: claims a batch, publishes it, marks it; again while batches come full and
    /// wholly acknowledged.
    async fn until_done<K: Kind>(&self, kind: &K) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        loop {
            let claimed = kind.claim(&self.db(), &self.claim_request(now())).await?;
            if claimed.is_empty() {
                break;
            }
            let full = claimed.len() as i64 == self.config.batch;
            if !self.publish_batch(kind, claimed, &mut report).await? || !full {
                break;
            }
        }
        Ok(report)
    }

    /// Publishes a claimed batch and marks what the sink acknowledged. Returns whether every
    /// event of the batch was acknowledged.
    async fn publish_batch<K: Kind>(
        &self,
        kind: &K,
        claimed: Vec<K::Claimed>,
        report: &mut PassReport,
    ) -> Result<bool, StoreError> {
        self.note_republished(K::again(&claimed), K::WHAT, report);
        let (targets, events): (Vec<K::Target>, Vec<Outgoing>) = kind
            .events(&self.db(), claimed, report)
            .await?
            .into_iter()
            .unzip();
        let results = self.publisher.publish(&events).await;
        let mut acked = Vec::with_capacity(targets.len());
        for ((target, event), result) in targets.into_iter().zip(&events).zip(results) {
            match result {
                Ok(()) => {
                    K::acknowledged(&target, event);
                    acked.push(target);
                }
                Err(e) => record_failure(report, &event.id, e.0),
            }
        }
        kind.mark(&self.db(), &acked, now()).await?;
        K::count(&acked, report);
        Ok(acked.len() == events.len())
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
}

fn record_failure(report: &mut PassReport, event_id: &str, reason: String) {
    tracing::warn!(event_id, "not published, will retry after the lease: {reason}");
    report.failed += 1;
    if report.first_error.is_none() {
        report.first_error = Some(reason);
    }
}
