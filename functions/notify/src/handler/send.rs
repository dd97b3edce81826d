//! Step 4, send: each claimed delivery goes out on its channel, and what the channel said
//! comes back with it.
//!
//! The batch's e-mails are composed and handed to the mailer together (one connection to the
//! relay); the webhooks and pushes go out beside them, [`HTTP_SENDS_AT_ONCE`] at a time.
//! Some deliveries end without a request: an e-mail that cannot be composed, an endpoint
//! that cannot be used as stored, and an endpoint resting after a transient failure
//! ([`crate::resting`]), which is answered as failed transiently until its retry time. What
//! a request says teaches the resting endpoints.

use super::delivery::{Attempted, Claimed};
use super::retry::retry_wait;
use super::Notify;
use crate::channels::guard::redacted;
use crate::channels::{Notice, SendError};
use crate::mail::{MailError, ReminderMail};
use crate::plan::Target;
use chrono::Duration;
use futures::StreamExt;
use todo_events_domain::time::{now, rfc3339};
use todo_events_store::ReminderContext;

/// Webhook and push requests of a batch in flight at once.
const HTTP_SENDS_AT_ONCE: usize = 32;

/// The claimed deliveries sorted by how they go out.
#[derive(Default)]
struct Outgoing<'c> {
    /// Ended without a request (what the channel would say).
    done: Vec<Attempted<'c>>,
    /// The composed e-mails, and their deliveries in the same order.
    messages: Vec<lettre::Message>,
    mails: Vec<Claimed<'c>>,
    /// Webhooks and pushes to request.
    http: Vec<Claimed<'c>>,
}

impl From<MailError> for SendError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Transient(reason) => SendError::transient(reason),
            MailError::Permanent(reason) => SendError::Permanent(reason),
        }
    }
}

impl Notify {
    /// Step 4: composes each claimed e-mail and sends them together; the webhooks and pushes
    /// go out beside them ([`Notify::requests`]).
    pub(super) async fn send<'c>(&self, claimed: Vec<Claimed<'c>>) -> Vec<Attempted<'c>> {
        let Outgoing {
            mut done,
            messages,
            mails,
            http,
        } = self.outgoing(claimed);
        let stamp = now().timestamp();
        let (mailed, requested) = tokio::join!(self.mailer.send_all(messages), self.requests(http, stamp));
        requested.iter().for_each(|attempted| self.learn(attempted));
        done.extend(mails.into_iter().zip(mailed).map(|(claimed, r)| Attempted {
            claimed,
            sent: r.map_err(SendError::from),
        }));
        done.extend(requested);
        done
    }

    /// Sorts `claimed` by how each goes out: e-mails composed, webhooks and pushes to
    /// request; a mail that cannot be composed, an unusable endpoint and a resting one end
    /// here.
    fn outgoing<'c>(&self, claimed: Vec<Claimed<'c>>) -> Outgoing<'c> {
        let mut out = Outgoing::default();
        for c in claimed {
            let failed = match &c.delivery.target {
                Target::Email => match self.compose(c.delivery.ctx) {
                    Ok(message) => {
                        out.messages.push(message);
                        out.mails.push(c);
                        continue;
                    }
                    Err(e) => e.into(),
                },
                Target::Unusable(why) => SendError::Permanent(why.clone()),
                Target::Webhook(_) | Target::WebPush(_) => match self.resting_until(&c) {
                    Some(rest) => rest,
                    None => {
                        out.http.push(c);
                        continue;
                    }
                },
            };
            out.done.push(Attempted {
                claimed: c,
                sent: Err(failed),
            });
        }
        out
    }

    /// Sends the webhooks and pushes, [`HTTP_SENDS_AT_ONCE`] at a time (`stamp`: the time of
    /// sending, in seconds), in the order they are answered.
    async fn requests<'c>(&self, http: Vec<Claimed<'c>>, stamp: i64) -> Vec<Attempted<'c>> {
        let requests: Vec<_> = http.into_iter().map(|c| self.request(c, stamp)).collect();
        futures::stream::iter(requests)
            .buffer_unordered(HTTP_SENDS_AT_ONCE)
            .collect()
            .await
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
    fn learn(&self, attempted: &Attempted<'_>) {
        let c = &attempted.claimed;
        let Some(endpoint) = c.delivery.route.endpoint else {
            return;
        };
        match &attempted.sent {
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
    async fn request<'c>(&self, claimed: Claimed<'c>, stamp: i64) -> Attempted<'c> {
        let notice = self.notice(claimed.delivery.ctx);
        let sent = match (&claimed.delivery.target, &self.webpush) {
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
        Attempted { claimed, sent }
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
}
