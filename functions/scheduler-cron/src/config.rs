//! scheduler-cron's settings.

use secrecy::SecretString;
use todo_events_domain::{HumanDuration, Retention};
use todo_events_host::config::{var, var_or, ConfigError};

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// `SCHEDULER_BATCH`: rows claimed per statement (default 500).
    pub batch: i64,
    /// `SCHEDULER_WORKERS`: claim → publish → mark loops running at once (default 4).
    pub workers: usize,
    /// `SCHEDULER_LEASE`: how long claimed rows stay with this scheduler before another
    /// may claim (and republish) them (default 1m).
    pub lease: HumanDuration,
    /// `SCHEDULER_REPUBLISH_AFTER`: an item published this long ago whose effect has not
    /// happened (reminder not mailed, occurrence not instantiated) is published again, at
    /// most 3 times (default 10m; `0s` turns it off). The safety net for messages the broker
    /// lost or a consumer group skipped.
    pub republish_after: Option<HumanDuration>,
    /// `SCHEDULER_ID`: the claim owner (default host name + process id + random suffix).
    pub owner: String,
    /// `SINK_REMINDERS` / `SINK_TASK_EVENTS` (or `K_SINK` for both): HTTP sinks.
    pub sink_reminders: Option<String>,
    pub sink_task_events: Option<String>,
    /// `SINK_TIMEOUT`: per-request timeout of the HTTP publisher (default 10s).
    pub sink_timeout: HumanDuration,
    /// `AUTH_TOKEN`: the functions' shared token, sent to the HTTP sinks as a bearer token
    /// (the same Secret key the functions check; docs/DEPLOYMENT.md "Authentication").
    pub sink_token: Option<SecretString>,
    /// `NOTIFICATION_EVENTS` (`on` / `off`, default `off`): publish what came of each
    /// reminder (`dev.todo.notification.*`, recorded by notify) to `KAFKA_TOPIC_NOTIFICATIONS`
    /// (default `notifications`) or to `SINK_NOTIFICATIONS` (docs/PREFERENCES.md).
    pub notification_events: bool,
    /// `SINK_NOTIFICATIONS`: the status events' HTTP sink (with `NOTIFICATION_EVENTS=on`
    /// and no `KAFKA_BROKERS`).
    pub sink_notifications: Option<String>,
    /// `NOTIFICATION_EVENTS_RETENTION`: status events recorded longer ago are deleted, by
    /// each pass, published or not (default 30d; `off` keeps them for good).
    pub notification_retention: Retention,
    /// `HISTORY_RETENTION`: deliveries (and the agendas') finished longer ago are deleted by
    /// each pass (default 30d, longer than any event can still arrive: docs/DESIGN.md,
    /// "History"; `off` keeps them for good).
    pub history_retention: Retention,
    /// `HISTORY_PRUNE_BATCH`: rows each prune statement deletes at most (default 1000); a
    /// pass runs at most [`PRUNE_BATCHES_PER_PASS`] of them per table, for at most
    /// `pass::PRUNE_BUDGET`.
    pub prune_batch: i64,
    /// `SECRETS_KEYS`: with keys, each pass seals the endpoints' secrets and keys stored
    /// plain or under another key than the first (docs/CHANNELS.md, "Secrets at rest").
    pub secrets_keys: todo_events_store::sealed::Keys,
}

/// The batches of each table one pass prunes at most (within `pass::PRUNE_BUDGET`): far
/// above what a year's traffic adds (≈ 180 M deliveries a year is 350 a minute, one batch),
/// so that a backlog (the retention turned on over a year of history) drains pass after pass
/// without one pass holding the due items up for long. `todo-events prune` drains it at once.
pub const PRUNE_BATCHES_PER_PASS: usize = 20;

/// The defaults of both retentions: 30 days (docs/DESIGN.md, "History").
pub const DEFAULT_RETENTION: Retention = Retention::days(30);
/// The default of `HISTORY_PRUNE_BATCH`: small enough that one batch is a few tens of
/// milliseconds of the database's time (docs/PERFORMANCE.md, "Prune under load").
pub const DEFAULT_PRUNE_BATCH: i64 = 1_000;

