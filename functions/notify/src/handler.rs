//! The notify logic: one reminder event in, at most one e-mail out.

use crate::config::NotifyConfig;
use crate::mail::{message_id, Composer, MailError, Mailer, ReminderMail};
use chrono::Duration;
use serde_json::json;
use std::time::Duration as StdDuration;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{EventKind, ReminderDue};
use todo_events_host::{Failure, Function, Outcome, Reply};
use todo_events_store::notify::{Claim, Finished};
use todo_events_store::Store;

/// How long a delivery waits for a concurrent delivery of the same event to finish before
/// answering "in progress" (which Knative and the consumer retry).
const WAIT_FOR_OTHER: StdDuration = StdDuration::from_secs(5);

pub struct Notify {
    store: Store,
    mailer: Mailer,
    composer: Composer,
    config: NotifyConfig,
}

impl Notify {
    pub fn new(store: Store, config: NotifyConfig) -> Result<Self, String> {
        let mailer = Mailer::from_config(&config)?;
        let composer = Composer::from_config(&config)?;
        Ok(Self {
            store,
            mailer,
            composer,
            config,
        })
    }

    /// Claims the delivery, waiting briefly if another delivery of the same event holds it.
    async fn claim(&self, event_id: &str, due: &ReminderDue) -> Result<Claim, Failure> {
        let lease = Duration::from_std(self.config.delivery_lease.0).unwrap_or(Duration::minutes(2));
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let claim = self
                .store
                .claim_delivery(due.reminder_id.get(), due.remind_at, event_id, now(), lease)
                .await?;
            match &claim {
                Claim::Taken { status, .. } if status == "sending" => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Failure::InProgress(format!(
                            "reminder {} is being delivered by another request",
                            due.reminder_id
                        )));
                    }
                    tokio::time::sleep(StdDuration::from_millis(100)).await;
                }
                _ => return Ok(claim),
            }
        }
    }
}

impl Function for Notify {
    const NAME: &'static str = "notify";
    const ACCEPTS: EventKind = EventKind::ReminderDue;
    const REPLY_PREFIX: &'static str = "dev.todo.notification";
    type Data = ReminderDue;

    async fn handle(&self, event_id: &str, due: ReminderDue) -> Result<Reply, Failure> {
        let details = json!({
            "reminder_id": due.reminder_id, "task_id": due.task_id,
            "user_id": due.user_id, "remind_at": rfc3339(due.remind_at),
        });
        let skip = |reason: String| {
            tracing::info!(reminder_id = %due.reminder_id, "reminder skipped: {reason}");
            Ok(Reply::new(Outcome::Skipped, reason, details.clone()))
        };
        let Some(ctx) = self.store.reminder_context(due.reminder_id.get()).await? else {
            return skip(format!("reminder {} does not exist (deleted?)", due.reminder_id));
        };
        if ctx.task_id != due.task_id.get() || ctx.user_id != due.user_id.get() {
            return skip(format!(
                "the event names task {} and user {}, but reminder {} belongs to task {} and user {}",
                due.task_id, due.user_id, due.reminder_id, ctx.task_id, ctx.user_id
            ));
        }
        if ctx.state == "cancelled" {
            return skip(format!("reminder {} was cancelled", due.reminder_id));
        }
        if matches!(ctx.task_status.as_str(), "done" | "cancelled") {
            return skip(format!("task {} is {} already", ctx.task_id, ctx.task_status));
        }
        if ctx.remind_at != due.remind_at {
            // A stale event for an earlier time; if that time was mailed, say duplicate.
            let earlier = self.store.deliveries_of(ctx.reminder_id).await?;
            if earlier
                .iter()
                .any(|d| d.remind_at == due.remind_at && d.status == "sent")
            {
                return Ok(Reply::new(
                    Outcome::Duplicate,
                    "already sent for this time",
                    details,
                ));
            }
            return skip(format!(
                "reminder {} was moved to {}",
                due.reminder_id,
                rfc3339(ctx.remind_at)
            ));
        }

        let delivery_id = match self.claim(event_id, &due).await? {
            Claim::Claimed { delivery_id, .. } => delivery_id,
            Claim::Taken { status, detail } => {
                let reason = match (status.as_str(), detail) {
                    ("failed", Some(d)) => format!("already failed for good: {d}"),
                    _ => format!("already {status}"),
                };
                tracing::info!(reminder_id = %due.reminder_id, "duplicate reminder event: {reason}");
                return Ok(Reply::new(Outcome::Duplicate, reason, details));
            }
        };

        let mail = ReminderMail {
            to_email: &ctx.email,
            to_name: &ctx.display_name,
            timezone: &ctx.timezone,
            task_id: ctx.task_id,
            task_title: &ctx.task_title,
            task_description: &ctx.task_description,
            due_at: ctx.task_due_at,
            remind_at: ctx.remind_at,
            reminder_id: ctx.reminder_id,
        };
        let recipient = ctx.email.as_str();
        let sent = match self.composer.build(&mail) {
            Ok(message) => self.mailer.send(message).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(place) => {
                let mid = message_id(ctx.reminder_id, ctx.remind_at);
                self.store
                    .finish_delivery(
                        delivery_id,
                        Finished::Sent {
                            recipient,
                            message_id: &mid,
                        },
                        now(),
                    )
                    .await?;
                tracing::info!(
                    reminder_id = ctx.reminder_id,
                    task_id = ctx.task_id,
                    user_id = ctx.user_id,
                    "reminder mailed: \"{}\" to user {} ({place})",
                    ctx.task_title,
                    ctx.user_id
                );
                let mut details = details;
                details["message_id"] = json!(mid);
                Ok(
                    Reply::new(Outcome::Done("sent"), "the reminder e-mail was sent", details)
                        .due_at(ctx.remind_at),
                )
            }
            Err(MailError::Permanent(reason)) => {
                self.store
                    .finish_delivery(
                        delivery_id,
                        Finished::Failed {
                            recipient,
                            detail: &reason,
                        },
                        now(),
                    )
                    .await?;
                tracing::warn!(
                    reminder_id = ctx.reminder_id,
                    "reminder could not be mailed, for good: {reason}"
                );
                Ok(Reply::new(Outcome::Failed, reason, details))
            }
            Err(MailError::Transient(reason)) => {
                // Give the claim back so the retry can take it at once.
                if let Err(e) = self.store.release_delivery(delivery_id, &reason, now()).await {
                    tracing::warn!("could not release delivery {delivery_id}: {e}");
                }
                Err(Failure::Unavailable(reason))
            }
        }
    }

    async fn ready(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}
