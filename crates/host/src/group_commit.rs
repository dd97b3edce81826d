//! Group commit for the HTTP path.
//!
//! Knative delivers one event per request, but a function handles a batch of events in about
//! the time of one (the consumer path's set-based SQL: one read, one write transaction). So
//! concurrent requests are grouped on a few *lanes*: a request that finds its lane idle is
//! handled at once, alone (a lightly loaded function answers as it did without group
//! commit); a request that finds its lane busy queues there, and when the running batch is
//! done, the lane's task takes everything that queued meanwhile (up to `max_events`) as the
//! lane's next batch, and so on until the queue is empty. Every request still gets its own answer. Nothing waits on purpose: batches only
//! form when requests arrive faster than transactions finish, which is when they pay
//! (PostgreSQL groups its WAL flushes the same way).
//!
//! Why lanes chosen by key: the lane of an event is a hash of the row it changes
//! ([`Function::key`]), as Kafka's partitioner chooses the consumer path's partition. Events
//! for one row are handled in one lane, one batch after the other, so two batch transactions
//! running at once never touch the same row: no lock waits between batches, no deadlocks.
//! Several lanes keep the database busy while one batch is being decided or answered.
//!
//! One bad event never fails its neighbours: [`Function::handle_batch`] handles again, alone,
//! each event of a batch that got an internal failure (a write refused for a reason of its
//! own), and a batch that panics answers each of its events with an internal error while the
//! lane goes on.
//!
//! Why every batch runs in a task of its own, never in a request's future: actix drops a
//! handler's future when its client resets the connection, and a batch dropped mid-send
//! leaves its deliveries `sending` until their lease, when a redelivery sends a second copy.
//! A request only awaits its answer; its going away cancels nothing.

use crate::function::{Event, Failure, Function, Reply};
use crate::metrics::Metrics;
use futures::FutureExt;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;
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

/// What a queued event keeps until its answer is sent (the HTTP host's in-flight permit): an
/// effect still running counts against the limit after its client went away.
pub type Hold = Box<dyn Send>;

/// An event waiting in a lane, with its request's span and where its answer goes.
struct Job<D> {
    event: Event<D>,
    span: Span,
    answer: oneshot::Sender<Result<Reply, Failure>>,
    hold: Hold,
}

/// One lane: whether a batch of it is running, and the events queued for the next one.
struct Lane<D> {
    busy: bool,
    queue: Vec<Job<D>>,
}

/// What a lane's batches need.
struct Shared<F: Function> {
    function: Arc<F>,
    metrics: Metrics,
    max_events: usize,
}

/// The lanes of one function.
pub struct Lanes<F: Function> {
    shared: Arc<Shared<F>>,
    lanes: Vec<Arc<Mutex<Lane<F::Data>>>>,
    hasher: RandomState,
    /// Where batches run: the runtime that started the server, not an HTTP worker's, which
    /// ends when its last connection does (a batch must outlive the request that brought it).
    runtime: tokio::runtime::Handle,
}

impl<F: Function> Lanes<F> {
    /// Lanes whose batches run on the current tokio runtime.
    pub fn new(function: Arc<F>, metrics: Metrics, options: GroupCommit) -> Self {
        let lanes = (0..options.lanes.max(1))
            .map(|_| {
                Arc::new(Mutex::new(Lane {
                    busy: false,
                    queue: Vec::new(),
                }))
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                function,
                metrics,
                max_events: options.max_events.max(1),
            }),
            lanes,
            hasher: RandomState::new(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Handles one event in its lane: at once when the lane is idle (a batch of one), else
    /// with whatever else queued there while the running batch finishes. Either way the batch
    /// runs in a task of its own and this future only awaits its answer: a caller that goes
    /// away (a client resetting its connection drops the request's future) cancels nothing,
    /// the effect completes and is recorded, and a redelivery is answered `duplicate`.
    /// `hold` is kept until the event's answer is sent. The queue needs no bound of its own:
    /// the HTTP host admits at most `MAX_IN_FLIGHT` events, each holding its permit here.
    pub async fn handle(&self, event: Event<F::Data>, span: Span, hold: Hold) -> Result<Reply, Failure> {
        let lane = &self.lanes[self.hasher.hash_one(F::key(&event.1)) as usize % self.lanes.len()];
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut state = lock(lane);
            state.queue.push(Job {
                event,
                span,
                answer,
                hold,
            });
            !std::mem::replace(&mut state.busy, true)
        };
        if start {
            // The lane was idle: this request's event is the whole of its next batch.
            self.runtime.spawn(drain(lane.clone(), self.shared.clone()));
        }
        answered.await.unwrap_or_else(|_| Err(unanswered()))
    }
}

/// A lane taken by a [`drain`] task. The task hands it back itself when its queue is empty
/// ([`next_batch`]); if the task is dropped instead (only when its runtime ends, as the
/// process does), the guard answers what is still queued and leaves the lane idle, so that
/// no request waits for a batch that will never run.
///
/// The guard knows whether its task handed the lane back, rather than reading `busy`: once
/// handed back, a request may take the lane for a task of its own before this guard is
/// dropped, and a guard that judged by `busy` then answered that request "shutting down"
/// and marked the lane idle under the new task, so that a third request started a second
/// batch of the lane beside it (1 request in 93 069 at 64 clients, 2026-12-07).
struct Turn<D> {
    lane: Arc<Mutex<Lane<D>>>,
    handed_back: bool,
}

impl<D> Drop for Turn<D> {
    fn drop(&mut self) {
        if self.handed_back {
            return;
        }
        let mut state = lock(&self.lane);
        for job in state.queue.drain(..) {
            let _ = job
                .answer
                .send(Err(Failure::unavailable("the function is shutting down")));
        }
        state.busy = false;
    }
}

/// Runs the lane's queued events, batch after batch, until none are left.
async fn drain<F: Function>(lane: Arc<Mutex<Lane<F::Data>>>, shared: Arc<Shared<F>>) {
    let mut turn = Turn {
        lane,
        handed_back: false,
    };
    while let Some(jobs) = next_batch(&mut turn, shared.max_events) {
        let span = batch_span::<F>(&jobs);
        let mut events = Vec::with_capacity(jobs.len());
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            events.push(job.event);
            answers.push((job.answer, job.hold));
        }
        let results = run(&shared, events, span).await;
        for ((answer, hold), result) in answers.into_iter().zip(results) {
            // A request whose client went away has dropped its receiver: its effect is done
            // all the same, and a redelivery will be answered `duplicate`.
            let _ = answer.send(result);
            drop(hold);
        }
    }
}

