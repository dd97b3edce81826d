//! Direct consumer mode: a function consumes its topic itself (the `keda/` deployment).
//!
//! - One consumer group per function (`KAFKA_GROUP`, default the function's name).
//! - Each partition is handled by its own task, in offset order, so a message that keeps
//!   failing holds up only its own partition; per-user order (the message key) is kept.
//! - A partition task hands the function everything queued for it at once, up to
//!   `KAFKA_CONSUMER_BATCH` messages: one database transaction per batch instead of one per
//!   message when the consumer is behind, a batch of one when it keeps up.
//! - An offset is stored only after the effects of its whole batch are recorded (or the
//!   messages dead-lettered);
//!   stored offsets are committed every second and on rebalance and shutdown. A crash
//!   therefore redelivers, and the functions' once-only effects absorb the redelivery.
//! - Transient failures (`409`, `429`, `503` in HTTP terms) are retried with exponential
//!   backoff (`KAFKA_BACKOFF_DELAY` × 2^n before retry n); after `KAFKA_RETRY` retries, if
//!   set, they go to `<topic>.dlq` like permanent ones (invalid events, bugs), so one event
//!   that keeps failing holds its partition up for a bounded time.
//! - SIGTERM: stop fetching, finish the batch in hand, commit, leave the group.

use crate::config::KafkaConfig;
use crate::dead_letters;
use crate::producer::EventProducer;
use cloudevents::binding::rdkafka::MessageExt;
use futures::FutureExt;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{ClientConfig, ClientContext};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use todo_events_host::decode::{from_event, Decoded};
use todo_events_host::server::problem_outcome;
use todo_events_host::{EventData, Function, Host, Problem, Shutdown};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Stray messages (fetched before their partition got its own queue) buffered per partition.
const STRAY_QUEUE: usize = 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

type PartitionKey = (String, i32);
type PartitionQueue = StreamPartitionQueue<Context>;

/// Tracks the live partition tasks, so a revoked partition's task stops at once.
#[derive(Default)]
struct Partitions {
    revoked: Mutex<HashMap<PartitionKey, CancellationToken>>,
}

/// A partition just assigned: its own message queue and its revocation flag.
struct Assigned {
    key: PartitionKey,
    queue: Option<PartitionQueue>,
    revoked: CancellationToken,
}

struct Context {
    partitions: Arc<Partitions>,
    /// The consumer itself, to split each assigned partition off into its own queue.
    consumer: OnceLock<Weak<StreamConsumer<Context>>>,
    assigned: mpsc::UnboundedSender<Assigned>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let mut live = self.partitions.revoked.lock().expect("not poisoned");
            for elem in list.elements() {
                if let Some(flag) = live.remove(&(elem.topic().to_owned(), elem.partition())) {
                    flag.cancel();
                }
            }
            // Hand over cleanly: what is done is committed before the partitions move.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!("commit before rebalance: {e}");
            }
            tracing::info!("partitions revoked: {}", list.count());
        }
    }

    /// Each assigned partition gets its own queue here, inside the rebalance (before its
    /// first fetch), so its task reads it directly: one slow partition never holds up the
    /// others, and partitions are handled in parallel. (librdkafka resets the split on every
    /// assignment, hence here.)
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let consumer = self.consumer.get().and_then(Weak::upgrade);
            let mut live = self.partitions.revoked.lock().expect("not poisoned");
            for elem in list.elements() {
                let key = (elem.topic().to_owned(), elem.partition());
                let revoked = CancellationToken::new();
                if let Some(old) = live.insert(key.clone(), revoked.clone()) {
                    old.cancel();
                }
                let queue = consumer
                    .as_ref()
                    .and_then(|c| c.split_partition_queue(&key.0, key.1));
                let _ = self.assigned.send(Assigned { key, queue, revoked });
            }
            tracing::info!("partitions assigned: {}", list.count());
        }
    }
}

