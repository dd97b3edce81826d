//! Step 4 of an agenda, send: each claimed delivery goes out on its channel (e-mails composed
//! from the agenda's templates, webhooks in their shapes, pushes), side by side, and what the
//! channel said comes back with it.

use super::decide::Planned;
use super::shape::{self, AgendaNotice};
use super::Attempt;
use crate::channels::SendError;
use crate::handler::Notify;
use crate::mail::compose::agenda::{AgendaItem, AgendaMail};
use crate::plan::Target;
use todo_events_store::agenda::AgendaHeld;

impl Notify {
    /// Step 4: the e-mails composed and sent together, the webhooks and pushes beside them.
    pub(super) async fn send_agendas<'c>(&self, claimed: Vec<(Planned<'c>, AgendaHeld)>) -> Vec<Attempt<'c>> {
        let sends = claimed.into_iter().map(|(planned, held)| async move {
            let sent = self.send_agenda(&planned).await;
            Attempt { planned, held, sent }
        });
        futures::future::join_all(sends).await
    }

    /// One delivery of an agenda: where it went, or why not.
    async fn send_agenda(&self, p: &Planned<'_>) -> Result<String, SendError> {
        let language = self
            .composer
            .languages()
            .pick(p.ctx.locale.as_deref().unwrap_or("en"));
        let notice = AgendaNotice {
            due: p.due,
            ctx: p.ctx,
            language,
            app_url: self.config.app_url.trim_end_matches('/'),
        };
        let now = chrono::Utc::now().timestamp();
        match &p.target {
            Target::Email => {
                let items: Vec<AgendaItem<'_>> = (p.ctx.tasks.iter())
                    .map(|t| AgendaItem {
                        id: t.id,
                        title: &t.title,
                        due_at: t.due_at,
                    })
                    .collect();
                let message = self.composer.build_agenda(&mail(p, &items))?;
                Ok(self.mailer.send(message).await?)
            }
            Target::Webhook(endpoint) => {
                let outgoing = shape::webhook(endpoint.format, &notice);
                let id = notice.delivery_id(endpoint.id);
                self.webhooks.post(endpoint, outgoing, id.clone(), now).await?;
                Ok(id)
            }
            Target::WebPush(to) => match &self.webpush {
                Some(push) => push
                    .push(to, &shape::push(&notice), now)
                    .await
                    .map(|()| to.url.to_string()),
                None => Err(SendError::transient("Web Push is off")),
            },
            Target::Unusable(why) => Err(SendError::Permanent(why.clone())),
        }
    }
}

/// The mail of a planned e-mail delivery.
fn mail<'a>(p: &'a Planned<'_>, items: &'a [AgendaItem<'a>]) -> AgendaMail<'a> {
    AgendaMail {
        to_email: &p.ctx.email,
        to_name: &p.ctx.display_name,
        timezone: &p.ctx.timezone,
        locale: p.ctx.locale.as_deref().unwrap_or("en"),
        user_id: p.due.user_id,
        date: p.due.date,
        agenda_at: p.due.agenda_at,
        tasks: items,
        count: p.ctx.due_count,
    }
}
