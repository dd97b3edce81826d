//! What a function is to the host: the type it accepts and one method from a batch of
//! parsed events to one answer each. Both transports call it: HTTP hands over one event
//! ([`Function::handle`]), the Kafka consumer what a partition has queued
//! ([`Function::handle_batch`]). Splitting a batch so that no two of its events touch the
//! same row, and keeping one answer slot per event ([`Answers`]), is done here once, so a
//! function only writes its read → decide → write steps.

use std::future::Future;
use todo_events_decode::decode::parse_data;
use todo_events_decode::problem::Problem;
use todo_events_domain::{AgendaDue, EventKind, RecurringTaskDue, ReminderDue};
use todo_events_store::Store;

/// How a handled event ended. The reply CloudEvent type is `<reply prefix>.<word>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect happened now; the word names it (`sent`, `created`).
    Done(&'static str),
    /// The effect had already happened for this event.
    Duplicate,
    /// The event is stale or no longer relevant; nothing to do.
    Skipped,
    /// The effect failed for good (e.g. the mail server refused the recipient); recorded,
    /// acknowledged, not retried.
    Failed,
    /// The effect is put off to a later time the function recorded (notify: the end of the
    /// user's quiet hours), when the item comes again; acknowledged.
    Deferred,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Self::Done(word) => word,
            Self::Duplicate => "duplicate",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Deferred => "deferred",
        }
    }
}

/// The answer to a handled event: becomes the reply CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub outcome: Outcome,
    /// Why, in words (for duplicate / skipped / failed especially).
    pub reason: String,
    /// Details that identify the effect (ids, times).
    pub details: serde_json::Value,
    /// When the effect was due (`remind_at`, `occurrence_at`): the host measures lateness
    /// (effect time minus due time) from it.
    pub due: Option<chrono::DateTime<chrono::Utc>>,
    /// The event arrived before its item was due (beyond the clock-skew tolerance) and was
    /// answered `skipped` with nothing done: the host counts it
    /// (`todo_events_early_events_total`), since an early event is either a clock far off or
    /// a caller that is not the scheduler.
    pub early: bool,
}

impl Reply {
    pub fn new(outcome: Outcome, reason: impl Into<String>, details: serde_json::Value) -> Self {
        Self {
            outcome,
            reason: reason.into(),
            details,
            due: None,
            early: false,
        }
    }

    /// The answer to an event that came before its item was due: `skipped`, counted as early.
    pub fn not_due_yet(reason: impl Into<String>, details: serde_json::Value) -> Self {
        Self {
            early: true,
            ..Self::new(Outcome::Skipped, reason, details)
        }
    }

    /// The reply event's id for the event `event_id`: `<event id>/<outcome>`, the same for
    /// every answer with this outcome.
    pub fn id_for(&self, event_id: &str) -> String {
        format!("{event_id}/{}", self.outcome.word())
    }

    /// The reply event's data for the event `event_id`: the outcome, the reason, the
    /// event's id and the details.
    pub fn data_for(&self, event_id: &str) -> serde_json::Value {
        let mut data = serde_json::json!({
            "outcome": self.outcome.word(), "reason": self.reason, "event_id": event_id,
        });
        if let (Some(target), serde_json::Value::Object(details)) = (data.as_object_mut(), &self.details) {
            target.extend(details.clone());
        }
        data
    }

    /// Records when the effect was due.
    pub fn due_at(mut self, due: chrono::DateTime<chrono::Utc>) -> Self {
        self.due = Some(due);
        self
    }
}

/// Why an event could not be handled now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The event is well-formed CloudEvents but its content is wrong: `400`, not retried.
    #[error("invalid {field}: {detail}")]
    Invalid { field: String, detail: String },
    /// A dependency is down or said "later": `503`, retried. `detail` is what the caller
    /// is told (what is unavailable, in the function's words); `cause`, the dependency's own
    /// error text (a database's, which can tell its internals), goes to the log and to a
    /// dead letter's reason only.
    #[error("unavailable: {detail}")]
    Unavailable { detail: String, cause: Option<String> },
    /// The same event is being handled right now by another delivery: `409`, retried.
    #[error("in progress: {0}")]
    InProgress(String),
    /// A bug: `500`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Failure {
    /// Whether trying the event again later can help (`Unavailable`, `InProgress`); its
    /// [`crate::Problem`] says the same (`Problem::is_retryable`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::InProgress(_))
    }

    /// [`Failure::Unavailable`] with a detail the caller may read and nothing held back.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            cause: None,
        }
    }
}

