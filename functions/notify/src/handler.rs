//! The notify logic: one reminder event in, at most one e-mail out.
//!
//! A batch of events of distinct reminders (HTTP hands over one, the consumer what a
//! partition has queued) goes through named steps, each given only the events still
//! without an answer:
//!
//! 1. [`Notify::read`]: the reminders with their tasks and recipients, in one statement;
//! 2. [`decide`] (pure): skip, stale (the reminder was moved), or send;
//! 3. [`Notify::claim`]: the deliveries, new ones in one statement; a claim somebody else
//!    holds waits for it, takes an expired lease over, or answers duplicate;
//! 4. [`Notify::send`]: compose each mail and send them together;
//! 5. [`Notify::record`]: every outcome in one statement; a transient failure gives its
//!    claim back so that the retry can take it at once.

use crate::config::NotifyConfig;
use crate::mail::{message_id, Composer, MailError, Mailer, ReminderMail};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration as StdDuration;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{DeliveryId, EventKind, ReminderDue, ReminderId};
use todo_events_host::{Answers, Event, Failure, Function, Outcome, Reply};
use todo_events_store::notify::{Claim, Finished, NewClaim};
use todo_events_store::{DeliveryStatus, Malformed, ReminderContext, ReminderState, Store, StoreError};

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
}

/// What a reminder event asks for, decided from its reminder's row alone.
#[derive(Debug, PartialEq)]
enum Decision<'c> {
    /// Nothing to send; why.
    Skip(String),
    /// The reminder was moved to `to`: the event is stale, or a duplicate if its own time
    /// was mailed already.
    Moved { to: DateTime<Utc> },
    /// Claim the delivery and send this reminder.
    Send(&'c ReminderContext),
}

/// Decides one event from its reminder's row (`None`: no such reminder).
fn decide<'c>(due: &ReminderDue, row: Option<&'c Result<ReminderContext, Malformed>>) -> Decision<'c> {
    let ctx = match row {
        None => return Decision::Skip(format!("reminder {} does not exist (deleted?)", due.reminder_id)),
        Some(Err(malformed)) => {
            return Decision::Skip(format!("the stored reminder cannot be read: {malformed}"))
        }
        Some(Ok(ctx)) => ctx,
    };
    if ctx.task_id != due.task_id || ctx.user_id != due.user_id {
        return Decision::Skip(format!(
            "the event names task {} and user {}, but reminder {} belongs to task {} and user {}",
            due.task_id, due.user_id, due.reminder_id, ctx.task_id, ctx.user_id
        ));
    }
    if ctx.state == ReminderState::Cancelled {
        return Decision::Skip(format!("reminder {} was cancelled", due.reminder_id));
    }
    if ctx.task_status.is_closed() {
        return Decision::Skip(format!("task {} is {} already", ctx.task_id, ctx.task_status));
    }
    if ctx.remind_at != due.remind_at {
        return Decision::Moved { to: ctx.remind_at };
    }
    Decision::Send(ctx)
}

fn details_of(due: &ReminderDue) -> serde_json::Value {
    json!({
        "reminder_id": due.reminder_id, "task_id": due.task_id,
        "user_id": due.user_id, "remind_at": rfc3339(due.remind_at),
    })
}

fn skipped(due: &ReminderDue, reason: String) -> Reply {
    tracing::info!(reminder_id = %due.reminder_id, "reminder skipped: {reason}");
    Reply::new(Outcome::Skipped, reason, details_of(due))
}

/// The answer to an event whose delivery somebody else holds or finished.
fn duplicate(due: &ReminderDue, status: DeliveryStatus, detail: Option<String>) -> Reply {
    let reason = match (status, detail) {
        (DeliveryStatus::Failed, Some(d)) => format!("already failed for good: {d}"),
        _ => format!("already {status}"),
    };
    tracing::info!(reminder_id = %due.reminder_id, "duplicate reminder event: {reason}");
    Reply::new(Outcome::Duplicate, reason, details_of(due))
}

/// The answer once a mail's outcome is recorded: sent, or failed for good.
fn mailed(due: &ReminderDue, ctx: &ReminderContext, result: &Result<String, MailError>, mid: &str) -> Reply {
    let mut details = details_of(due);
    match result {
        Ok(place) => {
            tracing::info!(
                reminder_id = ctx.reminder_id.get(),
                task_id = ctx.task_id.get(),
                user_id = ctx.user_id.get(),
                "reminder mailed: \"{}\" to user {} ({place})",
                ctx.task_title,
                ctx.user_id
            );
            details["message_id"] = json!(mid);
            Reply::new(Outcome::Done("sent"), "the reminder e-mail was sent", details).due_at(ctx.remind_at)
        }
        Err(MailError::Permanent(reason) | MailError::Transient(reason)) => {
            tracing::warn!(
                reminder_id = ctx.reminder_id.get(),
                "reminder could not be mailed, for good: {reason}"
            );
            Reply::new(Outcome::Failed, reason.clone(), details)
        }
    }
}

