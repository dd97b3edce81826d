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
//!   backoff; permanent ones (invalid events, bugs) go to `<topic>.dlq` with the reason.
//! - SIGTERM: stop fetching, finish the batch in hand, commit, leave the group.

use crate::config::KafkaConfig;
use crate::dead_letters;
use crate::producer::EventProducer;
use cloudevents::binding::rdkafka::MessageExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use todo_events_host::decode::{from_event, Decoded};
use todo_events_host::server::problem_outcome;
use todo_events_host::{Function, Host, Problem, Shutdown};
use tokio::sync::mpsc;

/// Messages buffered per partition before the fetch loop waits for that partition.
const PARTITION_QUEUE: usize = 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

type PartitionKey = (String, i32);

/// Tracks the live partition tasks, so a revoked partition's task stops at once.
#[derive(Default)]
struct Partitions {
    revoked: Mutex<HashMap<PartitionKey, Arc<AtomicBool>>>,
}

struct Context {
    partitions: Arc<Partitions>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let mut live = self.partitions.revoked.lock().expect("not poisoned");
            for elem in list.elements() {
                if let Some(flag) = live.remove(&(elem.topic().to_owned(), elem.partition())) {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            // Hand over cleanly: what is done is committed before the partitions move.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!("commit before rebalance: {e}");
            }
            tracing::info!("partitions revoked: {}", list.count());
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
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

/// Consumes `opts.topic` with `host`'s function until `shutdown`.
pub async fn run<F: Function>(
    host: Host<F>,
    opts: ConsumerOptions,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let partitions = Arc::new(Partitions::default());
    let consumer: StreamConsumer<Context> = opts
        .kafka
        .client_config()
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Offsets are stored by hand, after the effect.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            opts.kafka.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (opts.kafka.session_timeout.as_millis() / 3).max(100).to_string(),
        )
        .create_with_context(Context {
            partitions: partitions.clone(),
        })?;
    consumer.subscribe(&[&opts.topic])?;
    let consumer = Arc::new(consumer);
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
    loop {
        let message = tokio::select! {
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
        let alive = workers.get(&key).is_some_and(|(tx, _)| !tx.is_closed());
        let live_flag = partitions
            .revoked
            .lock()
            .expect("not poisoned")
            .get(&key)
            .cloned();
        if !alive || live_flag.is_none() {
            let revoked = Arc::new(AtomicBool::new(false));
            partitions
                .revoked
                .lock()
                .expect("not poisoned")
                .insert(key.clone(), revoked.clone());
            let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
            let worker = PartitionWorker {
                host: host.clone(),
                consumer: consumer.clone(),
                producer: producer.clone(),
                dlq_topic: dlq_topic.clone(),
                revoked,
                shutdown: shutdown.clone(),
                batch: opts.kafka.consumer_batch,
            };
            let handle = tokio::spawn(worker.run(rx));
            if let Some((old_tx, old)) = workers.insert(key.clone(), (tx, handle)) {
                drop(old_tx);
                let _ = old.await;
            }
        }
        let (tx, _) = workers.get(&key).expect("worker just ensured");
        tokio::select! {
            sent = tx.send(owned) => { let _ = sent; }
            _ = shutdown.wait() => break,
        }
    }

    // Shutdown: stop fetching, let each partition task finish the message in hand.
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
    revoked: Arc<AtomicBool>,
    shutdown: Shutdown,
    batch: usize,
}

/// A message of a batch and where it stands.
enum Slot {
    /// Decoded, not handled yet (or to be retried).
    Pending(Decoded),
    /// Effect recorded, or dead-lettered.
    Settled,
}

impl<F: Function> PartitionWorker<F> {
    async fn run(self, mut rx: mpsc::Receiver<OwnedMessage>) {
        let mut batch = Vec::with_capacity(self.batch);
        while let Some(first) = rx.recv().await {
            // Whatever else is queued for this partition joins the batch: one message when
            // the consumer keeps up (no added latency), many when it is behind.
            batch.push(first);
            while batch.len() < self.batch {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if self.revoked.load(Ordering::SeqCst) {
                // The partition moved to another consumer, which will redeliver these.
                batch.clear();
                continue;
            }
            if self.shutdown.is_triggered() && rx.is_closed() {
                // Stopping: finish nothing new; uncommitted messages are redelivered.
                break;
            }
            if !self.process(&batch).await {
                break; // shutdown while retrying
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
    /// false if shutdown interrupted a retry.
    async fn process(&self, messages: &[OwnedMessage]) -> bool {
        let metrics = self.host.metrics();
        let mut slots = Vec::with_capacity(messages.len());
        for message in messages {
            let decoded = match message.to_event() {
                Ok(event) => from_event(event, F::ACCEPTS),
                Err(e) => Err(Problem::invalid("message", format!("not a CloudEvent: {e}"))),
            };
            match decoded {
                Ok(d) => slots.push(Slot::Pending(d)),
                Err(problem) => {
                    metrics.observe("other", "dead_lettered", 0.0);
                    if !self.dead_letter(message, &problem.to_string()).await {
                        return false;
                    }
                    slots.push(Slot::Settled);
                }
            }
        }
        let mut backoff = FIRST_BACKOFF;
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
                    Err(problem) if is_transient(&problem) => {
                        metrics.observe(ty, problem_outcome(&problem), elapsed);
                        retrying.get_or_insert((i, problem));
                    }
                    Err(problem) => {
                        metrics.observe(ty, "dead_lettered", elapsed);
                        if !self.dead_letter(&messages[i], &problem.to_string()).await {
                            return false;
                        }
                        slots[i] = Slot::Settled;
                    }
                }
            }
            if let Some((i, problem)) = retrying {
                tracing::warn!(
                    partition = messages[i].partition(),
                    offset = messages[i].offset(),
                    "will retry in {backoff:?}: {problem}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = self.shutdown.wait() => return false,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
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

/// Whether trying again later can help (HTTP: the statuses Knative retries).
pub fn is_transient(problem: &Problem) -> bool {
    matches!(problem.status, 408 | 409 | 429 | 503)
}
