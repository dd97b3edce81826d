//! Stand-in for the KafkaSource data plane of knative-extensions/eventing-kafka-broker
//! (`data-plane/dispatcher`): consumers of the source's group, each turning Kafka records
//! into HTTP requests to the sink through the CloudEvents Kafka → HTTP binding
//! (cloudevents-sdk here, the Java SDK there), with the source's delivery spec.
//!
//! - `ordering: ordered` (`OrderedConsumerVerticle`): one event in flight per partition,
//!   in offset order (`OrderedConsumerVerticle`, `OrderedAsyncExecutor`). `ordering:
//!   unordered` (`UnorderedConsumerVerticle`): a consumer polls only while fewer than
//!   `max.poll.records` events are in flight, and a poll brings up to as many again, so
//!   49 + 50 = 99 at most, in any order.
//! - Retries (`WebClientCloudEventSender`, `computeRetryPolicy`): an answer that may succeed
//!   later (5xx, 404, 408, 409, 429, or no answer) is sent again after
//!   `backoffDelay × 2^n` (exponential) or `backoffDelay × n` (linear) for retry n = 1, 2, …
//!   up to `retry`; then, or at once for any other answer, the event goes to the dead-letter
//!   sink with `knativeerrordest`, `knativeerrorcode` and `knativeerrordata` (the answer's
//!   body, base64, at most 1 024 bytes) added (`RecordDispatcherImpl`).
//! - OIDC sender identity (`authentication-oidc`): with `spec.sink.audience` set, each request
//!   carries `Authorization: Bearer <token>`, a token of the source's OIDC service account
//!   (`<source>-oidc-sources.knative.dev-kafkasource`, knative/eventing
//!   `pkg/auth/serviceaccount.go`) for that audience, requested for an hour and reused for
//!   55 minutes (`data-plane/dispatcher/.../auth/TokenProvider.java`); without an audience no
//!   token is sent (`WebClientCloudEventSender`). The world's issuer stand-in signs it.
//! - Offsets are committed for the longest run of finished records of each partition
//!   (`OffsetManager`), so lag, as KEDA reads it, is what is not yet finished.
//!
//! KEDA scales the source's virtual replicas: [`Dispatcher`] is a [`crate::keda::Target`],
//! and [`crate::placement`] decides on which dispatcher pods they run and so how many
//! consumers there are (one per pod holding any).

use crate::keda::Target;
use crate::manifests::KafkaSource;
use crate::placement::DispatcherPods;
use crate::serving::Serving;
use base64::Engine;
use cloudevents::binding::rdkafka::{FutureRecordExt, MessageExt, MessageRecord};
use cloudevents::{AttributesReader, Event};
use futures::future::BoxFuture;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use todo_events_kafka::KafkaConfig;
use todo_events_testkit::oidc::Issuer;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// `max.poll.records` of the source data plane's consumer configuration (eventing-kafka-broker
/// `data-plane/config/source/100-config-kafka-source-data-plane.yaml`).
pub const MAX_POLL_RECORDS: usize = 50;
/// `knativeerrordata` is cut to this many bytes of the answer (`RecordDispatcherImpl`).
const ERROR_DATA_MAX: usize = 1024;

/// Lifetime the dispatcher requests its tokens for, and how long it reuses one
/// (`TokenProvider.java`: `expirationSeconds` 3600, cache expiry 55 minutes).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const TOKEN_REUSE: Duration = Duration::from_secs(55 * 60);

/// The `sub` of `source`'s OIDC service account (knative/eventing `pkg/auth/serviceaccount.go`;
/// names short enough that `kmeta.ChildName` does not hash them, as check.py requires).
fn subject_of(source: &KafkaSource) -> String {
    format!(
        "system:serviceaccount:{}:{}-oidc-sources.knative.dev-kafkasource",
        source.namespace, source.name
    )
}

/// The source's OIDC tokens for its sink's audience.
struct Tokens {
    issuer: Arc<Issuer>,
    subject: String,
    audience: String,
    cached: Mutex<Option<(String, std::time::Instant)>>,
}

impl Tokens {
    /// `Bearer <token>`, a cached token while it is younger than [`TOKEN_REUSE`].
    fn authorization(&self) -> String {
        let mut cached = self.cached.lock().expect("not poisoned");
        match &*cached {
            Some((token, at)) if at.elapsed() < TOKEN_REUSE => format!("Bearer {token}"),
            _ => {
                let token = self
                    .issuer
                    .token_for(&self.subject, &self.audience, TOKEN_LIFETIME);
                *cached = Some((token.clone(), std::time::Instant::now()));
                format!("Bearer {token}")
            }
        }
    }
}

