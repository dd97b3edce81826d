//! The notify logic: one reminder event in, each of its deliveries made at most once.
//!
//! A reminder is delivered on each channel it names: e-mail to its user, and each active
//! endpoint of the user on the other channels ([`crate::plan`]). Each delivery is claimed,
//! sent and recorded on its own, so one channel that fails neither holds back nor repeats
//! another. A batch of events of distinct reminders (HTTP hands over one, the consumer what a
//! partition has queued) goes through named steps, each given only what is still without an
//! answer:
//!
//! 1. [`Notify::read`]: the reminders with their tasks, recipients and endpoints, in one
//!    statement;
//! 2. [`decide`] (pure): skip, stale (the reminder was moved), or send; then
//!    [`crate::plan::plan`] (pure): the deliveries it asks for;
//! 3. [`Notify::claim`]: the deliveries, new ones in one statement; a claim somebody else
//!    holds waits for it, takes an expired lease over, or answers duplicate;
//! 4. [`Notify::send`]: compose each mail and send them together, the webhooks and pushes
//!    beside them;
//! 5. [`Notify::record`]: every outcome in one statement; a transient failure gives its
//!    claim back (held until the receiver's `Retry-After`), a push subscription that is gone
//!    is deactivated. Claims are fenced (`todo_events_store::notify`): an outcome or a
//!    release of a claim that was taken over meanwhile changes nothing, and the event is
//!    not answered as if it had been recorded;
//! 6. [`answer`] (pure): one answer per event from its deliveries' ends.
//!
//! E-mail goes through the operator's relay, shared by every user: its transient failure
//! is the event's (`503`, retried). A user's own webhook or push endpoint is not allowed to
//! hold the event up: its transient failure gives the claim back until its own retry time
//! (`CHANNEL_RETRY_FIRST` doubling per attempt, at least the receiver's `Retry-After`, at
//! most [`CHANNEL_RETRY_CAP`]) and the event is answered `2xx` with the other deliveries
//! done; the scheduler's retry pass publishes the event again at that time, and after
//! `CHANNEL_RETRY_ATTEMPTS` attempts the delivery is given up (`failed`, with why).

use crate::channels::guard::{redacted, Guard};
use crate::channels::webhook::Webhooks;
use crate::channels::webpush::WebPush;
use crate::channels::{delivery_id, Notice, SendError};
use crate::config::{NotifyConfig, CHANNEL_RETRY_CAP};
use crate::hide::Hidden;
use crate::mail::{message_id, Composer, MailError, Mailer, ReminderMail};
use crate::plan::{plan, Target};
use crate::resting::Resting;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use prometheus::{IntCounterVec, Opts};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration as StdDuration;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{DeliveryId, EventKind, HumanDuration, ReminderDue, ReminderId};
use todo_events_host::{Answers, Event, Failure, Function, Outcome, Reply};
use todo_events_store::notify::{Claim, Finished, Held, NewClaim, Route};
use todo_events_store::{
    Channel, DeliveryStatus, Malformed, ReminderContext, ReminderState, Store, StoreError,
};

/// How long a delivery waits for a concurrent delivery of the same event to finish before
/// answering "in progress" (which Knative and the consumer retry).
const WAIT_FOR_OTHER: StdDuration = StdDuration::from_secs(5);

/// Pauses between attempts to record outcomes while the database is away (doubling).
const RECORD_RETRY_FIRST: StdDuration = StdDuration::from_millis(100);
const RECORD_RETRY_MAX: StdDuration = StdDuration::from_secs(2);

/// Webhook and push requests of a batch in flight at once.
const HTTP_SENDS_AT_ONCE: usize = 32;

pub struct Notify {
    store: Store,
    mailer: Mailer,
    composer: Composer,
    webhooks: Webhooks,
    /// `None`: Web Push is off (no VAPID key).
    webpush: Option<WebPush>,
    guard: Guard,
    deliveries: IntCounterVec,
    config: NotifyConfig,
    /// Endpoints that failed transiently, not tried before their retry time.
    resting: Resting,
}

impl Notify {
    pub fn new(store: Store, config: NotifyConfig) -> Result<Self, String> {
        let mailer = Mailer::from_config(&config)?;
        let composer = Composer::from_config(&config)?;
        let channels = &config.channels;
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
        let webhooks = Webhooks::new(guard.clone(), channels.timeout);
        let webpush = match &channels.vapid {
            Some(settings) => Some(WebPush::new(
                guard.clone(),
                channels.timeout,
                settings.vapid()?,
                channels.push_ttl,
            )),
            None => {
                tracing::info!("Web Push is off: VAPID_PRIVATE_KEY and VAPID_SUBJECT are not set");
                None
            }
        };
        let deliveries = IntCounterVec::new(
            Opts::new(
                "deliveries_total",
                "Deliveries of reminders, by channel and how they ended: sent, failed (for good), \
                 gone (push subscription ended, deactivated), retry (transient, the event \
                 retried), scheduled (a webhook or push failed transiently: retried on its own \
                 schedule, the event answered), duplicate (done before), held (cannot be made now)",
            )
            .const_label("function", "notify"),
            &["channel", "outcome"],
        )
        .map_err(|e| e.to_string())?;
        // Every series from the start (at 0), so that dashboards and alerts see them before
        // the first delivery.
        for channel in Channel::ALL {
            for outcome in [
                "sent",
                "failed",
                "gone",
                "retry",
                "scheduled",
                "duplicate",
                "held",
            ] {
                deliveries.with_label_values(&[channel.as_str(), outcome]);
            }
        }
        Ok(Self {
            store,
            mailer,
            composer,
            webhooks,
            webpush,
            guard,
            deliveries,
            config,
            resting: Resting::default(),
        })
    }