/// A delivery this call holds the claim of, for event `event`.
struct Claimed<'c> {
    event: usize,
    delivery: DeliveryId,
    ctx: &'c ReminderContext,
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
    /// mailed already, else stale (skipped).
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
            format!("reminder {} was moved to {}", due.reminder_id, rfc3339(to)),
        ))
    }

    /// Step 3: claims the deliveries of `wanted`, new ones in one statement, the others one
    /// by one ([`Notify::claim_held`]). Events whose delivery is not ours are answered.
    async fn claim<'c>(
        &self,
        events: &[Event<ReminderDue>],
        wanted: Vec<(usize, &'c ReminderContext)>,
        answers: &mut Answers,
    ) -> Vec<Claimed<'c>> {
        let new: Vec<NewClaim<'_>> = wanted.iter().map(|&(i, _)| new_claim(&events[i])).collect();
        let fresh: HashMap<ReminderId, DeliveryId> =
            match self.store.claim_new_deliveries(&new, now(), self.lease()).await {
                Ok(claimed) => claimed.into_iter().collect(),
                Err(e) => {
                    let failure = Failure::from(e);
                    wanted
                        .iter()
                        .for_each(|&(i, _)| answers.set(i, Err(failure.clone())));
                    return Vec::new();
                }
            };
        let mut claimed = Vec::with_capacity(wanted.len());
        for (event, ctx) in wanted {
            let due = &events[event].1;
            let claim = match fresh.get(&due.reminder_id) {
                Some(&delivery_id) => Ok(Claim::Claimed {
                    delivery_id,
                    attempt: 1,
                }),
                None => self.claim_held(&new_claim(&events[event])).await,
            };
            match claim {
                Ok(Claim::Claimed { delivery_id, .. }) => claimed.push(Claimed {
                    event,
                    delivery: delivery_id,
                    ctx,
                }),
                Ok(Claim::Taken { status, detail }) => answers.set(event, Ok(duplicate(due, status, detail))),
                Err(failure) => answers.set(event, Err(failure)),
            }
        }
        claimed
    }

    /// A delivery claimed before: waits briefly while another delivery of the same event
    /// holds it, takes it over once its lease ran out, or reports how it ended.
    async fn claim_held(&self, claim: &NewClaim<'_>) -> Result<Claim, Failure> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let found = self.store.claim_delivery(claim, now(), self.lease()).await?;
            match found {
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

    /// Step 4: composes each claimed reminder and sends them together.
    async fn send<'c>(&self, claimed: Vec<Claimed<'c>>) -> Vec<(Claimed<'c>, Result<String, MailError>)> {
        let mut done = Vec::with_capacity(claimed.len());
        let (mut messages, mut sending) = (Vec::new(), Vec::new());
        for c in claimed {
            match self.compose(c.ctx) {
                Ok(message) => {
                    messages.push(message);
                    sending.push(c);
                }
                Err(e) => done.push((c, Err(e))),
            }
        }
        let results = self.mailer.send_all(messages).await;
        done.extend(sending.into_iter().zip(results));
        done
    }

    /// Composes the reminder of `ctx`.
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

    /// Step 5: records what was sent or failed for good, in one statement, and answers
    /// those events; a transient failure gives its claim back and is answered "unavailable".
    async fn record(
        &self,
        events: &[Event<ReminderDue>],
        sent: Vec<(Claimed<'_>, Result<String, MailError>)>,
        claims_expire: tokio::time::Instant,
        answers: &mut Answers,
    ) {
        let message_ids: Vec<String> = sent
            .iter()
            .map(|(c, _)| message_id(c.ctx.reminder_id, c.ctx.remind_at))
            .collect();
        let (mut finished, mut recorded) = (Vec::new(), Vec::new());
        for ((c, result), mid) in sent.iter().zip(&message_ids) {
            let recipient = c.ctx.email.as_str();
            match result {
                Ok(_) => finished.push((
                    c.delivery,
                    Finished::Sent {
                        recipient,
                        message_id: mid,
                    },
                )),
                Err(MailError::Permanent(detail)) => {
                    finished.push((c.delivery, Finished::Failed { recipient, detail }))
                }
                Err(MailError::Transient(reason)) => {
                    self.release(c.delivery, reason).await;
                    answers.set(c.event, Err(Failure::unavailable(reason.clone())));
                    continue;
                }
            }
            recorded.push((c, result, mid));
        }
        match self.store_outcomes(&finished, claims_expire).await {
            Ok(()) => recorded.into_iter().for_each(|(c, result, mid)| {
                answers.set(c.event, Ok(mailed(&events[c.event].1, c.ctx, result, mid)))
            }),
            Err(e) => {
                let failure = Failure::from(e);
                recorded
                    .into_iter()
                    .for_each(|(c, _, _)| answers.set(c.event, Err(failure.clone())));
            }
        }
    }

    /// Gives a claim back after a transient failure, so the retry can take it at once.
    async fn release(&self, delivery: DeliveryId, reason: &str) {
        if let Err(e) = self.store.release_delivery(delivery, reason, now()).await {
            tracing::warn!("could not release delivery {delivery}: {e}");
        }
    }

    /// Stores the outcomes of e-mails that went out. Until they are stored, a redelivery
    /// would send them again once their claims' lease has run out; so a database that is
    /// briefly away (a restart, a dropped connection) is waited out while the claims are
    /// still ours.
    async fn store_outcomes(
        &self,
        finished: &[(DeliveryId, Finished<'_>)],
        claims_expire: tokio::time::Instant,
    ) -> Result<(), StoreError> {
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
}

fn new_claim(event: &Event<ReminderDue>) -> NewClaim<'_> {
    let (event_id, due) = event;
    NewClaim {
        reminder_id: due.reminder_id,
        remind_at: due.remind_at,
        event_id,
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

    /// Read → decide → claim → send → record (see the module docs).
    async fn handle_distinct(&self, events: &[Event<ReminderDue>]) -> Vec<Result<Reply, Failure>> {
        let contexts = match self.read(events).await {
            Ok(contexts) => contexts,
            Err(failure) => return Answers::all(events.len(), failure),
        };
        let mut answers = Answers::new(events.len());
        let mut wanted = Vec::new();
        for (i, (_, due)) in events.iter().enumerate() {
            match decide(due, contexts.get(&due.reminder_id)) {
                Decision::Send(ctx) => wanted.push((i, ctx)),
                Decision::Skip(reason) => answers.set(i, Ok(skipped(due, reason))),
                Decision::Moved { to } => answers.set(i, self.moved(due, to).await),
            }
        }
        // The claims are ours until their lease runs out, counted from here.
        let claims_expire = tokio::time::Instant::now() + self.config.delivery_lease.0;
        let claimed = self.claim(events, wanted, &mut answers).await;
        let sent = self.send(claimed).await;
        self.record(events, sent, claims_expire, &mut answers).await;
        answers.finish()
    }
}

#[cfg(test)]
mod tests {
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

    fn row() -> ReminderContext {
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
        }
    }

    fn decided(change: impl FnOnce(&mut ReminderContext)) -> String {
        let mut ctx = row();
        change(&mut ctx);
        let ctx = Ok(ctx);
        match decide(&due(), Some(&ctx)) {
            Decision::Skip(reason) => format!("skip: {reason}"),
            Decision::Moved { to } => format!("moved to {}", rfc3339(to)),
            Decision::Send(_) => "send".into(),
        }
    }

    #[test]
    fn a_due_reminder_of_an_open_task_is_sent() {
        assert_eq!(decided(|_| {}), "send");
        assert_eq!(decided(|c| c.state = ReminderState::Pending), "send");
        assert_eq!(decided(|c| c.task_status = TaskStatus::InProgress), "send");
    }

    #[test]
    fn cancelled_reminders_closed_tasks_and_foreign_ids_are_skipped() {
        assert_eq!(
            decided(|c| c.state = ReminderState::Cancelled),
            "skip: reminder 1 was cancelled"
        );
        assert_eq!(
            decided(|c| c.task_status = TaskStatus::Done),
            "skip: task 2 is done already"
        );
        assert_eq!(
            decided(|c| c.task_status = TaskStatus::Cancelled),
            "skip: task 2 is cancelled already"
        );
        assert_eq!(
            decided(|c| c.user_id = UserId::new(9).unwrap()),
            "skip: the event names task 2 and user 3, but reminder 1 belongs to task 2 and user 9"
        );
    }

    #[test]
    fn a_moved_reminder_is_looked_up_and_a_missing_or_malformed_one_is_skipped() {
        assert_eq!(
            decided(|c| c.remind_at = at("2026-11-30T10:00:00Z")),
            "moved to 2026-11-30T10:00:00Z"
        );
        assert_eq!(
            decide(&due(), None),
            Decision::Skip("reminder 1 does not exist (deleted?)".into())
        );
        let malformed = Err(Malformed {
            table: "reminders",
            id: 1,
            detail: "state \"lost\" is not a known value".into(),
        });
        assert_eq!(
            decide(&due(), Some(&malformed)),
            Decision::Skip(
                "the stored reminder cannot be read: reminders row 1: state \"lost\" is not a known value"
                    .into()
            )
        );
    }
}