/// Counts of what the dispatcher did, for the report.
#[derive(Default)]
pub struct Counts {
    pub delivered: AtomicUsize,
    pub retried: AtomicUsize,
    pub dead_lettered: AtomicUsize,
}

pub struct Dispatcher {
    source: KafkaSource,
    kafka: KafkaConfig,
    sink: Arc<Serving>,
    tokens: Option<Tokens>,
    dead_letters: FutureProducer,
    pub counts: Arc<Counts>,
    /// Where its virtual replicas run.
    pods: Arc<DispatcherPods>,
    /// The virtual replicas KEDA asked for (the ConsumerGroup's `replicas`).
    vreplicas: std::sync::atomic::AtomicUsize,
}

impl Dispatcher {
    pub fn new(
        source: KafkaSource,
        kafka: KafkaConfig,
        sink: Arc<Serving>,
        issuer: Arc<Issuer>,
        pods: Arc<DispatcherPods>,
    ) -> anyhow::Result<Arc<Self>> {
        let dead_letters = kafka.client_config().set("acks", "all").create()?;
        let tokens = source.audience.clone().map(|audience| Tokens {
            issuer,
            subject: subject_of(&source),
            audience,
            cached: Mutex::new(None),
        });
        Ok(Arc::new(Self {
            source,
            kafka,
            sink,
            tokens,
            dead_letters,
            counts: Arc::default(),
            pods,
            vreplicas: Default::default(),
        }))
    }

    /// The KafkaSource's name.
    pub fn name(&self) -> &str {
        &self.source.name
    }

    /// Its consumer group.
    pub fn group(&self) -> &str {
        &self.source.group
    }

    /// The audience its tokens are for (`spec.sink.audience`), if any.
    pub fn audience(&self) -> Option<String> {
        self.source.audience.clone()
    }

    /// The subject of the source's OIDC service account.
    pub fn subject(&self) -> String {
        subject_of(&self.source)
    }
}

impl Target for Arc<Dispatcher> {
    fn replicas(&self) -> usize {
        self.vreplicas.load(Ordering::SeqCst)
    }

    fn scale(&self, n: usize) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.vreplicas.store(n, Ordering::SeqCst);
            self.pods.place(self, n);
        })
    }
}

/// Logs each rebalance of a consumer (when partitions move, nothing is delivered).
struct Rebalances(String, Arc<std::sync::atomic::AtomicBool>);

impl rdkafka::ClientContext for Rebalances {}

impl rdkafka::consumer::ConsumerContext for Rebalances {
    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        match rebalance {
            rdkafka::consumer::Rebalance::Assign(list) => {
                self.1.store(true, Ordering::SeqCst);
                tracing::info!("dispatcher {}: {} partition(s) assigned", self.0, list.count())
            }
            rdkafka::consumer::Rebalance::Revoke(list) => {
                tracing::info!("dispatcher {}: {} partition(s) revoked", self.0, list.count())
            }
            rdkafka::consumer::Rebalance::Error(e) => tracing::warn!("dispatcher {}: rebalance: {e}", self.0),
        }
    }
}

/// How long a consumer told to stop while it is still joining its group goes on joining
/// first (see [`consume`]).
const JOIN_BEFORE_LEAVING: Duration = Duration::from_secs(20);