impl SchedulerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let k_sink: Option<String> = var("K_SINK")?;
        let cfg = Self {
            batch: var_or("SCHEDULER_BATCH", 500)?,
            workers: var_or("SCHEDULER_WORKERS", 4)?,
            lease: var_or(
                "SCHEDULER_LEASE",
                HumanDuration(std::time::Duration::from_secs(60)),
            )?,
            republish_after: Some(var_or(
                "SCHEDULER_REPUBLISH_AFTER",
                HumanDuration(std::time::Duration::from_secs(600)),
            )?)
            .filter(|after| !after.0.is_zero()),
            owner: var_or("SCHEDULER_ID", default_owner())?,
            sink_reminders: var("SINK_REMINDERS")?.or_else(|| k_sink.clone()),
            sink_task_events: var("SINK_TASK_EVENTS")?.or(k_sink),
            sink_timeout: var_or("SINK_TIMEOUT", HumanDuration(std::time::Duration::from_secs(10)))?,
            notification_events: on_off("NOTIFICATION_EVENTS")?,
            sink_notifications: var("SINK_NOTIFICATIONS")?,
            notification_retention: var_or("NOTIFICATION_EVENTS_RETENTION", DEFAULT_RETENTION)?,
            history_retention: var_or("HISTORY_RETENTION", DEFAULT_RETENTION)?,
            prune_batch: var_or("HISTORY_PRUNE_BATCH", DEFAULT_PRUNE_BATCH)?,
            secrets_keys: todo_events_host::config::secrets_keys()?,
            sink_token: var::<String>("AUTH_TOKEN")?.map(SecretString::from),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The bounds of the numbers, and the sinks' URLs.
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.batch) {
            return Err(ConfigError(format!(
                "SCHEDULER_BATCH={} must be between 1 and 10000",
                self.batch
            )));
        }
        if !(1..=64).contains(&self.workers) {
            return Err(ConfigError(format!(
                "SCHEDULER_WORKERS={} must be between 1 and 64",
                self.workers
            )));
        }
        if !(1..=100_000).contains(&self.prune_batch) {
            return Err(ConfigError(format!(
                "HISTORY_PRUNE_BATCH={} must be between 1 and 100000",
                self.prune_batch
            )));
        }
        if self.lease.0.as_millis() < 1000 {
            return Err(ConfigError("SCHEDULER_LEASE must be at least 1s".into()));
        }
        for (name, url) in [
            ("SINK_REMINDERS", &self.sink_reminders),
            ("SINK_TASK_EVENTS", &self.sink_task_events),
            ("SINK_NOTIFICATIONS", &self.sink_notifications),
        ] {
            if let Some(u) = url {
                check_sink_url(name, u)?;
            }
        }
        Ok(())
    }

    /// Local defaults: the functions on 127.0.0.1:8001 / :8002.
    pub fn local(sink_reminders: String, sink_task_events: String) -> Self {
        Self {
            batch: 500,
            // One loop: the embedded SQLite takes claims in turn anyway, and the demo's
            // log stays in due order.
            workers: 1,
            lease: HumanDuration(std::time::Duration::from_secs(60)),
            republish_after: Some(HumanDuration(std::time::Duration::from_secs(600))),
            owner: default_owner(),
            sink_reminders: Some(sink_reminders),
            sink_task_events: Some(sink_task_events),
            sink_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            sink_token: None,
            notification_events: false,
            sink_notifications: None,
            notification_retention: DEFAULT_RETENTION,
            history_retention: DEFAULT_RETENTION,
            prune_batch: DEFAULT_PRUNE_BATCH,
            secrets_keys: Default::default(),
        }
    }
}

/// `on` or `off` (default `off`).
fn on_off(name: &str) -> Result<bool, ConfigError> {
    match var::<String>(name)?.as_deref() {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(other) => Err(ConfigError(format!("{name}={other:?} must be on or off"))),
    }
}

/// A sink must be an http:// or https:// URL.
fn check_sink_url(name: &str, u: &str) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(u).map_err(|e| ConfigError(format!("{name}={u:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError(format!(
            "{name}={u:?} must be an http:// or https:// URL"
        )));
    }
    Ok(())
}

/// `<host>-<pid>-<random>`: unique per process, readable in the database.
pub fn default_owner() -> String {
    let host = todo_events_host::config::env_var("HOSTNAME").unwrap_or_else(|_| "scheduler".into());
    format!("{host}-{}-{:08x}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}