    fn lease(&self) -> Duration {
        Duration::from_std(self.config.delivery_lease.0).unwrap_or(Duration::minutes(2))
    }

    fn count(&self, channel: Channel, outcome: &str) {
        self.deliveries
            .with_label_values(&[channel.as_str(), outcome])
            .inc();
    }
}

/// What a reminder event asks for, decided from its reminder's row and the clock alone.
///
/// An answer goes back to whoever sent the event, so what it says names only what was wrong
/// with the request (an id that matches nothing, a `remind_at` that is not the reminder's),
/// never what is stored (another time, another owner); the stored side goes to the log.
#[derive(Debug, PartialEq)]
enum Decision<'c> {
    /// Nothing to send: what the caller is told, and what the log gets beside it.
    Skip { reason: &'static str, detail: String },
    /// The reminder is due later than now (beyond the clock-skew tolerance): nothing is sent
    /// and nothing written, so the scheduler still sends it at its time.
    NotDue,
    /// The reminder was moved: the event is stale, or a duplicate if its own time was
    /// delivered already.
    Moved { to: DateTime<Utc> },
    /// Plan, claim and make the deliveries of this reminder.
    Send(&'c ReminderContext),
}

/// The answer to an event whose ids match no reminder, whether none exists or it belongs to
/// another task or user: the two are told apart only in the log.
const NO_SUCH_REMINDER: &str = "no reminder matches the event's reminder_id, task_id and user_id";

/// Decides one event from its reminder's row (`None`: no such reminder) at `now`, allowing
/// `tolerance` of clock skew.
fn decide<'c>(
    due: &ReminderDue,
    row: Option<&'c Result<ReminderContext, Malformed>>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Decision<'c> {
    let ctx = match row {
        None => {
            return Decision::Skip {
                reason: NO_SUCH_REMINDER,
                detail: format!("reminder {} does not exist (deleted?)", due.reminder_id),
            }
        }
        Some(Err(malformed)) => {
            return Decision::Skip {
                reason: "the stored reminder cannot be read (the function's log says why)",
                detail: format!("the stored reminder cannot be read: {malformed}"),
            }
        }
        Some(Ok(ctx)) => ctx,
    };
    if ctx.task_id != due.task_id || ctx.user_id != due.user_id {
        return Decision::Skip {
            reason: NO_SUCH_REMINDER,
            detail: format!(
                "the event names task {} and user {}, but reminder {} belongs to task {} and user {}",
                due.task_id, due.user_id, due.reminder_id, ctx.task_id, ctx.user_id
            ),
        };
    }
    if ctx.state == ReminderState::Cancelled {
        return Decision::Skip {
            reason: "the reminder was cancelled",
            detail: format!("reminder {} was cancelled", due.reminder_id),
        };
    }
    if ctx.task_status.is_closed() {
        return Decision::Skip {
            reason: "the reminder's task is closed",
            detail: format!("task {} is {} already", ctx.task_id, ctx.task_status),
        };
    }
    if ctx.remind_at != due.remind_at {
        return Decision::Moved { to: ctx.remind_at };
    }
    if ctx.remind_at > now + tolerance {
        return Decision::NotDue;
    }
    Decision::Send(ctx)
}

fn details_of(due: &ReminderDue) -> serde_json::Value {
    json!({
        "reminder_id": due.reminder_id, "task_id": due.task_id,
        "user_id": due.user_id, "remind_at": rfc3339(due.remind_at),
    })
}

/// `skipped`, telling the caller `reason` and the log `detail`.
fn skipped(due: &ReminderDue, reason: &str, detail: &str) -> Reply {
    tracing::info!(reminder_id = %due.reminder_id, "reminder skipped: {detail}");
    Reply::new(Outcome::Skipped, reason, details_of(due))
}

/// The answer to an event that came before its reminder was due.
fn not_due_yet(due: &ReminderDue) -> Reply {
    tracing::warn!(
        reminder_id = %due.reminder_id,
        "reminder event before its time, nothing sent: remind_at {} is later than now \
         (beyond CLOCK_SKEW_TOLERANCE); the scheduler sends it when it is due",
        rfc3339(due.remind_at)
    );
    Reply::not_due_yet(
        "the reminder is not due yet: remind_at is later than now; it is sent when due",
        details_of(due),
    )
}

/// An event whose deliveries are planned: its reminder, what waits, what leads nowhere.
struct Planned<'c> {
    ctx: &'c ReminderContext,
    held: Option<String>,
    notes: Vec<String>,
}

/// One delivery of event `event`, planned.
struct Delivery<'c> {
    event: usize,
    ctx: &'c ReminderContext,
    route: Route,
    target: Target,
}

/// A delivery whose claim this call holds: its row and fencing token, and when the
/// delivery was first claimed.
struct Claimed<'c> {
    delivery: Delivery<'c>,
    held: Held,
    since: DateTime<Utc>,
}

/// How one delivery ended in this call.
#[derive(Debug)]
enum Ended {
    /// Sent now; the id the receiver knows it by (Message-ID, `webhook-id`), and where it
    /// went (the mail's file or relay, the target without its path).
    Sent { message_id: String, place: String },
    /// Failed for good now (recorded); why.
    Failed(String),
    /// The push subscription is gone (recorded failed, the endpoint deactivated); why.
    Gone(String),
    /// Done before, or being done by another delivery: as found.
    Duplicate {
        status: DeliveryStatus,
        detail: Option<String>,
    },
    /// Not done; the event must come again (a transient failure, the database away).
    Retry(Failure),
    /// A webhook or push failed transiently (now, or before and its retry time has not
    /// come): retried on its own schedule, without holding the event up; why.
    Scheduled(String),
}

