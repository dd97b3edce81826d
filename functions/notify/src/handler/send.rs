//! Step 4, send: each claimed delivery goes out on its channel, and what the channel said
//! comes back with it.
//!
//! The batch's e-mails are composed and handed to the mailer together (one connection to the
//! relay); the webhooks and pushes go out beside them, [`HTTP_SENDS_AT_ONCE`] at a time in
//! the process. Some deliveries end without a request: an e-mail that cannot be composed, an
//! endpoint that cannot be used as stored, and an endpoint resting after a transient failure
//! ([`crate::resting`]), which is answered as failed transiently until its retry time. What
//! a request says teaches the resting endpoints.
//!
//! Each webhook and push request runs in a task of its own ([`super::requests`]).

use super::delivery::{Attempted, Claimed, End};
use super::Notify;
use crate::channels::SendError;
use crate::mail::{MailError, ReminderMail};
use crate::plan::Target;
use todo_events_store::ReminderContext;
use tokio::time::Instant;

/// Webhook and push requests in flight at once in the process.
pub(super) const HTTP_SENDS_AT_ONCE: usize = 128;

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
    /// go out beside them ([`Notify::requests`]). The attempted deliveries, and the ends of
    /// those left to finish alone (`claims_expire`: when the batch's claims run out).
    pub(super) async fn send<'c>(
        &self,
        claimed: Vec<Claimed<'c>>,
        claims_expire: Instant,
    ) -> (Vec<Attempted<'c>>, Vec<End>) {
        let Outgoing {
            mut done,
            messages,
            mails,
            http,
        } = self.outgoing(claimed);
        let (mailed, (requested, alone)) =
            tokio::join!(self.mailer.send_all(messages), self.requests(http, claims_expire));
        done.extend(mails.into_iter().zip(mailed).map(|(claimed, r)| Attempted {
            claimed,
            sent: r.map_err(SendError::from),
        }));
        done.extend(requested);
        (done, alone)
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
            locale: ctx.locale.as_deref().unwrap_or("en"),
        })
    }
}
