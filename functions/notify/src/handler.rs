//! The notify logic: one reminder event in, each of its deliveries made at most once.
//!
//! A reminder is delivered on each channel it names: e-mail to its user, and each active
//! endpoint of the user on the other channels ([`crate::plan`]). Each delivery is claimed,
//! sent and recorded on its own, so one channel that fails neither holds back nor repeats
//! another. A batch of events of distinct reminders (HTTP hands over one, the consumer what a
//! partition has queued) goes through named steps. What flows between them is the delivery
//! ([`delivery`]): a value whose type says how far it got (planned, claimed, attempted,
//! ended), which each step takes and gives back, so each step is given only what is still
//! without an answer:
//!
//! 1. [`Notify::read`]: the reminders with their tasks, recipients and endpoints, and for a
//!    moved one whether its event's own time was sent, in one statement;
//! 2. [`Notify::decide`]: each event decided ([`decide::decide`], pure: skip, stale or
//!    duplicate (the reminder was moved), or send), then the deliveries it asks for
//!    ([`crate::plan::plan`], pure);
//!    A reminder due inside its user's quiet hours is put off to their end instead
//!    ([`Notify::defer`], one statement for the batch; docs/PREFERENCES.md);
//! 3. [`Notify::claim`]: the deliveries, new ones in one statement, those claimed before in
//!    another; a claim somebody else holds is waited for (one statement per look), an
//!    expired lease taken over, a finished delivery answers duplicate;
//! 4. [`Notify::send`]: compose each mail and send them together, the webhooks and pushes
//!    beside them;
//! 5. [`Notify::record`]: the transient failures' claims given back in one statement (held
//!    until the receiver's `Retry-After`), every outcome in one, the push subscriptions that
//!    are gone deactivated in one. Claims are fenced (`todo_events_store::notify`): an
//!    outcome or a release of a claim that was taken over meanwhile changes nothing, and the
//!    event is not answered as if it had been recorded;
//! 6. [`Notify::answer`]: the deliveries' ends back with their events, by reminder, the
//!    reminders whose deliveries were all done before settled in one statement, and one
//!    answer per event ([`answer::answer`], pure; the step writes what it says to log).
//! 7. [`Notify::record_statuses`]: what came of each reminder, for the todo app, in one
//!    statement ([`status`]); a failure there is logged, never answered.
//!
//! So a batch costs at most nine statements however many events, routes and failures it
//! holds (one more per look while another delivery holds a claim, and per retry of the
//! outcomes while the database is away); a step with nothing to do sends none.
//!
//! E-mail goes through the operator's relay, shared by every user, and a user's webhook or
//! push endpoint is the user's own: a transient failure of the first makes the event come
//! again, one of the second is retried on its own schedule without holding the event up
//! ([`retry`]).

mod answer;
mod claim;
mod decide;
mod defer;
mod delivery;
mod log;
mod metrics;
mod preferences;
mod record;
mod requests;
mod respond;
mod retry;
mod send;
mod status;

use self::metrics::Metrics;
use crate::channels::guard::Guard;
use crate::channels::webhook::Webhooks;
use crate::channels::webpush::WebPush;
use crate::config::{ChannelSettings, NotifyConfig};
use crate::event::{ByKind, NotifyEvent, NotifyKey};
use crate::mail::{Composer, Mailer};
use crate::plan::Checks;
use crate::resting::Resting;
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use todo_events_domain::{EventKind, ReminderDue, ReminderId};
use todo_events_host::config::ConfigError;
use todo_events_host::{Answers, Event, Failure, Function, Reply};
use todo_events_store::notify::Found;
use todo_events_store::Store;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// The batch's reminders as read, by id: each with its task, recipient and endpoints, or why
/// its stored row cannot be read; and whether a moved one's event time was sent.
type Contexts = HashMap<ReminderId, Found>;

/// The notify function. Cheap to clone: a send that outlasts its batch's patience goes on in
/// a task of its own ([`send`]), which holds a handle to record its outcome with.
#[derive(Clone)]
pub struct Notify(Arc<Parts>);