impl Ended {
    fn word(&self) -> &'static str {
        match self {
            Ended::Sent { .. } => "sent",
            Ended::Failed(_) => "failed",
            Ended::Gone(_) => "gone",
            Ended::Duplicate { .. } => "duplicate",
            Ended::Retry(_) => "retry",
            Ended::Scheduled(_) => "scheduled",
        }
    }
}

/// What the channel said about a delivery: where it went, or why not.
type Sent = Result<String, SendError>;

impl From<MailError> for SendError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Transient(reason) => SendError::transient(reason),
            MailError::Permanent(reason) => SendError::Permanent(reason),
        }
    }
}

/// Where a delivery went, as `deliveries.recipient` keeps it (never a URL's path: Slack's
/// and Discord's hold their secret there).
fn recipient(d: &Delivery<'_>) -> String {
    match &d.target {
        Target::Email => d.ctx.email.clone(),
        Target::Webhook(w) => redacted(&w.url),
        Target::WebPush(s) => redacted(&s.url),
        Target::Unusable(_) => d.route.to_string(),
    }
}

/// The id `deliveries` keeps for a delivery: the mail's Message-ID, else the deterministic
/// delivery id (what a webhook's receiver sees as `webhook-id`), both without a `Notice`.
fn delivery_message_id(d: &Delivery<'_>) -> String {
    match d.route.endpoint {
        None => message_id(d.ctx.reminder_id, d.ctx.remind_at),
        Some(endpoint) => delivery_id(d.ctx.reminder_id, d.ctx.remind_at, endpoint.get()),
    }
}

impl Notify {
    /// Step 1: the contexts of the batch's reminders, in one statement.
    async fn read(
        &self,
        events: &[Event<ReminderDue>],
    ) -> Result<HashMap<ReminderId, Result<ReminderContext, Malformed>>, Failure> {
        let ids: Vec<ReminderId> = events.iter().map(|(_, due)| due.reminder_id).collect();
        Ok(self.store.reminder_contexts(&ids).await?)
    }

    /// Step 2's one lookup: a moved reminder's event is a duplicate if its own time was
    /// delivered already (on any channel), else stale (skipped).
    async fn moved(&self, due: &ReminderDue, to: DateTime<Utc>) -> Result<Reply, Failure> {
        let earlier = self.store.deliveries_of(due.reminder_id).await?;
        if earlier
            .iter()
            .any(|d| d.remind_at == due.remind_at && d.status == DeliveryStatus::Sent)
        {
            return Ok(Reply::new(
                Outcome::Duplicate,
                "already sent for this time",
                details_of(due),
            ));
        }
        Ok(skipped(
            due,
            "remind_at does not match the reminder (it was moved)",
            &format!("reminder {} was moved to {}", due.reminder_id, rfc3339(to)),
        ))
    }