/// What the consumer needs besides the function.
pub struct ConsumerOptions {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub group: String,
}

/// The consumer's client settings: the group, offsets stored by hand after the effect and
/// committed every second, where a new group starts, rebalancing, fetch and session timing.
pub fn consumer_config(opts: &ConsumerOptions) -> ClientConfig {
    let mut config = opts.kafka.client_config();
    config
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Offsets are stored by hand, after the effect.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Incremental rebalancing: when KEDA adds or removes a consumer, only the partitions
        // that change owner stop and move; the others go on. (The eager default revoked every
        // partition of every member at each scale step: seconds without delivery each time,
        // and partitions handed back to the same member stalled, seen in the rehearsal while
        // the HPA scaled down a pod a minute: docs/DEPLOYMENT.md, "Scenarios and figures".)
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A fetch waits at most 100 ms for new messages (librdkafka's default is 500 ms):
        // a due reminder is not held up by an idle fetch.
        .set("fetch.wait.max.ms", "100")
        .set(
            "session.timeout.ms",
            opts.kafka.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (opts.kafka.session_timeout.as_millis() / 3).max(100).to_string(),
        );
    config
}

/// The metrics `outcome` of an event sent to the dead-letter topic.
pub const DEAD_LETTERED: &str = "dead_lettered";

/// Consumes `opts.topic` with `host`'s function until `shutdown`.
pub async fn consume<F: Function>(
    host: Host<F>,
    opts: ConsumerOptions,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let partitions = Arc::new(Partitions::default());
    let (assigned_tx, mut assigned_rx) = mpsc::unbounded_channel();
    let consumer: StreamConsumer<Context> = consumer_config(&opts).create_with_context(Context {
        partitions: partitions.clone(),
        consumer: OnceLock::new(),
        assigned: assigned_tx,
    })?;
    let consumer = Arc::new(consumer);
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    consumer.subscribe(&[&opts.topic])?;
    let producer = EventProducer::new(&opts.kafka)?;
    let dlq_topic = dead_letters::topic_for(&opts.topic);
    tracing::info!(
        function = F::NAME,
        topic = %opts.topic,
        group = %opts.group,
        "consuming; dead letters go to {dlq_topic}"
    );

    let mut workers: HashMap<PartitionKey, (mpsc::Sender<OwnedMessage>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let spawn = |assigned: Assigned| {
        let (tx, rx) = mpsc::channel(STRAY_QUEUE);
        let worker = PartitionWorker {
            host: host.clone(),
            consumer: consumer.clone(),
            producer: producer.clone(),
            dlq_topic: dlq_topic.clone(),
            revoked: assigned.revoked,
            shutdown: shutdown.clone(),
            batch: opts.kafka.consumer_batch,
            retry: opts.kafka.retry,
        };
        (tx, tokio::spawn(worker.work(assigned.queue, rx)))
    };
    loop {
        // The main queue serves the group's events (rebalances) and any message of a
        // partition that has no queue of its own yet.
        let message = tokio::select! {
            Some(assigned) = assigned_rx.recv() => {
                let key = assigned.key.clone();
                // The old task of this partition (if any) was flagged and stops by itself.
                workers.insert(key, spawn(assigned));
                continue;
            }
            m = consumer.recv() => m,
            _ = shutdown.wait() => break,
        };
        let message: BorrowedMessage<'_> = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("Kafka consumer error: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let key = (message.topic().to_owned(), message.partition());
        let owned = message.detach();
        drop(message);
        if workers.get(&key).is_none_or(|(tx, _)| tx.is_closed()) {
            // Assigned without a queue of its own: its task reads what the main queue gives.
            let revoked = partitions
                .revoked
                .lock()
                .expect("not poisoned")
                .entry(key.clone())
                .or_default()
                .clone();
            workers.insert(
                key.clone(),
                spawn(Assigned {
                    key: key.clone(),
                    queue: None,
                    revoked,
                }),
            );
        }
        let (tx, _) = workers.get(&key).expect("worker just ensured");
        tokio::select! {
            sent = tx.send(owned) => { let _ = sent; }
            _ = shutdown.wait() => break,
        }
    }

    // Shutdown: stop fetching, let each partition task finish the batch in hand.
    for (_, (tx, handle)) in workers.drain() {
        drop(tx);
        let _ = handle.await;
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!("final commit: {e}");
    }
    producer.flush(Duration::from_secs(10));
    consumer.unsubscribe();
    tracing::info!(
        function = F::NAME,
        "consumer stopped; offsets committed, group left"
    );
    Ok(())
}

struct PartitionWorker<F> {
    host: Host<F>,
    consumer: Arc<StreamConsumer<Context>>,
    producer: EventProducer,
    dlq_topic: String,
    revoked: CancellationToken,
    shutdown: Shutdown,
    batch: usize,
    retry: crate::config::RetryPolicy,
}

/// A message of a batch and where it stands.
enum Slot {
    /// Decoded, not handled yet (or to be retried).
    Pending(Decoded),
    /// Effect recorded, or dead-lettered.
    Settled,
}

impl<F: Function> PartitionWorker<F> {
    /// Takes batches from the partition's own queue (and any strays the main queue
    /// passed on, which are older) until shutdown or revocation.
    async fn work(self, queue: Option<PartitionQueue>, mut strays: mpsc::Receiver<OwnedMessage>) {
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(self.batch);
        let mut strays_open = true;
        loop {
            if !strays_open && queue.is_none() {
                break;
            }
            let first = tokio::select! {
                biased;
                _ = self.shutdown.wait() => break,
                // Revoked: stop taking messages at once (the partition's queue may already
                // feed this partition's next task).
                _ = self.revoked.cancelled() => break,
                m = strays.recv(), if strays_open => match m {
                    Some(m) => m,
                    None => {
                        // The main loop let go of this partition: only the queue is left.
                        strays_open = false;
                        continue;
                    }
                },
                m = next(queue.as_ref()), if queue.is_some() => match m {
                    Some(m) => m,
                    None => continue,
                },
            };
            // Whatever else is ready joins the batch: one message when the consumer keeps
            // up (no added latency), many when it is behind.
            batch.push(first);
            while batch.len() < self.batch && !self.revoked.is_cancelled() {
                if let Ok(m) = strays.try_recv() {
                    batch.push(m);
                    continue;
                }
                match queue.as_ref().map(|q| q.recv().now_or_never()) {
                    Some(Some(Ok(m))) => batch.push(m.detach()),
                    _ => break,
                }
            }
            if self.revoked.is_cancelled() {
                // The partition moved to another consumer, which will redeliver these.
                break;
            }
            if !self.process(&batch).await {
                break; // shutdown or revocation while retrying: the offset stays
            }
            let last = batch.last().expect("a batch has a first message");
            if let Err(e) = self
                .consumer
                .store_offset(last.topic(), last.partition(), last.offset())
            {
                tracing::debug!("offset not stored (partition moved?): {e}");
            }
            batch.clear();
        }
    }

    /// Handles a batch until every message is done (effect recorded or dead-lettered):
    /// transient failures are retried, the failed messages only, with backoff. Returns
    /// false if shutdown or the partition's revocation interrupted a retry.
    async fn process(&self, messages: &[OwnedMessage]) -> bool {
        let metrics = self.host.metrics();
        let mut slots = Vec::with_capacity(messages.len());
        for message in messages {
            let decoded = match message.to_event() {
                Ok(event) => from_event(event, F::Data::KINDS),
                Err(e) => Err(Problem::invalid("message", format!("not a CloudEvent: {e}"))),
            };
            match decoded {
                Ok(d) => slots.push(Slot::Pending(d)),
                Err(problem) => {
                    metrics.observe("other", DEAD_LETTERED, 0.0);
                    if !self.dead_letter(message, &problem.to_string()).await {
                        return false;
                    }
                    slots.push(Slot::Settled);
                }
            }
        }
        let mut retry = 0;
        loop {
            let pending: Vec<usize> = (0..slots.len())
                .filter(|&i| matches!(slots[i], Slot::Pending(_)))
                .collect();
            if pending.is_empty() {
                return true;
            }
            let events = pending
                .iter()
                .map(|&i| match &slots[i] {
                    Slot::Pending(d) => d.clone(),
                    Slot::Settled => unreachable!("filtered"),
                })
                .collect();
            let started = Instant::now();
            let results = self.host.handle_batch(events).await;
            let elapsed = started.elapsed().as_secs_f64();
            let ty = F::ACCEPTS.cloudevent_type();
            let mut retrying = None;
            for (i, result) in pending.into_iter().zip(results) {
                match result {
                    Ok((id, reply)) => {
                        metrics.observe(ty, reply.outcome.word(), elapsed);
                        tracing::debug!(event_id = %id, outcome = reply.outcome.word(), "handled");
                        slots[i] = Slot::Settled;
                    }
                    Err(problem) if problem.is_retryable() => {
                        metrics.observe(ty, problem_outcome(&problem), elapsed);
                        retrying.get_or_insert((i, problem));
                    }
                    Err(problem) => {
                        metrics.observe(ty, DEAD_LETTERED, elapsed);
                        if !self.dead_letter(&messages[i], &problem.to_string()).await {
                            return false;
                        }
                        slots[i] = Slot::Settled;
                    }
                }
            }
            if let Some((i, problem)) = retrying {
                retry += 1;
                let Some(wait) = self.retry.wait_before(retry) else {
                    // The retries are used up: what still fails goes to the dead letters.
                    return self.give_up(messages, &mut slots, retry - 1, &problem).await;
                };
                tracing::warn!(
                    partition = messages[i].partition(),
                    offset = messages[i].offset(),
                    "will retry in {wait:?} (retry {retry}): {problem}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.shutdown.wait() => return false,
                    // The partition moved to another consumer, which redelivers from the
                    // committed offset: retrying (and dead-lettering) here too would do the
                    // work twice.
                    _ = self.revoked.cancelled() => return false,
                }
            }
        }
    }

    /// Dead-letters the messages still pending after `retries` retries.
    async fn give_up(
        &self,
        messages: &[OwnedMessage],
        slots: &mut [Slot],
        retries: u32,
        problem: &Problem,
    ) -> bool {
        let reason = format!("failed after {retries} retries: {problem}");
        for (message, slot) in messages.iter().zip(slots.iter_mut()) {
            if matches!(slot, Slot::Pending(_)) {
                self.host
                    .metrics()
                    .observe(F::ACCEPTS.cloudevent_type(), DEAD_LETTERED, 0.0);
                if !self.dead_letter(message, &reason).await {
                    return false;
                }
                *slot = Slot::Settled;
            }
        }
        true
    }

    async fn dead_letter(&self, message: &OwnedMessage, reason: &str) -> bool {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match dead_letters::publish(&self.producer, &self.dlq_topic, message, reason).await {
                Ok(()) => {
                    tracing::warn!(
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        "dead-lettered to {}: {reason}",
                        self.dlq_topic
                    );
                    return true;
                }
                Err(e) => {
                    tracing::warn!("dead letter not accepted, retrying in {backoff:?}: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.wait() => return false,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The next message of a partition queue (`None` after a consumer error, logged).
async fn next(queue: Option<&PartitionQueue>) -> Option<OwnedMessage> {
    let queue = queue?;
    match queue.recv().await {
        Ok(m) => Some(m.detach()),
        Err(e) => {
            tracing::warn!("Kafka consumer error: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        }
    }
}