/// What notify is made of; [`Notify`] derefs to it.
pub struct Parts {
    pub(crate) store: Store,
    pub(crate) mailer: Mailer,
    pub(crate) composer: Composer,
    pub(crate) webhooks: Webhooks,
    /// `None`: Web Push is off (no VAPID key).
    pub(crate) webpush: Option<WebPush>,
    pub(crate) guard: Guard,
    metrics: Metrics,
    pub(crate) config: NotifyConfig,
    /// Endpoints that failed transiently, not tried before their retry time.
    resting: Resting,
    /// Webhook and push requests in flight at once, the batches' and those going on alone.
    http_sends: Semaphore,
    /// The requests going on without their batch, waited for at shutdown.
    alone: TaskTracker,
}

impl std::ops::Deref for Notify {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl Notify {
    pub fn new(store: Store, config: NotifyConfig) -> Result<Self, String> {
        let mailer = Mailer::from_config(&config)?;
        let composer = Composer::from_config(&config)?;
        let guard = guard(&config.channels);
        let webhooks = Webhooks::new(guard.clone(), config.channels.timeout);
        let webpush = webpush(&config.channels, &guard)?;
        Ok(Self(Arc::new(Parts {
            store,
            mailer,
            composer,
            webhooks,
            webpush,
            guard,
            metrics: Metrics::new()?,
            config,
            resting: Resting::default(),
            http_sends: Semaphore::new(send::HTTP_SENDS_AT_ONCE),
            alone: TaskTracker::new(),
        })))
    }

    fn lease(&self) -> Duration {
        Duration::from_std(self.config.delivery_lease.0).unwrap_or(Duration::minutes(2))
    }

    /// What the planned endpoints are checked with (`crate::plan`).
    pub(crate) fn checks(&self) -> Checks<'_> {
        Checks {
            guard: &self.guard,
            push_on: self.webpush.is_some(),
            keys: &self.config.secrets_keys,
        }
    }

    /// The start-up check of `SECRETS_KEYS` against the secrets stored sealed: the most
    /// recent sealed endpoints, one value per key id they name, must open. A key missing or
    /// wrong stops the start (nothing is sent); a database that does not answer yet is only
    /// warned about (an endpoint that does not open waits for its key: `crate::plan`).
    pub async fn check_sealed_secrets(&self) -> Result<(), ConfigError> {
        const SAMPLE: i64 = 1_000;
        let rows = match self.store.sealed_endpoints(SAMPLE).await {
            Ok(rows) => rows,
            Err(e) if e.is_transient() => {
                tracing::warn!("the sealed secrets are not checked at start: {e}");
                return Ok(());
            }
            Err(e) => return Err(ConfigError(format!("the sealed secrets cannot be read: {e}"))),
        };
        todo_events_store::sealed::check(&self.config.secrets_keys, &rows).map_err(ConfigError)?;
        if let Some(id) = self.config.secrets_keys.sealing_id() {
            tracing::info!("SECRETS_KEYS opens the endpoints' sealed secrets; key {id} seals new ones");
        }
        Ok(())
    }

    /// Step 1: the contexts of the batch's reminders, each with its event's time, in one
    /// statement.
    async fn read(&self, events: &[Event<ReminderDue>]) -> Result<Contexts, Failure> {
        let asked: Vec<_> = events
            .iter()
            .map(|(_, due)| (due.reminder_id, due.remind_at))
            .collect();
        Ok(self.store.reminder_contexts(&asked).await?)
    }
}

/// The guard on webhook and push targets, as configured; said in the log when it lets
/// private addresses through.
fn guard(channels: &ChannelSettings) -> Guard {
    let guard = Guard {
        allow_private: channels.allow_private,
        ports: channels.allowed_ports.clone(),
        deny: channels.deny_cidrs.clone(),
    };
    if guard.allow_private {
        tracing::warn!(
            "WEBHOOK_ALLOW_PRIVATE=true: webhook and push targets may be http:// and loopback or \
             private addresses; never use this where users register endpoints"
        );
    }
    guard
}

/// Web Push, when its VAPID key is set (else said in the log).
fn webpush(channels: &ChannelSettings, guard: &Guard) -> Result<Option<WebPush>, String> {
    let Some(settings) = &channels.vapid else {
        tracing::info!("Web Push is off: VAPID_PRIVATE_KEY and VAPID_SUBJECT are not set");
        return Ok(None);
    };
    Ok(Some(WebPush::new(
        guard.clone(),
        channels.timeout,
        settings.vapid()?,
        channels.push_ttl,
    )))
}