impl From<todo_events_store::StoreError> for Failure {
    fn from(e: todo_events_store::StoreError) -> Self {
        if e.is_transient() {
            Self::Unavailable {
                detail: "the database is unavailable; try again later".into(),
                cause: Some(e.to_string()),
            }
        } else {
            Self::Internal(e.to_string())
        }
    }
}

/// An event as a function receives it: its CloudEvents id and its parsed data.
pub type Event<D> = (String, D);

/// The data of the events a function accepts, parsed once by the host: of one kind (the
/// scheduler's events' own data types), or of several (an enum, as notify's reminders and
/// agendas), told apart by the CloudEvent's type.
pub trait EventData: Sized + Send + Sync {
    /// The kinds this data is parsed from.
    const KINDS: &'static [EventKind];
    /// Parses the data of an event of `kind`, one of [`EventData::KINDS`]; a failure names
    /// the field.
    fn parse(kind: EventKind, data: serde_json::Value) -> Result<Self, Problem>;
}

/// The data of one kind of event, parsed as its type.
macro_rules! one_kind {
    ($($ty:ident),*) => {$(
        impl EventData for $ty {
            const KINDS: &'static [EventKind] = &[EventKind::$ty];
            fn parse(_: EventKind, data: serde_json::Value) -> Result<Self, Problem> {
                parse_data(data)
            }
        }
    )*};
}
one_kind!(ReminderDue, RecurringTaskDue, AgendaDue);