    /// Step 3: claims `wanted`, new claims in one statement, the others one by one
    /// ([`Notify::claim_held`]). A delivery whose claim is not ours ends here.
    async fn claim<'c>(
        &self,
        events: &[Event<ReminderDue>],
        wanted: Vec<Delivery<'c>>,
        ended: &mut [Vec<(Route, Ended)>],
    ) -> Vec<Claimed<'c>> {
        let claim_of = |d: &Delivery<'_>| NewClaim {
            reminder_id: d.ctx.reminder_id,
            remind_at: d.ctx.remind_at,
            route: d.route,
            event_id: &events[d.event].0,
        };
        let new: Vec<NewClaim<'_>> = wanted.iter().map(claim_of).collect();
        let claimed_at = now();
        let fresh: HashMap<(ReminderId, Route), DeliveryId> = match self
            .store
            .claim_new_deliveries(&new, claimed_at, self.lease())
            .await
        {
            Ok(claimed) => claimed.into_iter().collect(),
            Err(e) => {
                let failure = Failure::from(e);
                for d in wanted {
                    ended[d.event].push((d.route, Ended::Retry(failure.clone())));
                }
                return Vec::new();
            }
        };
        let mut claimed = Vec::with_capacity(wanted.len());
        for d in wanted {
            let claim = match fresh.get(&(d.ctx.reminder_id, d.route)) {
                Some(&delivery_id) => Ok(Claim::Claimed {
                    delivery_id,
                    attempt: 1,
                    since: claimed_at,
                }),
                None => self.claim_held(&claim_of(&d)).await,
            };
            match claim {
                Ok(Claim::Claimed {
                    delivery_id,
                    attempt,
                    since,
                }) => claimed.push(Claimed {
                    delivery: d,
                    held: Held { delivery_id, attempt },
                    since,
                }),
                // A user's endpoint waiting for its retry time: not this event's to wait for.
                Ok(Claim::Taken {
                    status: DeliveryStatus::Sending,
                    detail: Some(reason),
                    ..
                }) if d.route.channel != Channel::Email => ended[d.event].push((
                    d.route,
                    Ended::Scheduled(format!("{}: {reason} (retried on its own schedule)", d.route)),
                )),
                Ok(Claim::Taken { status, detail, .. }) => {
                    ended[d.event].push((d.route, Ended::Duplicate { status, detail }))
                }
                Err(failure) => ended[d.event].push((d.route, Ended::Retry(failure))),
            }
        }
        claimed
    }

    /// A delivery claimed before: waits briefly while another delivery of the same event
    /// holds it, takes it over once its lease ran out, or reports how it ended. A claim
    /// given back after a transient failure with a later retry time is not waited for: an
    /// e-mail's event is answered "unavailable" at once, a webhook's or push's claim is
    /// returned as it is (retried on its own schedule).
    async fn claim_held(&self, claim: &NewClaim<'_>) -> Result<Claim, Failure> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let found = self.store.claim_delivery(claim, now(), self.lease()).await?;
            match found {
                Claim::Taken {
                    status: DeliveryStatus::Sending,
                    detail: Some(reason),
                    lease_until,
                } if lease_until - now() > Duration::from_std(WAIT_FOR_OTHER).unwrap_or_default() => {
                    if claim.route.channel != Channel::Email {
                        return Ok(Claim::Taken {
                            status: DeliveryStatus::Sending,
                            detail: Some(reason),
                            lease_until,
                        });
                    }
                    return Err(Failure::unavailable(format!(
                        "the {} of reminder {} waits until {} (the receiver asked): {reason}",
                        claim.route,
                        claim.reminder_id,
                        rfc3339(lease_until)
                    )));
                }
                Claim::Taken {
                    status: DeliveryStatus::Sending,
                    ..
                } if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(StdDuration::from_millis(100)).await;
                }
                Claim::Taken {
                    status: DeliveryStatus::Sending,
                    ..
                } => {
                    return Err(Failure::InProgress(format!(
                        "reminder {} is being delivered by another request",
                        claim.reminder_id
                    )))
                }
                other => return Ok(other),
            }
        }
    }

    /// The notice a reminder becomes on channels beside e-mail.
    fn notice<'c>(&self, ctx: &'c ReminderContext) -> Notice<'c> {
        Notice {
            reminder_id: ctx.reminder_id,
            task_id: ctx.task_id,
            user_id: ctx.user_id,
            remind_at: ctx.remind_at,
            task_title: &ctx.task_title,
            task_due_at: ctx.task_due_at,
            timezone: &ctx.timezone,
            task_url: format!(
                "{}/tasks/{}",
                self.config.app_url.trim_end_matches('/'),
                ctx.task_id
            ),
        }
    }

    /// Step 4: composes each claimed e-mail and sends them together; the webhooks and pushes
    /// go out beside them, [`HTTP_SENDS_AT_ONCE`] at a time.
    async fn send<'c>(&self, claimed: Vec<Claimed<'c>>) -> Vec<(Claimed<'c>, Sent)> {
        let mut done = Vec::with_capacity(claimed.len());
        let (mut messages, mut mails, mut http) = (Vec::new(), Vec::new(), Vec::new());
        for c in claimed {
            match &c.delivery.target {
                Target::Email => match self.compose(c.delivery.ctx) {
                    Ok(message) => {
                        messages.push(message);
                        mails.push(c);
                    }
                    Err(e) => done.push((c, Err(e.into()))),
                },
                Target::Unusable(why) => {
                    let why = SendError::Permanent(why.clone());
                    done.push((c, Err(why)));
                }
                Target::Webhook(_) | Target::WebPush(_) => match self.resting_until(&c) {
                    Some(rest) => done.push((c, Err(rest))),
                    None => http.push(c),
                },
            }
        }
        let stamp = now().timestamp();
        let count = http.len();
        let requests: Vec<_> = http.into_iter().map(|c| self.request(c, stamp)).collect();
        let requests = async move {
            let mut stream = futures::stream::iter(requests).buffer_unordered(HTTP_SENDS_AT_ONCE);
            let mut requested = Vec::with_capacity(count);
            while let Some(one) = stream.next().await {
                requested.push(one);
            }
            requested
        };
        let (mailed, requested) = tokio::join!(self.mailer.send_all(messages), requests);
        requested.iter().for_each(|(c, sent)| self.learn(c, sent));
        done.extend(
            mails
                .into_iter()
                .zip(mailed)
                .map(|(c, r)| (c, r.map_err(SendError::from))),
        );
        done.extend(requested);
        done
    }

    /// Why `c` is not sent now, when its endpoint rests after a transient failure (crate::resting):
    /// released until the endpoint's retry time, like a delivery that failed.
    fn resting_until(&self, c: &Claimed<'_>) -> Option<SendError> {
        let endpoint = c.delivery.route.endpoint?;
        let now = now();
        let until = self.resting.until(endpoint, now)?;
        Some(SendError::Transient {
            reason: format!(
                "the endpoint failed transiently at its last attempt and is not tried again before {}",
                rfc3339(until)
            ),
            retry_after: (until - now).to_std().ok(),
        })
    }

    /// What a sent request says about its endpoint: a transient failure rests it until the
    /// delivery's retry time, an answer ends its rest.
    fn learn(&self, c: &Claimed<'_>, sent: &Sent) {
        let Some(endpoint) = c.delivery.route.endpoint else {
            return;
        };
        match sent {
            Err(SendError::Transient { retry_after, .. }) => {
                let wait = retry_wait(self.config.channels.retry_first, c.held.attempt, *retry_after);
                let now = now();
                self.resting
                    .failed(endpoint, now, now + Duration::from_std(wait).unwrap_or_default());
            }
            _ => self.resting.answered(endpoint),
        }
    }

    /// Sends one webhook or push (`stamp`: the time of sending, in seconds).
    async fn request<'c>(&self, c: Claimed<'c>, stamp: i64) -> (Claimed<'c>, Sent) {
        let notice = self.notice(c.delivery.ctx);
        let sent = match (&c.delivery.target, &self.webpush) {
            (Target::Webhook(endpoint), _) => self
                .webhooks
                .send(endpoint, &notice, stamp)
                .await
                .map(|()| redacted(&endpoint.url)),
            (Target::WebPush(subscription), Some(push)) => push
                .send(subscription, &notice, stamp)
                .await
                .map(|()| redacted(&subscription.url)),
            _ => Err(SendError::Permanent("no sender for this channel".into())),
        };
        (c, sent)
    }

    /// Composes the reminder e-mail of `ctx`.
    fn compose(&self, ctx: &ReminderContext) -> Result<lettre::Message, MailError> {
        self.composer.build(&ReminderMail {
            to_email: &ctx.email,
            to_name: &ctx.display_name,
            timezone: &ctx.timezone,
            task_id: ctx.task_id,
            task_title: &ctx.task_title,
            task_description: &ctx.task_description,
            due_at: ctx.task_due_at,
            remind_at: ctx.remind_at,
            reminder_id: ctx.reminder_id,
        })
    }

    /// Step 5: records what was sent or failed for good, in one statement. A transient
    /// failure gives its claim back: an e-mail's takeable from the relay's `Retry-After`
    /// (else at once) and the event comes again; a webhook's or push's at its own retry time
    /// ([`Notify::retry_at`]), or it is given up after `CHANNEL_RETRY_ATTEMPTS`. A
    /// subscription that is gone is recorded failed and deactivated. Each write is fenced
    /// by the claim's token: a claim taken over meanwhile is not answered as recorded.
    async fn record(
        &self,
        sent: Vec<(Claimed<'_>, Sent)>,
        claims_expire: tokio::time::Instant,
        ended: &mut [Vec<(Route, Ended)>],
    ) {
        // The texts the records borrow: recipient, message id, and why a delivery given up
        // was given up.
        let texts: Vec<(String, String, Option<String>)> = sent
            .iter()
            .map(|(c, result)| {
                let given_up = match result {
                    Err(SendError::Transient { reason, .. }) => self.gives_up(c, reason),
                    _ => None,
                };
                (recipient(&c.delivery), delivery_message_id(&c.delivery), given_up)
            })
            .collect();
        let (mut finished, mut recorded, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for ((c, result), (recipient, mid, given_up)) in sent.iter().zip(&texts) {
            let d = &c.delivery;
            let (outcome, end) = match (result, given_up) {
                (Ok(place), _) => (
                    Finished::Sent {
                        recipient,
                        message_id: mid,
                    },
                    Ended::Sent {
                        message_id: mid.clone(),
                        place: place.clone(),
                    },
                ),
                (Err(SendError::Permanent(detail)), _) | (Err(SendError::Transient { .. }), Some(detail)) => {
                    (
                        Finished::Failed { recipient, detail },
                        Ended::Failed(detail.clone()),
                    )
                }
                (Err(SendError::Gone(detail)), _) => {
                    gone.push((d.route, detail.as_str()));
                    (
                        Finished::Failed { recipient, detail },
                        Ended::Gone(format!("{detail} (the endpoint was deactivated)")),
                    )
                }
                (Err(SendError::Transient { reason, retry_after }), None) => {
                    let end = self.retry(c, reason, *retry_after).await;
                    ended[d.event].push((d.route, end));
                    continue;
                }
            };
            finished.push((c.held, outcome));
            recorded.push((d.event, d.route, c.held, end));
        }
        match self.store_outcomes(&finished, claims_expire).await {
            Ok(kept) => {
                for (event, route, held, end) in recorded {
                    let end = match kept.contains(&held.delivery_id) {
                        true => end,
                        false => taken_over(route, held, "its outcome", end.word()),
                    };
                    ended[event].push((route, end));
                }
                for (route, detail) in gone {
                    self.deactivate(route, detail).await;
                }
            }
            Err(e) => {
                let failure = Failure::from(e);
                for (event, route, _, _) in recorded {
                    ended[event].push((route, Ended::Retry(failure.clone())));
                }
            }
        }
    }

    /// Why a webhook or push delivery that failed transiently is given up now (its last
    /// attempt allowed), or `None`: retried (or an e-mail, whose event is retried).
    fn gives_up(&self, c: &Claimed<'_>, reason: &str) -> Option<String> {
        if c.delivery.route.channel == Channel::Email || c.held.attempt < self.config.channels.retry_attempts
        {
            return None;
        }
        let over = (now() - c.since).to_std().unwrap_or_default();
        let over = StdDuration::from_secs(over.as_secs());
        Some(format!(
            "gave up after {} attempts over {}: {reason}",
            c.held.attempt,
            HumanDuration(over)
        ))
    }

    /// Gives a transiently failed claim back and says how the delivery ended for now: an
    /// e-mail's event is retried (the relay is everyone's); a webhook or push is retried on
    /// its own schedule, the event not held up.
    async fn retry(&self, c: &Claimed<'_>, reason: &str, retry_after: Option<StdDuration>) -> Ended {
        let route = c.delivery.route;
        let (wait, end) = match route.channel {
            Channel::Email => (
                retry_after.unwrap_or_default(),
                Ended::Retry(Failure::unavailable(reason.to_owned())),
            ),
            _ => {
                let wait = retry_wait(self.config.channels.retry_first, c.held.attempt, retry_after);
                let said = format!(
                    "{route}: {reason} (attempt {} of {}; retried in {})",
                    c.held.attempt,
                    self.config.channels.retry_attempts,
                    HumanDuration(wait)
                );
                (wait, Ended::Scheduled(said))
            }
        };
        let until = now() + Duration::from_std(wait).unwrap_or_default();
        match self.store.release_delivery(c.held, reason, until).await {
            Ok(true) => end,
            Ok(false) => taken_over(route, c.held, "its release", end.word()),
            Err(e) => {
                tracing::warn!("could not release delivery {}: {e}", c.held.delivery_id);
                // The claim runs out with its lease; until then the event must come again.
                Ended::Retry(Failure::from(e))
            }
        }
    }

    /// Deactivates the endpoint of a subscription that is gone.
    async fn deactivate(&self, route: Route, detail: &str) {
        let Some(endpoint) = route.endpoint else { return };
        tracing::info!(endpoint_id = endpoint.get(), "deactivating {route}: {detail}");
        if let Err(e) = self.store.deactivate_endpoint(endpoint, detail, now()).await {
            tracing::warn!("could not deactivate {route}: {e}");
        }
    }

    /// Stores the outcomes of deliveries that were made. Until they are stored, a
    /// redelivery would make them again once their claims' lease has run out; so a
    /// database that is briefly away (a restart, a dropped connection) is waited out while
    /// the claims are still ours.
    async fn store_outcomes(
        &self,
        finished: &[(Held, Finished<'_>)],
        claims_expire: tokio::time::Instant,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let mut pause = RECORD_RETRY_FIRST;
        loop {
            match self.store.finish_deliveries(finished, now()).await {
                Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < claims_expire => {
                    tracing::warn!(
                        "the outcome of {} deliveries is not recorded yet, retrying in {pause:?}: {e}",
                        finished.len()
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
                other => return other,
            }
        }
    }

    /// Repairs a reminder whose deliveries are all finished but whose state is not (see
    /// `Store::settle_reminder`): found when a redelivery finds every delivery done.
    async fn settle(&self, ctx: &ReminderContext) {
        if matches!(ctx.state, ReminderState::Sent | ReminderState::Failed) {
            return;
        }
        match self
            .store
            .settle_reminder(ctx.reminder_id, ctx.remind_at, now())
            .await
        {
            Ok(true) => tracing::info!(
                reminder_id = ctx.reminder_id.get(),
                "every delivery was finished: the reminder's state is set"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!("could not settle reminder {}: {e}", ctx.reminder_id),
        }
    }
}

/// The wait before the next attempt of a webhook or push delivery whose attempt `attempt`
/// failed transiently (pure): `first` (`CHANNEL_RETRY_FIRST`) doubled per attempt, at most
/// [`CHANNEL_RETRY_CAP`], and never before the receiver's `Retry-After`.
fn retry_wait(first: StdDuration, attempt: i32, retry_after: Option<StdDuration>) -> StdDuration {
    let doublings = (attempt.clamp(1, 21) - 1) as u32;
    let backoff = first.saturating_mul(1u32 << doublings).min(CHANNEL_RETRY_CAP);
    backoff.max(retry_after.unwrap_or_default())
}

/// A delivery whose claim was taken over by another delivery while this one was sending
/// (its lease ran out): `what` (its outcome, its release) changed nothing, and the outcome
/// is the other claimer's to record. Logged; the event comes again and then finds how the
/// delivery ended.
fn taken_over(route: Route, held: Held, what: &str, would_be: &str) -> Ended {
    tracing::warn!(
        delivery_id = held.delivery_id.get(),
        attempt = held.attempt,
        "the claim on the {route} was taken over while it was sending (its lease ran out): \
         {what} ({would_be}) was not recorded"
    );
    Ended::Retry(Failure::InProgress(format!(
        "the {route} was taken over by another delivery; its outcome is recorded by that one"
    )))
}

/// Step 6 (pure): the answer to event `due` from how each of its deliveries ended. Any
/// delivery still to be made (`Retry`, or `held`) makes the event come again, after the
/// others are recorded (they answer "duplicate" then). Else: `sent` when a delivery was made
/// now; `skipped` when none was and a webhook or push waits for its own retry (nothing
/// delivered now, the event need not come again); `failed` when none was and one failed for
/// good now; `duplicate` when all were done before.
fn answer(
    due: &ReminderDue,
    ctx: &ReminderContext,
    ended: Vec<(Route, Ended)>,
    held: Option<String>,
    notes: &[String],
) -> Result<Reply, Failure> {
    let mut details = details_of(due);
    details["deliveries"] = ended
        .iter()
        .map(|(route, end)| {
            let mut d = json!({
                "channel": route.channel.as_str(),
                "endpoint_id": route.endpoint,
                "outcome": end.word(),
            });
            match end {
                Ended::Sent { message_id, .. } => d["message_id"] = json!(message_id),
                Ended::Failed(why) | Ended::Gone(why) => d["detail"] = json!(why),
                Ended::Duplicate { status, detail } => {
                    d["status"] = json!(status.as_str());
                    d["detail"] = json!(detail);
                }
                Ended::Retry(failure) => d["detail"] = json!(failure.to_string()),
                Ended::Scheduled(why) => d["detail"] = json!(why),
            }
            d
        })
        .collect();
    if !notes.is_empty() {
        details["notes"] = json!(notes);
    }
    let failures: Vec<&Failure> = ended
        .iter()
        .filter_map(|(_, e)| match e {
            Ended::Retry(f) => Some(f),
            _ => None,
        })
        .collect();
    if let Some(first) = failures.first() {
        return Err((*first).clone());
    }
    if let Some(held) = held {
        return Err(Failure::unavailable(held));
    }
    let only_email = ended.len() == 1 && ended[0].0 == Route::EMAIL;
    let sent: Vec<String> = ended
        .iter()
        .filter(|(_, e)| matches!(e, Ended::Sent { .. }))
        .map(|(r, _)| r.to_string())
        .collect();
    let failed: Vec<String> = ended
        .iter()
        .filter_map(|(r, e)| match e {
            Ended::Failed(why) | Ended::Gone(why) => Some(format!("{r}: {why}")),
            _ => None,
        })
        .collect();
    let scheduled: Vec<&str> = ended
        .iter()
        .filter_map(|(_, e)| match e {
            Ended::Scheduled(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    if let Some((_, Ended::Sent { message_id, .. })) = ended.iter().find(|(r, _)| *r == Route::EMAIL) {
        details["message_id"] = json!(message_id);
    }
    for (route, end) in &ended {
        let Ended::Sent { place, .. } = end else { continue };
        let how = match route.channel {
            Channel::Email => "mailed".to_owned(),
            _ => format!("sent by {route}"),
        };
        tracing::info!(
            reminder_id = ctx.reminder_id.get(),
            task_id = ctx.task_id.get(),
            user_id = ctx.user_id.get(),
            "reminder {how}: \"{}\" to user {} ({place})",
            ctx.task_title,
            ctx.user_id
        );
    }
    if !sent.is_empty() {
        let mut reason = if only_email {
            "the reminder e-mail was sent".to_owned()
        } else {
            format!("the reminder was sent by {}", sent.join(", "))
        };
        if !failed.is_empty() {
            reason += &format!("; failed for good: {}", failed.join("; "));
        }
        if !scheduled.is_empty() {
            reason += &format!("; retried on its own schedule: {}", scheduled.join("; "));
        }
        return Ok(Reply::new(Outcome::Done("sent"), reason, details).due_at(ctx.remind_at));
    }
    if !scheduled.is_empty() {
        let mut reason = "nothing delivered now".to_owned();
        if !failed.is_empty() {
            reason += &format!("; failed for good: {}", failed.join("; "));
        }
        reason += &format!("; retried on its own schedule: {}", scheduled.join("; "));
        tracing::info!(
            reminder_id = ctx.reminder_id.get(),
            "reminder event answered: {reason}"
        );
        return Ok(Reply::new(Outcome::Skipped, reason, details));
    }
    if !failed.is_empty() {
        let reason = match (&ended[..], only_email) {
            ([(_, Ended::Failed(why) | Ended::Gone(why))], true) => why.clone(),
            _ => format!("failed for good: {}", failed.join("; ")),
        };
        tracing::warn!(
            reminder_id = ctx.reminder_id.get(),
            "reminder could not be delivered, for good: {reason}"
        );
        return Ok(Reply::new(Outcome::Failed, reason, details));
    }
    let reason = match &ended[..] {
        [(_, Ended::Duplicate { status, detail })] => match (status, detail) {
            (DeliveryStatus::Failed, Some(d)) => format!("already failed for good: {d}"),
            _ => format!("already {status}"),
        },
        _ => {
            let each: Vec<String> = ended
                .iter()
                .filter_map(|(r, e)| match e {
                    Ended::Duplicate { status, .. } => Some(format!("{r} {status}")),
                    _ => None,
                })
                .collect();
            format!("already done: {}", each.join(", "))
        }
    };
    tracing::info!(reminder_id = %due.reminder_id, "duplicate reminder event: {reason}");
    Ok(Reply::new(Outcome::Duplicate, reason, details))
}

/// The answer as the caller may see it: the recipient's address and endpoints' targets, which
/// the texts of mail servers and endpoints repeat, replaced by names ([`Hidden`]); the log
/// and the deliveries table keep them.
fn hide_stored(ctx: &ReminderContext, answer: Result<Reply, Failure>) -> Result<Reply, Failure> {
    let hidden = Hidden::of(ctx);
    match answer {
        Ok(mut reply) => {
            reply.reason = hidden.in_text(&reply.reason);
            hidden.in_json(&mut reply.details);
            Ok(reply)
        }
        Err(Failure::Unavailable { detail, cause }) => Err(Failure::Unavailable {
            detail: hidden.in_text(&detail),
            cause,
        }),
        Err(Failure::InProgress(detail)) => Err(Failure::InProgress(hidden.in_text(&detail))),
        Err(other) => Err(other),
    }
}

impl Function for Notify {
    const NAME: &'static str = "notify";
    const ACCEPTS: EventKind = EventKind::ReminderDue;
    const REPLY_PREFIX: &'static str = "dev.todo.notification";
    type Data = ReminderDue;
    type Key = ReminderId;

    fn key(due: &ReminderDue) -> ReminderId {
        due.reminder_id
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![Box::new(self.deliveries.clone())]
    }

    /// Read → decide and plan → claim → send → record → answer (see the module docs).
    async fn handle_distinct(&self, events: &[Event<ReminderDue>]) -> Vec<Result<Reply, Failure>> {
        let contexts = match self.read(events).await {
            Ok(contexts) => contexts,
            Err(failure) => return Answers::all(events.len(), failure),
        };
        let mut answers = Answers::new(events.len());
        let mut wanted = Vec::new();
        let mut planned: Vec<Option<Planned<'_>>> = (0..events.len()).map(|_| None).collect();
        let clock = now();
        for (i, (_, due)) in events.iter().enumerate() {
            match decide(due, contexts.get(&due.reminder_id), clock, self.config.clock_skew) {
                Decision::Send(ctx) => {
                    let p = plan(ctx, &self.guard, self.webpush.is_some());
                    for note in &p.notes {
                        tracing::warn!(reminder_id = %due.reminder_id, "{note}");
                    }
                    if p.deliveries.is_empty() && p.held.is_none() {
                        let reason = match p.notes.is_empty() {
                            true => "the reminder names no channel".to_owned(),
                            false => p.notes.join("; "),
                        };
                        // What the reminder names, never an address or URL (plan's notes).
                        let reason = format!("nothing to deliver: {reason}");
                        answers.set(i, Ok(skipped(due, &reason, &reason)));
                        continue;
                    }
                    if p.held.is_some() {
                        self.count(Channel::WebPush, "held");
                    }
                    wanted.extend(p.deliveries.into_iter().map(|(route, target)| Delivery {
                        event: i,
                        ctx,
                        route,
                        target,
                    }));
                    planned[i] = Some(Planned {
                        ctx,
                        held: p.held,
                        notes: p.notes,
                    });
                }
                Decision::Skip { reason, detail } => answers.set(i, Ok(skipped(due, reason, &detail))),
                Decision::NotDue => answers.set(i, Ok(not_due_yet(due))),
                Decision::Moved { to } => answers.set(i, self.moved(due, to).await),
            }
        }
        // The claims are ours until their lease runs out, counted from here.
        let claims_expire = tokio::time::Instant::now() + self.config.delivery_lease.0;
        let mut ended: Vec<Vec<(Route, Ended)>> = (0..events.len()).map(|_| Vec::new()).collect();
        let claimed = self.claim(events, wanted, &mut ended).await;
        let sent = self.send(claimed).await;
        self.record(sent, claims_expire, &mut ended).await;
        for (i, plan) in planned.into_iter().enumerate() {
            let Some(Planned { ctx, held, notes }) = plan else {
                continue;
            };
            let mut ends = std::mem::take(&mut ended[i]);
            ends.sort_by_key(|(route, _)| *route);
            for (route, end) in &ends {
                self.count(route.channel, end.word());
            }
            let all_done_before = !ends.is_empty()
                && held.is_none()
                && ends.iter().all(|(_, e)| matches!(e, Ended::Duplicate { status, .. } if *status != DeliveryStatus::Sending));
            if all_done_before {
                self.settle(ctx).await;
            }
            let answered = answer(&events[i].1, ctx, ends, held, &notes);
            answers.set(i, hide_stored(ctx, answered));
        }
        answers.finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use todo_events_domain::{TaskId, UserId};
    use todo_events_store::TaskStatus;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn due() -> ReminderDue {
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
        }
    }

    /// A minute after the reminder was due, as the scheduler's event arrives.
    fn clock() -> DateTime<Utc> {
        at("2026-11-30T09:01:00Z")
    }

    const TOLERANCE: Duration = Duration::seconds(10);

    fn decided_at(now: DateTime<Utc>, change: impl FnOnce(&mut ReminderContext)) -> String {
        let mut ctx = row();
        change(&mut ctx);
        let ctx = Ok(ctx);
        match decide(&due(), Some(&ctx), now, TOLERANCE) {
            Decision::Skip { reason, .. } => format!("skip: {reason}"),
            Decision::NotDue => "not due".into(),
            Decision::Moved { to } => format!("moved to {}", rfc3339(to)),
            Decision::Send(_) => "send".into(),
        }
    }

    fn decided(change: impl FnOnce(&mut ReminderContext)) -> String {
        decided_at(clock(), change)
    }

    #[test]
    fn a_failing_endpoint_waits_longer_each_attempt_never_before_retry_after_at_most_an_hour() {
        let s = StdDuration::from_secs;
        let waits: Vec<u64> = (1..=9).map(|a| retry_wait(s(30), a, None).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(
            retry_wait(s(30), 1, Some(s(300))),
            s(300),
            "Retry-After is longer"
        );
        assert_eq!(retry_wait(s(30), 3, Some(s(7))), s(120), "the backoff is longer");
        assert_eq!(retry_wait(s(30), i32::MAX, None), s(3600), "capped, no overflow");
        assert_eq!(retry_wait(s(30), 0, None), s(30));
    }

    #[test]
    fn a_due_reminder_of_an_open_task_is_sent() {
        assert_eq!(decided(|_| {}), "send");
        assert_eq!(decided(|c| c.state = ReminderState::Pending), "send");
        assert_eq!(decided(|c| c.task_status = TaskStatus::InProgress), "send");
    }

    #[test]
    fn a_reminder_is_sent_from_its_time_less_the_tolerance_and_never_earlier() {
        let remind_at = at("2026-11-30T09:00:00Z");
        assert_eq!(decided_at(remind_at, |_| {}), "send");
        assert_eq!(decided_at(remind_at - TOLERANCE, |_| {}), "send");
        assert_eq!(
            decided_at(remind_at - TOLERANCE - Duration::milliseconds(1), |_| {}),
            "not due"
        );
        assert_eq!(decided_at(remind_at - Duration::hours(2), |_| {}), "not due");
        // Whatever the row's state: an early event of a pending reminder changes nothing.
        assert_eq!(
            decided_at(remind_at - Duration::hours(2), |c| c.state =
                ReminderState::Pending),
            "not due"
        );
    }

    #[test]
    fn cancelled_reminders_closed_tasks_and_foreign_ids_are_skipped_without_telling_what_is_stored() {
        assert_eq!(
            decided(|c| c.state = ReminderState::Cancelled),
            "skip: the reminder was cancelled"
        );
        assert_eq!(
            decided(|c| c.task_status = TaskStatus::Done),
            "skip: the reminder's task is closed"
        );
        assert_eq!(
            decided(|c| c.task_status = TaskStatus::Cancelled),
            "skip: the reminder's task is closed"
        );
        // Another owner reads as no reminder at all: the answer names no stored id.
        assert_eq!(
            decided(|c| c.user_id = UserId::new(9).unwrap()),
            format!("skip: {NO_SUCH_REMINDER}")
        );
        assert_eq!(
            decided(|c| c.task_id = TaskId::new(9).unwrap()),
            format!("skip: {NO_SUCH_REMINDER}")
        );
    }

    #[test]
    fn a_moved_reminder_is_looked_up_and_a_missing_or_malformed_one_is_skipped() {
        assert_eq!(
            decided(|c| c.remind_at = at("2026-11-30T10:00:00Z")),
            "moved to 2026-11-30T10:00:00Z"
        );
        let skip = |d: Decision<'_>| match d {
            Decision::Skip { reason, detail } => (reason, detail),
            other => panic!("expected a skip, got {other:?}"),
        };
        assert_eq!(
            skip(decide(&due(), None, clock(), TOLERANCE)),
            (
                NO_SUCH_REMINDER,
                "reminder 1 does not exist (deleted?)".to_owned()
            )
        );
        let malformed = Err(Malformed {
            table: "reminders",
            id: 1,
            detail: "state \"lost\" is not a known value".into(),
        });
        let (reason, detail) = skip(decide(&due(), Some(&malformed), clock(), TOLERANCE));
        assert_eq!(
            reason,
            "the stored reminder cannot be read (the function's log says why)"
        );
        assert_eq!(
            detail,
            "the stored reminder cannot be read: reminders row 1: state \"lost\" is not a known value"
        );
    }
}