/// The lane's next batch (at most `max` of its queued events, oldest first), or `None`
/// when none are queued: then the lane is handed back (idle), in the same critical section.
fn next_batch<D>(turn: &mut Turn<D>, max: usize) -> Option<Vec<Job<D>>> {
    let mut state = lock(&turn.lane);
    if state.queue.is_empty() {
        state.busy = false;
        drop(state);
        turn.handed_back = true;
        return None;
    }
    let take = state.queue.len().min(max);
    Some(state.queue.drain(..take).collect())
}

/// One batch through the function, counted; a panic answers each event with an internal
/// error instead of taking the lane down.
async fn run<F: Function>(
    shared: &Shared<F>,
    events: Vec<Event<F::Data>>,
    span: Span,
) -> Vec<Result<Reply, Failure>> {
    let count = events.len();
    shared.metrics.observe_batch("http", count);
    AssertUnwindSafe(shared.function.handle_batch(events).instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(function = F::NAME, events = count, "a batch panicked");
            vec![Err(Failure::Internal("the batch panicked".into())); count]
        })
}

/// The answer of an event its batch gave none (a bug, reported as one).
fn unanswered() -> Failure {
    Failure::Internal("the batch ended without an answer".into())
}

/// A lane's state; a panic while it was held cannot leave it inconsistent (every update is
/// one assignment or one push/drain), so a poisoned lock is used as it is.
fn lock<D>(lane: &Mutex<Lane<D>>) -> MutexGuard<'_, Lane<D>> {
    lane.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> (Job<()>, oneshot::Receiver<Result<Reply, Failure>>) {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            event: (id.to_owned(), ()),
            span: Span::none(),
            answer,
            hold: Box::new(()),
        };
        (job, answered)
    }

    fn taken_lane() -> Arc<Mutex<Lane<()>>> {
        Arc::new(Mutex::new(Lane {
            busy: true,
            queue: Vec::new(),
        }))
    }

    /// The interleaving that answered a request "shutting down": the task hands the lane
    /// back, a request takes it for a task of its own, and only then is the first task's
    /// guard dropped. The request must stay queued for its task, the lane taken.
    #[test]
    fn a_lane_handed_back_then_taken_again_keeps_its_new_request() {
        let lane = taken_lane();
        let mut turn = Turn {
            lane: lane.clone(),
            handed_back: false,
        };
        assert!(next_batch(&mut turn, 200).is_none(), "nothing was queued");
        assert!(!lock(&lane).busy, "handed back");

        // What `Lanes::handle` does for a request that finds the lane idle.
        let (queued, mut answered) = job("e-1");
        {
            let mut state = lock(&lane);
            state.queue.push(queued);
            assert!(!std::mem::replace(&mut state.busy, true));
        }
        drop(turn);

        let state = lock(&lane);
        assert!(state.busy, "the new task's lane stays taken");
        assert_eq!(state.queue.len(), 1, "the request waits for its batch");
        assert!(answered.try_recv().is_err(), "and has no answer yet");
    }

    /// A task dropped while it held the lane (its runtime ended) answers what is queued and
    /// leaves the lane idle.
    #[test]
    fn a_task_dropped_mid_batch_answers_its_queue_and_frees_the_lane() {
        let lane = taken_lane();
        let (queued, mut answered) = job("e-1");
        lock(&lane).queue.push(queued);
        drop(Turn {
            lane: lane.clone(),
            handed_back: false,
        });

        let state = lock(&lane);
        assert!(!state.busy);
        assert!(state.queue.is_empty());
        match answered.try_recv() {
            Ok(Err(failure)) => assert!(format!("{failure:?}").contains("shutting down"), "{failure:?}"),
            other => panic!("expected a shutting-down answer, got {other:?}"),
        }
    }

    /// Batches take at most `max` events, oldest first, and leave the rest queued.
    #[test]
    fn a_batch_takes_the_oldest_events_up_to_its_size() {
        let lane = taken_lane();
        let mut receivers = Vec::new();
        for i in 0..5 {
            let (queued, answered) = job(&format!("e-{i}"));
            lock(&lane).queue.push(queued);
            receivers.push(answered);
        }
        let mut turn = Turn {
            lane: lane.clone(),
            handed_back: false,
        };
        let first: Vec<String> = next_batch(&mut turn, 3)
            .expect("a batch")
            .into_iter()
            .map(|j| j.event.0)
            .collect();
        assert_eq!(first, ["e-0", "e-1", "e-2"]);
        assert_eq!(next_batch(&mut turn, 3).expect("a batch").len(), 2);
        assert!(next_batch(&mut turn, 3).is_none());
        assert!(!lock(&lane).busy);
    }
}
