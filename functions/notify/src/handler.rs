//! The notify logic: one reminder event in, at most one e-mail out.
//!
//! Events are handled in runs of distinct reminders (the consumer mode hands over what a
//! partition has queued; HTTP hands over one): the run's contexts are read in one
//! statement, its deliveries claimed in one statement, the mails sent concurrently, and the
//! outcomes recorded in one statement. A claim somebody else holds takes the slow path of
//! [`Notify::claim`] (wait, take over an expired lease, or answer duplicate).

use crate::config::NotifyConfig;
use crate::mail::{message_id, Composer, MailError, Mailer, ReminderMail};
use chrono::Duration;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration as StdDuration;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{EventKind, ReminderDue};
use todo_events_host::function::distinct_runs;
use todo_events_host::{Failure, Function, Outcome, Reply};
use todo_events_store::notify::{Claim, Finished, NewClaim};
use todo_events_store::{ReminderContext, Store};

/// How long a delivery waits for a concurrent delivery of the same event to finish before
/// answering "in progress" (which Knative and the consumer retry).
const WAIT_FOR_OTHER: StdDuration = StdDuration::from_secs(5);

/// Pauses between attempts to record outcomes while the database is away (doubling).
const RECORD_RETRY_FIRST: StdDuration = StdDuration::from_millis(100);
const RECORD_RETRY_MAX: StdDuration = StdDuration::from_secs(2);

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

    fn lease(&self) -> Duration {
        Duration::from_std(self.config.delivery_lease.0).unwrap_or(Duration::minutes(2))
    }

    /// Claims the delivery, waiting briefly if another delivery of the same event holds it.
    async fn claim(&self, event_id: &str, due: &ReminderDue) -> Result<Claim, Failure> {
        let lease = self.lease();
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

fn details_of(due: &ReminderDue) -> serde_json::Value {
    json!({
        "reminder_id": due.reminder_id, "task_id": due.task_id,
        "user_id": due.user_id, "remind_at": rfc3339(due.remind_at),
    })
}

impl Notify {
    /// Whether the event still asks for a mail: `None` to send, else the answer.
    async fn check(
        &self,
        due: &ReminderDue,
        ctx: Option<&ReminderContext>,
    ) -> Result<Option<Reply>, Failure> {
        let skip = |reason: String| {
            tracing::info!(reminder_id = %due.reminder_id, "reminder skipped: {reason}");
            Ok(Some(Reply::new(Outcome::Skipped, reason, details_of(due))))
        };
        let Some(ctx) = ctx else {
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
                return Ok(Some(Reply::new(
                    Outcome::Duplicate,
                    "already sent for this time",
                    details_of(due),
                )));
            }
            return skip(format!(
                "reminder {} was moved to {}",
                due.reminder_id,
                rfc3339(ctx.remind_at)
            ));
        }
        Ok(None)
    }

    /// Composes the reminder of `ctx`.
    fn compose(&self, ctx: &ReminderContext) -> Result<lettre::Message, MailError> {
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
        self.composer.build(&mail)
    }

    /// Records the outcomes of e-mails that went out. Until they are recorded, a redelivery
    /// would send them again once their claims' lease has run out; so a database that is
    /// briefly away (a restart, a dropped connection) is waited out while the claims are
    /// still ours.
    async fn record(
        &self,
        finished: &[(i64, Finished<'_>)],
        claims_expire: tokio::time::Instant,
    ) -> Result<(), todo_events_store::StoreError> {
        let mut pause = RECORD_RETRY_FIRST;
        loop {
            match self.store.finish_deliveries(finished, now()).await {
                Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < claims_expire => {
                    tracing::warn!(
                        "the outcome of {} e-mail(s) is not recorded yet, retrying in {pause:?}: {e}",
                        finished.len()
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
                other => return other,
            }
        }
    }

    /// One run of events of distinct reminders.
    async fn handle_run(&self, events: &[(String, ReminderDue)]) -> Vec<Result<Reply, Failure>> {
        let all_fail = |f: Failure| events.iter().map(|_| Err(f.clone())).collect();
        let ids: Vec<i64> = events.iter().map(|(_, d)| d.reminder_id.get()).collect();
        let contexts: HashMap<i64, ReminderContext> = match self.store.reminder_contexts(&ids).await {
            Ok(found) => found.into_iter().map(|c| (c.reminder_id, c)).collect(),
            Err(e) => return all_fail(e.into()),
        };
        let mut answers: Vec<Option<Result<Reply, Failure>>> = vec![None; events.len()];
        let mut wanted = Vec::new();
        for (i, (_, due)) in events.iter().enumerate() {
            match self.check(due, contexts.get(&due.reminder_id.get())).await {
                Ok(None) => wanted.push(i),
                Ok(Some(reply)) => answers[i] = Some(Ok(reply)),
                Err(failure) => answers[i] = Some(Err(failure)),
            }
        }

        // Claim: new deliveries in one statement; the rest one by one (held, expired, done).
        let claims: Vec<NewClaim<'_>> = wanted
            .iter()
            .map(|&i| NewClaim {
                reminder_id: events[i].1.reminder_id.get(),
                remind_at: events[i].1.remind_at,
                event_id: &events[i].0,
            })
            .collect();
        // The claims are ours until their lease runs out, counted from here.
        let claims_expire = tokio::time::Instant::now() + self.config.delivery_lease.0;
        let claimed: HashMap<i64, i64> = if claims.is_empty() {
            HashMap::new()
        } else {
            match self
                .store
                .claim_new_deliveries(&claims, now(), self.lease())
                .await
            {
                Ok(c) => c.into_iter().collect(),
                Err(e) => {
                    let failure = Failure::from(e);
                    for &i in &wanted {
                        answers[i] = Some(Err(failure.clone()));
                    }
                    Vec::new().into_iter().collect()
                }
            }
        };
        let mut to_send = Vec::new();
        for &i in &wanted {
            if answers[i].is_some() {
                continue;
            }
            let (event_id, due) = &events[i];
            if let Some(&delivery_id) = claimed.get(&due.reminder_id.get()) {
                to_send.push((i, delivery_id));
                continue;
            }
            match self.claim(event_id, due).await {
                Ok(Claim::Claimed { delivery_id, .. }) => to_send.push((i, delivery_id)),
                Ok(Claim::Taken { status, detail }) => {
                    let reason = match (status.as_str(), detail) {
                        ("failed", Some(d)) => format!("already failed for good: {d}"),
                        _ => format!("already {status}"),
                    };
                    tracing::info!(reminder_id = %due.reminder_id, "duplicate reminder event: {reason}");
                    answers[i] = Some(Ok(Reply::new(Outcome::Duplicate, reason, details_of(due))));
                }
                Err(failure) => answers[i] = Some(Err(failure)),
            }
        }

        // Compose each, then send them together.
        let mut sent: Vec<(usize, i64, Result<String, MailError>)> = Vec::with_capacity(to_send.len());
        let (mut messages, mut sending) = (Vec::new(), Vec::new());
        for (i, delivery_id) in to_send {
            match self.compose(&contexts[&events[i].1.reminder_id.get()]) {
                Ok(message) => {
                    messages.push(message);
                    sending.push((i, delivery_id));
                }
                Err(e) => sent.push((i, delivery_id, Err(e))),
            }
        }
        let results = self.mailer.send_all(messages).await;
        sent.extend(sending.into_iter().zip(results).map(|((i, d), r)| (i, d, r)));

        // Record: every outcome in one statement; transient failures give their claim back.
        let message_ids: Vec<String> = sent
            .iter()
            .map(|(i, _, _)| {
                let ctx = &contexts[&events[*i].1.reminder_id.get()];
                message_id(ctx.reminder_id, ctx.remind_at)
            })
            .collect();
        let mut finished = Vec::new();
        let mut recorded = Vec::new();
        for ((i, delivery_id, result), mid) in sent.iter().zip(&message_ids) {
            let ctx = &contexts[&events[*i].1.reminder_id.get()];
            match result {
                Ok(_) => finished.push((
                    *delivery_id,
                    Finished::Sent {
                        recipient: &ctx.email,
                        message_id: mid,
                    },
                )),
                Err(MailError::Permanent(reason)) => finished.push((
                    *delivery_id,
                    Finished::Failed {
                        recipient: &ctx.email,
                        detail: reason,
                    },
                )),
                Err(MailError::Transient(reason)) => {
                    // Give the claim back so the retry can take it at once.
                    if let Err(e) = self.store.release_delivery(*delivery_id, reason, now()).await {
                        tracing::warn!("could not release delivery {delivery_id}: {e}");
                    }
                    answers[*i] = Some(Err(Failure::Unavailable(reason.clone())));
                    continue;
                }
            }
            recorded.push((*i, result, mid));
        }
        if let Err(e) = self.record(&finished, claims_expire).await {
            let failure = Failure::from(e);
            for (i, _, _) in recorded {
                answers[i] = Some(Err(failure.clone()));
            }
        } else {
            for (i, result, mid) in recorded {
                let due = &events[i].1;
                let ctx = &contexts[&due.reminder_id.get()];
                let mut details = details_of(due);
                answers[i] = Some(Ok(match result {
                    Ok(place) => {
                        tracing::info!(
                            reminder_id = ctx.reminder_id,
                            task_id = ctx.task_id,
                            user_id = ctx.user_id,
                            "reminder mailed: \"{}\" to user {} ({place})",
                            ctx.task_title,
                            ctx.user_id
                        );
                        details["message_id"] = json!(mid);
                        Reply::new(Outcome::Done("sent"), "the reminder e-mail was sent", details)
                            .due_at(ctx.remind_at)
                    }
                    Err(reason) => {
                        tracing::warn!(
                            reminder_id = ctx.reminder_id,
                            "reminder could not be mailed, for good: {reason}"
                        );
                        let reason = match reason {
                            MailError::Permanent(r) | MailError::Transient(r) => r.clone(),
                        };
                        Reply::new(Outcome::Failed, reason, details)
                    }
                }));
            }
        }
        answers
            .into_iter()
            .map(|a| a.expect("every event answered"))
            .collect()
    }
}

impl Function for Notify {
    const NAME: &'static str = "notify";
    const ACCEPTS: EventKind = EventKind::ReminderDue;
    const REPLY_PREFIX: &'static str = "dev.todo.notification";
    type Data = ReminderDue;

    async fn handle(&self, event_id: &str, due: ReminderDue) -> Result<Reply, Failure> {
        self.handle_run(&[(event_id.to_owned(), due)])
            .await
            .pop()
            .expect("one answer per event")
    }

    async fn handle_batch(&self, events: Vec<(String, ReminderDue)>) -> Vec<Result<Reply, Failure>> {
        let mut answers = Vec::with_capacity(events.len());
        for run in distinct_runs(&events, |(_, d)| d.reminder_id.get()) {
            answers.extend(self.handle_run(run).await);
        }
        answers
    }

    async fn ready(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}
