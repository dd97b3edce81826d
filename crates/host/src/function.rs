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

    /// Readiness: can the function do its work now (its database reachable)?
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}