/// One consumer of the source's group until cancelled: a dispatcher pod's egress.
///
/// A consumer cancelled while it is still joining its group (a second change of replicas
/// within seconds of the first, as KEDA's activation and the HPA's first step are) finishes
/// joining before it leaves, at most [`JOIN_BEFORE_LEAVING`]: Tansu, the broker here, does
/// not let a group's rebalance finish when a member leaves in the middle of joining (seen:
/// no assignment for minutes), where Apache Kafka removes the member at once. Upstream
/// closes the consumer at once; the difference is the few seconds of the join.
pub async fn consume(d: Arc<Dispatcher>, cancel: CancellationToken) {
    let joined = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut leaving_since: Option<std::time::Instant> = None;
    let mut may_leave = |joined: &std::sync::atomic::AtomicBool| {
        joined.load(Ordering::SeqCst)
            || leaving_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                >= JOIN_BEFORE_LEAVING
    };
    // The data plane's consumer settings (data-plane/config/source/
    // 100-config-kafka-source-data-plane.yaml): sessions of 10 s with a heartbeat every 3 s,
    // commits every 5 s (OffsetManager), initialOffset earliest. Its StickyAssignor is an
    // eager assignor librdkafka does not have; roundrobin is the nearest eager one.
    let consumer: Arc<StreamConsumer<Rebalances>> = match d
        .kafka
        .client_config()
        .set("group.id", &d.source.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "5000")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("partition.assignment.strategy", "roundrobin")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Rebalances(d.source.name.clone(), joined.clone()))
    {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!("dispatcher: consumer not created: {e}");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(&[&d.source.topic]) {
        tracing::error!("dispatcher: subscribe: {e}");
        return;
    }
    // Unordered: a poll only while fewer than max.poll.records are in flight, and a poll
    // brings at most max.poll.records: 2 × 50 − 1 permits, a poll when 50 are free.
    let bound = if d.source.ordered {
        usize::MAX >> 4
    } else {
        2 * MAX_POLL_RECORDS - 1
    };
    let in_flight = Arc::new(Semaphore::new(bound));
    // Once a second while busy (10 or more in flight or delivered): what is in flight and
    // what went out, for the logs.
    let sampler = {
        let (in_flight, counts, name) = (in_flight.clone(), d.counts.clone(), d.source.name.clone());
        let stop = cancel.clone();
        tokio::spawn(async move {
            let mut before = counts.delivered.load(Ordering::Relaxed);
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = counts.delivered.load(Ordering::Relaxed);
                let busy = bound - in_flight.available_permits();
                if busy >= 10 || now >= before + 10 {
                    tracing::info!(
                        "dispatcher {name}: {busy} in flight, {} delivered in the last second",
                        now - before
                    );
                }
                before = now;
            }
        })
    };
    let offsets: Arc<Mutex<HashMap<i32, Offsets>>> = Arc::default();
    let mut ordered_queues: HashMap<i32, mpsc::UnboundedSender<(Event, i64)>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Records left of the current poll.
    let mut poll_left = 0usize;
    loop {
        if poll_left == 0 {
            // The next poll: once fewer than max.poll.records are in flight.
            while !d.source.ordered && bound - in_flight.available_permits() >= MAX_POLL_RECORDS {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
            if cancel.is_cancelled() && may_leave(&joined) {
                break;
            }
            poll_left = MAX_POLL_RECORDS;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            poll_left = 0;
            continue;
        };
        let message = tokio::select! {
            _ = cancel.cancelled(), if !cancel.is_cancelled() => continue,
            _ = tokio::time::sleep(Duration::from_millis(100)), if cancel.is_cancelled() => {
                if may_leave(&joined) {
                    break;
                }
                continue;
            }
            m = consumer.recv() => m,
        };
        poll_left -= 1;
        let message = match message {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!("dispatcher: {e}");
                continue;
            }
        };
        let (partition, offset) = (message.partition(), message.offset());
        offsets
            .lock()
            .expect("not poisoned")
            .entry(partition)
            .or_default()
            .received(offset);
        let event = match message.to_event() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("dispatcher: record {partition}/{offset} is not a CloudEvent: {e}");
                finish(&consumer, &offsets, &d.source.topic, partition, offset);
                continue;
            }
        };
        let done = Done {
            consumer: consumer.clone(),
            offsets: offsets.clone(),
            topic: d.source.topic.clone(),
            partition,
            offset,
        };
        if d.source.ordered {
            drop(permit);
            let queue = ordered_queues.entry(partition).or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<(Event, i64)>();
                let d = d.clone();
                let (consumer, offsets, topic) = (consumer.clone(), offsets.clone(), d.source.topic.clone());
                tasks.spawn(async move {
                    while let Some((event, offset)) = rx.recv().await {
                        deliver(&d, event).await;
                        finish(&consumer, &offsets, &topic, partition, offset);
                    }
                });
                tx
            });
            let _ = queue.send((event, offset));
        } else {
            let d = d.clone();
            tasks.spawn(async move {
                deliver(&d, event).await;
                done.finish();
                drop(permit);
            });
        }
    }
    // Leave the group cleanly: what is in flight finishes and is committed.
    drop(ordered_queues);
    while tasks.join_next().await.is_some() {}
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    sampler.abort();
}