/// A serverless function: one event type in (or a few, [`EventData`]), one effect out.
pub trait Function: Send + Sync + 'static {
    /// Name in logs, metrics and reply sources: `notify`, `recur`.
    const NAME: &'static str;
    /// The event type this function is for: the Kafka topic its consumer reads is this
    /// type's, its metrics are labelled with it. What it accepts is [`EventData::KINDS`].
    const ACCEPTS: EventKind;
    /// Reply types are `<REPLY_PREFIX>.<outcome word>`, e.g. `dev.todo.notification.sent`.
    const REPLY_PREFIX: &'static str;
    /// The event data, parsed once by the host.
    type Data: EventData;
    /// The row an event changes (a reminder, a recurring task). Two events with one key are
    /// never in one [`Function::handle_distinct`] call: each is decided against rows read
    /// once, which is only right when no event of the batch changes what another one reads.
    type Key: Eq + std::hash::Hash;

    fn key(data: &Self::Data) -> Self::Key;

    /// The database, which readiness checks.
    fn store(&self) -> &Store;

    /// What the function checks once before it serves (notify: that its keys open the
    /// secrets stored sealed). An error stops the start; a configuration error (exit status
    /// 2) for what the operator must fix.
    fn check_at_start(&self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Performs the effect of each event, once: one answer per event, in order. No two
    /// events share a key.
    fn handle_distinct(
        &self,
        events: &[Event<Self::Data>],
    ) -> impl Future<Output = Vec<Result<Reply, Failure>>> + Send;

    /// Performs the effect for one event, once.
    fn handle(
        &self,
        event_id: &str,
        data: Self::Data,
    ) -> impl Future<Output = Result<Reply, Failure>> + Send {
        async move {
            let events = [(event_id.to_owned(), data)];
            let answer = self.handle_distinct(&events).await.pop();
            answer.unwrap_or_else(|| Err(Answers::missing()))
        }
    }

    /// Handles several events, with one result per event, in order: in batches of distinct
    /// keys, each read and written together (one database transaction).
    ///
    /// One bad event never fails its neighbours: an event of a larger batch answered with an
    /// internal failure (e.g. its write broke a constraint, which rolls the whole batch's
    /// transaction back) is handled again alone, so that only the event at fault fails.
    /// Transient failures are not retried here: the database being away fails every event
    /// alike, and the caller retries.
    fn handle_batch(
        &self,
        events: Vec<Event<Self::Data>>,
    ) -> impl Future<Output = Vec<Result<Reply, Failure>>> + Send {
        async move {
            let mut results = Vec::with_capacity(events.len());
            for batch in distinct_batches(&events, |(_, data)| Self::key(data)) {
                let mut answers = self.handle_distinct(batch).await;
                if batch.len() > 1 {
                    for (event, answer) in batch.iter().zip(answers.iter_mut()) {
                        if let Err(Failure::Internal(detail)) = answer {
                            tracing::warn!(
                                function = Self::NAME,
                                event_id = %event.0,
                                "handling the event alone after its batch failed: {detail}"
                            );
                            let alone = self.handle_distinct(std::slice::from_ref(event)).await;
                            *answer = alone
                                .into_iter()
                                .next()
                                .unwrap_or_else(|| Err(Answers::missing()));
                        }
                    }
                }
                results.extend(answers);
            }
            results
        }
    }

    /// Waits for what the function goes on with after answering (notify: a webhook slower
    /// than its batch's patience), before the process ends; the host calls it once, after
    /// the last event was answered, bounded by the shutdown timeout.
    fn finish_background(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The function's own metrics (notify: deliveries by channel and outcome), served on
    /// `/metrics` beside the host's: the host registers them once.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }

    /// Readiness: can the function do its work now (its database reachable)?
    fn ready(&self) -> impl Future<Output = Result<(), Failure>> + Send {
        async move { self.store().ping().await.map_err(Failure::from) }
    }
}

/// One result slot per item of a batch, filled in as the steps of a batch reach each item,
/// in any order: an item answered early (rejected, skipped, failed) drops out of the later
/// steps, and the results still come out in the batch's order. Used wherever a batch is
/// handled (the functions' steps, the host's parsing, the producers' acknowledgements).
#[derive(Debug)]
pub struct Slots<T>(Vec<Option<T>>);

impl<T> Slots<T> {
    pub fn new(items: usize) -> Self {
        Self((0..items).map(|_| None).collect())
    }

    pub fn set(&mut self, item: usize, result: T) {
        self.0[item] = Some(result);
    }

    /// The results, in order; `missing` stands in for a slot no step filled (a bug, which
    /// is reported as one rather than a panic).
    pub fn into_results(self, missing: impl Fn() -> T) -> Vec<T> {
        self.0.into_iter().map(|r| r.unwrap_or_else(&missing)).collect()
    }
}

/// The answers of a function to a batch of events.
pub type Answers = Slots<Result<Reply, Failure>>;

impl Slots<Result<Reply, Failure>> {
    /// Every event gets the same failure (the batch's read or write failed).
    pub fn all(events: usize, failure: Failure) -> Vec<Result<Reply, Failure>> {
        vec![Err(failure); events]
    }

    /// The answers, in order; an event no step answered is an internal failure.
    pub fn finish(self) -> Vec<Result<Reply, Failure>> {
        self.into_results(|| Err(Self::missing()))
    }

    fn missing() -> Failure {
        Failure::Internal("the handler gave no answer for this event".into())
    }
}

/// Splits `items` into consecutive batches in which no key repeats (see
/// [`Function::Key`]).
pub fn distinct_batches<T, K: Eq + std::hash::Hash>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&[T]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(key(item)) {
            batches.push(&items[start..i]);
            start = i;
            seen.clear();
            seen.insert(key(item));
        }
    }
    if start < items.len() {
        batches.push(&items[start..]);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_where_a_key_repeats() {
        let items = [1, 2, 3, 2, 4, 4, 5];
        let batches = distinct_batches(&items, |x| *x);
        assert_eq!(batches, vec![&[1, 2, 3][..], &[2, 4][..], &[4, 5][..]]);
        assert!(distinct_batches(&[] as &[i32], |x| *x).is_empty());
        assert_eq!(distinct_batches(&[7], |x| *x), vec![&[7][..]]);
    }

    #[test]
    fn a_failure_and_its_answer_agree_on_whether_a_retry_can_help() {
        let failures = [
            Failure::Invalid {
                field: "data".into(),
                detail: "x".into(),
            },
            Failure::unavailable("the database is unavailable"),
            Failure::InProgress("x".into()),
            Failure::Internal("x".into()),
        ];
        let retryable: Vec<bool> = failures.iter().map(Failure::is_retryable).collect();
        assert_eq!(retryable, [false, true, true, false]);
        for failure in failures {
            let want = failure.is_retryable();
            let problem = crate::server::failure_problem("t", "e", failure);
            assert_eq!(problem.is_retryable(), want, "{problem}");
        }
    }

    #[test]
    fn an_event_no_step_answered_is_an_internal_failure_not_a_panic() {
        let mut answers = Answers::new(2);
        answers.set(0, Err(Failure::unavailable("x")));
        let done = answers.finish();
        assert_eq!(done[0], Err(Failure::unavailable("x")));
        assert!(matches!(done[1], Err(Failure::Internal(_))));
    }
}
