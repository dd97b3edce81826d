//! Group commit for the HTTP path.
//!
//! Knative delivers one event per request, but a function handles a batch of events in about
//! the time of one (the consumer path's set-based SQL: one read, one write transaction). So
//! the HTTP host does not run each request's event on its own: it queues it on one of a few
//! *lanes*, and each lane handles, as one batch, everything that queued while its previous
//! batch ran; every request still gets its own answer. Nothing waits on purpose: a request
//! that finds its lane idle is handled at once, alone, so a lightly loaded function answers
//! as fast as before. Batches only form when requests arrive faster than transactions finish,
//! which is when they pay (PostgreSQL's WAL flushes are grouped the same way).
//!
//! Why lanes chosen by key: the lane of an event is a hash of the row it changes
//! ([`Function::key`]), as Kafka's partitioner chooses the consumer path's partition. Events
//! for one row are handled in one lane, in order, so two batch transactions running at once
//! never touch the same row: no lock waits between batches, no deadlocks. Several lanes keep
//! the database busy while one batch is being decided or answered.
//!
//! One bad event never fails its neighbours: [`Function::handle_batch`] handles again, alone,
//! each event of a batch that got an internal failure (a write refused for a reason of its
//! own), and a batch that panics answers each of its events with an internal error while the
//! lane goes on.

use crate::function::{Event, Failure, Function, Reply};
use crate::metrics::Metrics;
use futures::FutureExt;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, Span};

/// How the HTTP host groups concurrent requests into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Most events in one batch (`GROUP_COMMIT_MAX_EVENTS`, default 200 as the consumer
    /// path's `KAFKA_CONSUMER_BATCH`; 1 handles every request alone, as without group commit).
    pub max_events: usize,
    /// Batches handled at once (`GROUP_COMMIT_LANES`, default 4): each holds one database
    /// connection while it runs, so keep it at most `DATABASE_MAX_CONNECTIONS`.
    pub lanes: usize,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            max_events: 200,
            lanes: 4,
        }
    }
}

/// An event waiting in a lane, with its request's span and where its answer goes.
struct Job<D> {
    event: Event<D>,
    span: Span,
    answer: oneshot::Sender<Result<Reply, Failure>>,
}

/// The lanes of one function: queues, each drained by its own task.
pub struct Lanes<F: Function> {
    queues: Vec<mpsc::UnboundedSender<Job<F::Data>>>,
    hasher: RandomState,
}

impl<F: Function> Lanes<F> {
    /// Starts `options.lanes` lane tasks on the current Tokio runtime. They end when the
    /// `Lanes` is dropped, once their queues are empty.
    pub fn start(function: Arc<F>, metrics: Metrics, options: GroupCommit) -> Self {
        let queues = (0..options.lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                let max_events = options.max_events.max(1);
                tokio::spawn(lane(function.clone(), metrics.clone(), rx, max_events));
                tx
            })
            .collect();
        Self {
            queues,
            hasher: RandomState::new(),
        }
    }

    /// Handles one event in its lane (with whatever else is queued there) and answers it.
    /// The queue is unbounded: the HTTP host admits at most `MAX_IN_FLIGHT` requests.
    pub async fn handle(&self, event: Event<F::Data>, span: Span) -> Result<Reply, Failure> {
        let lane = self.hasher.hash_one(F::key(&event.1)) as usize % self.queues.len();
        let (answer, answered) = oneshot::channel();
        self.queues[lane]
            .send(Job { event, span, answer })
            .map_err(|_| Failure::unavailable("the function is shutting down"))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Failure::Internal("the batch ended without an answer".into())))
    }
}

/// One lane: takes what has queued (at least one event, at most `max_events`), handles it as
/// one batch, answers each request, and starts again.
async fn lane<F: Function>(
    function: Arc<F>,
    metrics: Metrics,
    mut queue: mpsc::UnboundedReceiver<Job<F::Data>>,
    max_events: usize,
) {
    let mut jobs = Vec::with_capacity(max_events);
    while queue.recv_many(&mut jobs, max_events).await > 0 {
        metrics.observe_batch("http", jobs.len());
        let span = batch_span::<F>(&jobs);
        let (events, answers): (Vec<_>, Vec<_>) = jobs.drain(..).map(|j| (j.event, j.answer)).unzip();
        let count = events.len();
        let results = AssertUnwindSafe(function.handle_batch(events).instrument(span))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(function = F::NAME, events = count, "a batch panicked");
                vec![Err(Failure::Internal("the batch panicked".into())); count]
            });
        for (answer, result) in answers.into_iter().zip(results) {
            // A request whose client went away has dropped its receiver: its effect is done
            // all the same, and a redelivery will be answered `duplicate`.
            let _ = answer.send(result);
        }
    }
}

/// A batch of one runs in its request's span (which continues the publisher's trace); a
/// larger batch gets its own span, linked to each request's.
fn batch_span<F: Function>(jobs: &[Job<F::Data>]) -> Span {
    if let [one] = jobs {
        return one.span.clone();
    }
    let span = tracing::info_span!(
        "handle_batch",
        otel.name = %format!("{} {} batch", F::NAME, F::ACCEPTS.cloudevent_type()),
        function = F::NAME,
        events = jobs.len(),
    );
    for job in jobs {
        span.follows_from(&job.span);
    }
    span
}
