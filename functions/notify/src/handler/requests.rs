//! Webhook and push requests, each in a task of its own, and the endpoints they teach.
//!
//! A user's endpoint may take up to `WEBHOOK_TIMEOUT` to answer, and the batch answers only
//! when its deliveries have ended: in consume mode every later event of the partition would
//! wait for one slow endpoint. So each request runs in a task of its own, and the batch waits
//! for it only its patience ([`crate::config::PATIENCE`]): a request still going on then is
//! left to finish alone. It
//! records its own outcome when it comes (fenced by its claim like any other), the event is
//! answered without it (`sending`), and its endpoint rests meanwhile as if it had failed, so
//! that the next batches do not wait for it too. The handover is exact: the task gives its
//! result to the batch if the batch still waits, else records it itself, never both.
//!
//! What a request says teaches the endpoints at rest ([`crate::resting`]): a transient
//! failure, or no answer within the patience, rests its endpoint until the delivery's retry
//! time; an answer ends the rest. A delivery to an endpoint at rest is not sent but answered
//! as failed transiently until then.

use super::delivery::{Attempted, Claimed, End, Ended, Planned, Sent};
use super::retry::retry_wait;
use super::Notify;
use crate::channels::guard::redacted;
use crate::channels::{Notice, SendError};
use crate::plan::Target;
use chrono::{DateTime, Duration, Utc};
use std::time::Duration as StdDuration;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::HumanDuration;
use todo_events_store::notify::{Held, Route};
use todo_events_store::ReminderContext;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A request as its own task holds it: the delivery's parts, owned.
struct Request {
    event_id: String,
    ctx: ReminderContext,
    route: Route,
    target: Target,
    held: Held,
    since: DateTime<Utc>,
}

impl Notify {
    /// Sends the webhooks and pushes, each in a task of its own, and waits for them until
    /// the batch's patience has passed: those answered by then, and the ends of those left to finish
    /// alone (each in the tracker `alone`, waited for at shutdown).
    pub(super) async fn requests<'c>(
        &self,
        http: Vec<Claimed<'c>>,
        claims_expire: Instant,
    ) -> (Vec<Attempted<'c>>, Vec<End>) {
        let until = Instant::now() + self.config.channels.patience;
        let waiting = http.into_iter().map(|claimed| {
            let answer = self.spawn_request(&claimed, claims_expire);
            self.await_request(claimed, answer, until)
        });
        let (mut attempted, mut alone) = (Vec::new(), Vec::new());
        for waited in futures::future::join_all(waiting).await {
            match waited {
                Ok(a) => attempted.push(a),
                Err(end) => alone.push(end),
            }
        }
        (attempted, alone)
    }

    /// Starts `claimed`'s request in a task of its own ([`Notify::request_alone`]); its
    /// answer comes on the channel returned while the batch waits for it.
    fn spawn_request(&self, claimed: &Claimed<'_>, claims_expire: Instant) -> oneshot::Receiver<Sent> {
        let (tx, rx) = oneshot::channel();
        let request = Request {
            event_id: claimed.delivery.event_id.to_owned(),
            ctx: claimed.delivery.ctx.clone(),
            route: claimed.delivery.route,
            target: claimed.delivery.target.clone(),
            held: claimed.held,
            since: claimed.since,
        };
        let notify = self.clone();
        self.alone
            .spawn(async move { notify.request_alone(request, tx, claims_expire).await });
        rx
    }

    /// Waits for `claimed`'s request until `until`: what it came to, or its end as left to
    /// finish alone. Its endpoint rests from then until it answers ([`crate::resting`]).
    async fn await_request<'c>(
        &self,
        claimed: Claimed<'c>,
        mut answer: oneshot::Receiver<Sent>,
        until: Instant,
    ) -> Result<Attempted<'c>, End> {
        if let Ok(got) = tokio::time::timeout_at(until, &mut answer).await {
            let sent = got.unwrap_or_else(|_| Err(SendError::transient("the request's task ended")));
            return Ok(self.learnt(Attempted { claimed, sent }));
        }
        // Rest first, then close: a result that came meanwhile is still taken (and teaches
        // the endpoint); one that comes later is the task's to record.
        self.rest_slow(&claimed);
        answer.close();
        if let Ok(sent) = answer.try_recv() {
            return Ok(self.learnt(Attempted { claimed, sent }));
        }
        let why = format!(
            "{}: no answer within {}; its outcome is recorded when it comes",
            claimed.delivery.route,
            HumanDuration(self.config.channels.patience)
        );
        Err(claimed.delivery.ended(Ended::Sending(why)))
    }

    /// A request in its own task: sent when a slot is free ([`HTTP_SENDS_AT_ONCE`]), its
    /// result handed to the batch if it still waits, else learnt from and recorded here.
    async fn request_alone(&self, r: Request, batch: oneshot::Sender<Sent>, claims_expire: Instant) {
        let claimed = Claimed {
            delivery: Planned {
                event_id: &r.event_id,
                ctx: &r.ctx,
                route: r.route,
                target: r.target,
            },
            held: r.held,
            since: r.since,
        };
        let sent = {
            let _slot = self.http_sends.acquire().await;
            self.request(&claimed, now().timestamp()).await
        };
        let Err(sent) = batch.send(sent) else { return };
        let attempted = self.learnt(Attempted { claimed, sent });
        for End { route, ended, .. } in self.record(vec![attempted], claims_expire).await {
            self.metrics.count(route.channel, ended.word());
            tracing::info!(
                reminder_id = r.ctx.reminder_id.get(),
                "the {route}, sent without its batch, ended: {}",
                ended.word()
            );
        }
    }

    /// Why `c` is not sent now, when its endpoint rests after a transient failure (crate::resting):
    /// released until the endpoint's retry time, like a delivery that failed.
    pub(super) fn resting_until(&self, c: &Claimed<'_>) -> Option<SendError> {
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
    fn learnt<'c>(&self, attempted: Attempted<'c>) -> Attempted<'c> {
        let c = &attempted.claimed;
        if let Some(endpoint) = c.delivery.route.endpoint {
            match &attempted.sent {
                Err(SendError::Transient { retry_after, .. }) => self.rest(c, *retry_after),
                _ => self.resting.answered(endpoint),
            }
        }
        attempted
    }

    /// Rests `c`'s endpoint until the retry time of a transient failure of `c` (at least
    /// `retry_after`).
    fn rest(&self, c: &Claimed<'_>, retry_after: Option<StdDuration>) {
        let Some(endpoint) = c.delivery.route.endpoint else {
            return;
        };
        let wait = retry_wait(self.config.channels.retry_first, c.held.attempt, retry_after);
        let now = now();
        self.resting
            .failed(endpoint, now, now + Duration::from_std(wait).unwrap_or_default());
    }

    /// Rests the endpoint of `c`, whose request is slower than the batch's patience, as if
    /// it had failed: until it answers.
    fn rest_slow(&self, c: &Claimed<'_>) {
        self.rest(c, None);
    }

    /// Sends one webhook or push (`stamp`: the time of sending, in seconds).
    async fn request(&self, claimed: &Claimed<'_>, stamp: i64) -> Sent {
        let notice = self.notice(claimed.delivery.ctx);
        match (&claimed.delivery.target, &self.webpush) {
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
        }
    }

    /// The notice a reminder becomes on channels beside e-mail.
    fn notice<'c>(&'c self, ctx: &'c ReminderContext) -> Notice<'c> {
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
            language: self
                .composer
                .languages()
                .pick(ctx.locale.as_deref().unwrap_or("en")),
        }
    }
}