struct Done {
    consumer: Arc<StreamConsumer<Rebalances>>,
    offsets: Arc<Mutex<HashMap<i32, Offsets>>>,
    topic: String,
    partition: i32,
    offset: i64,
}

impl Done {
    fn finish(self) {
        finish(
            &self.consumer,
            &self.offsets,
            &self.topic,
            self.partition,
            self.offset,
        );
    }
}

/// Records that `offset` is finished and stores the end of the finished run for the next
/// commit.
fn finish(
    consumer: &StreamConsumer<Rebalances>,
    offsets: &Mutex<HashMap<i32, Offsets>>,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    let store = offsets
        .lock()
        .expect("not poisoned")
        .entry(partition)
        .or_default()
        .finished(offset);
    if let Some(last) = store {
        // Stores last + 1 as the committed position (librdkafka rd_kafka_offset_store).
        let _ = consumer.store_offset(topic, partition, last);
    }
}

/// One partition's records received and not finished.
#[derive(Default)]
struct Offsets {
    pending: BTreeSet<i64>,
    highest: i64,
    stored: i64,
}

impl Offsets {
    fn received(&mut self, offset: i64) {
        self.pending.insert(offset);
        self.highest = self.highest.max(offset);
    }

    /// The last offset of the finished run from the start, when it moved.
    fn finished(&mut self, offset: i64) -> Option<i64> {
        self.pending.remove(&offset);
        let last = match self.pending.first() {
            Some(first) => first - 1,
            None => self.highest,
        };
        (last >= 0 && last > self.stored - 1).then(|| {
            self.stored = last + 1;
            last
        })
    }
}

/// Sends one event with the delivery spec's retries; dead-letters it when they run out or
/// the answer says retrying cannot help.
async fn deliver(d: &Dispatcher, event: Event) {
    let mut retry = 0;
    let (code, body) = loop {
        let authorization = d.tokens.as_ref().map(Tokens::authorization);
        let answer = d.sink.send(&event, authorization.as_deref()).await;
        match answer {
            Ok((status, _)) if (200..300).contains(&status) => {
                d.counts.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok((status, body)) if !retryable(status) => break (Some(status), body),
            answer => {
                if retry == d.source.retry {
                    break match answer {
                        Ok((status, body)) => (Some(status), body),
                        Err(e) => (None, e.into_bytes()),
                    };
                }
                retry += 1;
                d.counts.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff(&d.source, retry)).await;
            }
        }
    };
    dead_letter(d, event, code, &body).await;
}

/// The wait before retry `n` (1-based): `computeRetryPolicy`.
pub fn backoff(source: &KafkaSource, n: u32) -> Duration {
    if source.backoff_exponential {
        source.backoff_delay * 2u32.saturating_pow(n)
    } else {
        source.backoff_delay * n
    }
}

/// Answers the dispatcher sends again (`WebClientCloudEventSender`).
fn retryable(status: u16) -> bool {
    status >= 500 || matches!(status, 404 | 408 | 409 | 429)
}

async fn dead_letter(d: &Dispatcher, mut event: Event, code: Option<u16>, body: &[u8]) {
    let Some(topic) = &d.source.dead_letter_topic else {
        tracing::warn!("dispatcher: event {} dropped: no dead-letter sink", event.id());
        return;
    };
    event.set_extension("knativeerrordest", d.sink.url());
    if let Some(code) = code {
        event.set_extension("knativeerrorcode", code.to_string());
    }
    let data = &body[..body.len().min(ERROR_DATA_MAX)];
    event.set_extension(
        "knativeerrordata",
        base64::engine::general_purpose::STANDARD.encode(data),
    );
    let record = match MessageRecord::from_event(event) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("dispatcher: dead letter not encoded: {e}");
            return;
        }
    };
    let sent = d
        .dead_letters
        .send(
            FutureRecord::<(), _>::to(topic).message_record(&record),
            Duration::from_secs(30),
        )
        .await;
    match sent {
        Ok(_) => {
            d.counts.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Err((e, _)) => tracing::error!("dispatcher: dead letter not written: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_commit_the_finished_run() {
        let mut o = Offsets::default();
        for i in 0..4 {
            o.received(i);
        }
        assert_eq!(o.finished(1), None, "0 is still in flight");
        assert_eq!(o.finished(0), Some(1));
        assert_eq!(o.finished(3), None);
        assert_eq!(o.finished(2), Some(3));
    }
}
