//! What a function is to the host: the type it accepts and a handler from parsed data to an
//! outcome. Transport adapters (HTTP today, Kafka consumers later) all call [`Function::handle`].

use serde::de::DeserializeOwned;
use std::future::Future;
use todo_events_domain::EventKind;

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
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Self::Done(word) => word,
            Self::Duplicate => "duplicate",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
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
}

impl Reply {
    pub fn new(outcome: Outcome, reason: impl Into<String>, details: serde_json::Value) -> Self {
        Self {
            outcome,
            reason: reason.into(),
            details,
            due: None,
        }
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
    /// A dependency is down or said "later": `503`, retried.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The same event is being handled right now by another delivery: `409`, retried.
    #[error("in progress: {0}")]
    InProgress(String),
    /// A bug: `500`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<todo_events_store::StoreError> for Failure {
    fn from(e: todo_events_store::StoreError) -> Self {
        if e.is_transient() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

/// A serverless function: one event type in, one effect out.
pub trait Function: Send + Sync + 'static {
    /// Name in logs, metrics and reply sources: `notify`, `recur`.
    const NAME: &'static str;
    /// The event type this function accepts.
    const ACCEPTS: EventKind;
    /// Reply types are `<REPLY_PREFIX>.<outcome word>`, e.g. `dev.todo.notification.sent`.
    const REPLY_PREFIX: &'static str;
    /// The event data, parsed once by the host.
    type Data: DeserializeOwned + Send;

    /// Performs the effect for one event, once.
    fn handle(&self, event_id: &str, data: Self::Data)
        -> impl Future<Output = Result<Reply, Failure>> + Send;

    /// Handles several events together, in order, with one result per event (the consumer
    /// mode hands over what a partition has queued, so a batch shares one database
    /// transaction). The default handles them one by one.
    fn handle_batch(
        &self,
        events: Vec<(String, Self::Data)>,
    ) -> impl Future<Output = Vec<Result<Reply, Failure>>> + Send {
        async move {
            let mut results = Vec::with_capacity(events.len());
            for (id, data) in events {
                results.push(self.handle(&id, data).await);
            }
            results
        }
    }

    /// Readiness: can the function do its work now (its database reachable)?
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Splits `items` into consecutive runs in which no key repeats: a batch handler decides a
/// run against rows read once, which is only right when no event of the run changes the
/// rows another one reads (two occurrences of one recurring task, a redelivered reminder).
pub fn distinct_runs<T, K: Eq + std::hash::Hash>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(key(item)) {
            runs.push(&items[start..i]);
            start = i;
            seen.clear();
            seen.insert(key(item));
        }
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::distinct_runs;

    #[test]
    fn runs_split_where_a_key_repeats() {
        let items = [1, 2, 3, 2, 4, 4, 5];
        let runs = distinct_runs(&items, |x| *x);
        assert_eq!(runs, vec![&[1, 2, 3][..], &[2, 4][..], &[4, 5][..]]);
        assert!(distinct_runs(&[] as &[i32], |x| *x).is_empty());
        assert_eq!(distinct_runs(&[7], |x| *x), vec![&[7][..]]);
    }
}