impl Function for Notify {
    const NAME: &'static str = "notify";
    const ACCEPTS: EventKind = EventKind::ReminderDue;
    const REPLY_PREFIX: &'static str = "dev.todo.notification";
    type Data = NotifyEvent;
    type Key = NotifyKey;

    fn key(event: &NotifyEvent) -> NotifyKey {
        match event {
            NotifyEvent::Reminder(due) => NotifyKey::Reminder(due.reminder_id),
            NotifyEvent::Agenda(due) => NotifyKey::Agenda(due.user_id),
        }
    }

    fn store(&self) -> &Store {
        &self.store
    }

    /// `SECRETS_KEYS` against the secrets stored sealed ([`Notify::check_sealed_secrets`]).
    async fn check_at_start(&self) -> anyhow::Result<()> {
        Ok(self.check_sealed_secrets().await?)
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        self.metrics.collectors()
    }

    /// The webhook and push requests still going on without their batch: each ends within
    /// `WEBHOOK_TIMEOUT` and records its outcome.
    async fn finish_background(&self) {
        self.alone.close();
        self.alone.wait().await;
    }

    /// The reminders and the agendas of the batch, each kind through its own steps
    /// ([`Notify::reminders`], [`crate::agenda`]), side by side; the answers in the events'
    /// order.
    async fn handle_distinct(&self, events: &[Event<NotifyEvent>]) -> Vec<Result<Reply, Failure>> {
        let ByKind { reminders, agendas } = ByKind::of(events);
        let (r, a) = tokio::join!(self.reminders(&reminders.1), self.agendas(&agendas.1));
        let mut answers = Answers::new(events.len());
        for (i, answer) in reminders.0.into_iter().zip(r).chain(agendas.0.into_iter().zip(a)) {
            answers.set(i, answer);
        }
        answers.finish()
    }
}

impl Notify {
    /// A batch of reminder events: read → decide and plan → claim → send → record → answer
    /// (see the module docs).
    pub(crate) async fn reminders(&self, events: &[Event<ReminderDue>]) -> Vec<Result<Reply, Failure>> {
        if events.is_empty() {
            return Vec::new();
        }
        let contexts = match self.read(events).await {
            Ok(contexts) => contexts,
            Err(failure) => return Answers::all(events.len(), failure),
        };
        let (decided, planned) = self.decide(events, &contexts);
        let decided = self.defer(decided).await;
        // The claims are ours until their lease runs out, counted from here.
        let claims_expire = tokio::time::Instant::now() + self.config.delivery_lease.0;
        let (claimed, mut ended) = self.claim(planned).await;
        let (attempted, alone) = self.send(claimed, claims_expire).await;
        ended.extend(alone);
        ended.extend(self.record(attempted, claims_expire).await);
        let answers = self.answer(decided, ended).await;
        self.record_statuses(events, &contexts, &answers).await;
        answers
    }
}

/// What the module tests share: an event and its reminder's row.
#[cfg(test)]
pub(crate) mod tests {
    use chrono::{DateTime, Utc};
    use todo_events_domain::{ReminderDue, ReminderId, TaskId, UserId};
    use todo_events_store::{ReminderContext, ReminderState, TaskStatus};

    pub(crate) fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The scheduler's event for [`row`]'s reminder.
    pub(crate) fn due() -> ReminderDue {
        ReminderDue {
            reminder_id: ReminderId::new(1).unwrap(),
            task_id: TaskId::new(2).unwrap(),
            user_id: UserId::new(3).unwrap(),
            remind_at: at("2026-11-30T09:00:00Z"),
        }
    }

    /// A due reminder of an open task, e-mail only (the plan's tests start from it too).
    pub(crate) fn row() -> ReminderContext {
        ReminderContext {
            reminder_id: ReminderId::new(1).unwrap(),
            task_id: TaskId::new(2).unwrap(),
            user_id: UserId::new(3).unwrap(),
            remind_at: at("2026-11-30T09:00:00Z"),
            state: ReminderState::Published,
            task_title: "Water the plants".into(),
            task_description: String::new(),
            task_status: TaskStatus::Todo,
            task_due_at: None,
            email: "ada@example.test".into(),
            display_name: "Ada".into(),
            timezone: "Europe/Berlin".into(),
            channels: todo_events_store::Channels::email_only(),
            endpoints: Vec::new(),
            urgent: false,
            deferred_until: None,
            quiet_hours: Ok(None),
            locale: Ok("en".into()),
        }
    }
}
