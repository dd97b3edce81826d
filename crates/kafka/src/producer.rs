//! Publishing CloudEvents to Kafka: idempotent producer, `acks=all`, binary content mode
//! (`ce_*` headers), message key = user id for per-user order.

use crate::config::KafkaConfig;
use cloudevents::binding::rdkafka::{FutureRecordExt, MessageRecord};
use cloudevents::Event;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::sync::{Arc, RwLock};
use todo_events_host::Slots;

/// A shared producer (cheap to clone).
///
/// An idempotent producer that hits a *fatal* error (its producer id fenced, a sequence gap
/// it cannot repair — seen after broker restarts) refuses every later message; librdkafka's
/// documented remedy is a new instance. So the instance lives behind a lock: the send that
/// finds it fatal replaces it (once, however many sends saw it) and tries its failed messages
/// again on the new one. Without this a long-running scheduler would publish nothing until
/// restarted.
#[derive(Clone)]
pub struct EventProducer {
    inner: Arc<RwLock<FutureProducer>>,
    settings: Arc<ClientConfig>,
}

/// Lets a new producer get its producer id as soon as it is connected.
///
/// librdkafka asks a broker for the idempotent producer's id when the producer is created,
/// and, no broker connection being up yet at that moment, tries again only after 500 ms or
/// when a metadata response arrives (seen with `debug=eos` against Tansu, either way round).
/// Until it has the id nothing is sent: every scheduler pass (a fresh process each minute
/// under the CronJob) published its first events that much late. A few metadata requests in
/// the first hundred milliseconds bring the id in as soon as the connection is up
/// (docs/PERFORMANCE.md, "What the figures say, and what was done about them", item 13).
/// Best effort, in the background.
fn warm_up(producer: FutureProducer, topic: String) {
    let spawned = std::thread::Builder::new()
        .name("kafka-warm-up".into())
        .spawn(move || {
            for pause_ms in [2, 5, 10, 20, 40, 80] {
                std::thread::sleep(std::time::Duration::from_millis(pause_ms));
                let _ = producer
                    .client()
                    .fetch_metadata(Some(&topic), std::time::Duration::from_millis(200));
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("no producer warm-up thread: {e}");
    }
}

/// One event to send.
pub struct Envelope<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub event: Event,
}

impl EventProducer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let mut settings = cfg.client_config();
        // Exactly one copy per send even when the producer retries internally, and an
        // acknowledgement only once every in-sync replica has the message.
        settings
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", cfg.delivery_timeout.as_millis().to_string())
            .set("linger.ms", "5")
            .set("compression.type", "lz4");
        let inner: FutureProducer = settings.create()?;
        warm_up(inner.clone(), cfg.topic_reminders.clone());
        Ok(Self {
            inner: Arc::new(RwLock::new(inner)),
            settings: Arc::new(settings),
        })
    }

    fn current(&self) -> FutureProducer {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces `used` when it has hit a fatal error or the broker fenced its producer id;
    /// true when the current instance is now a different one than `used` (replaced here or
    /// by another send).
    fn renewed(&self, used: &FutureProducer, fenced: bool) -> bool {
        let mut current = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if current.client().native_ptr() != used.client().native_ptr() {
            return true;
        }
        let (code, reason) = match used.client().fatal_error() {
            Some(fatal) => fatal,
            None if fenced => (
                RDKafkaErrorCode::ProducerFenced,
                "the broker fenced the producer id".into(),
            ),
            None => return false,
        };
        match self.settings.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(
                    "the Kafka producer hit a fatal error ({code:?}: {reason}); replaced by a new one"
                );
                *current = fresh;
                true
            }
            Err(e) => {
                tracing::error!(
                    "the Kafka producer hit a fatal error ({code:?}: {reason}) and cannot be replaced: {e}"
                );
                false
            }
        }
    }

    /// Sends every envelope and waits for each broker acknowledgement; one result per
    /// envelope, in order.
    pub async fn send_all(&self, envelopes: Vec<Envelope<'_>>) -> Vec<Result<(), String>> {
        let encoded: Vec<_> = envelopes
            .into_iter()
            .map(|e| {
                let record = MessageRecord::from_event(e.event)
                    .map_err(|err| format!("event could not be encoded for Kafka: {err}"));
                (e.topic, e.key, record)
            })
            .collect();
        let producer = self.current();
        let all: Vec<usize> = (0..encoded.len()).collect();
        let mut fenced = false;
        let mut results = send_encoded(&producer, &encoded, &all, &mut fenced).await;
        let failed: Vec<usize> = (0..encoded.len())
            .filter(|&i| results[i].is_err() && encoded[i].2.is_ok())
            .collect();
        if !failed.is_empty() && self.renewed(&producer, fenced) {
            let again = send_encoded(&self.current(), &encoded, &failed, &mut fenced).await;
            for (i, result) in failed.into_iter().zip(again) {
                results[i] = result;
            }
        }
        results
    }

    /// Sends raw bytes (dead letters keep the original payload and headers).
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), String> {
        let record = || {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(p) = payload {
                record = record.payload(p);
            }
            record
        };
        let producer = self.current();
        let mut sent = producer.send(record(), Timeout::Never).await;
        let fenced = matches!(&sent, Err((e, _)) if fences(e));
        if sent.is_err() && self.renewed(&producer, fenced) {
            sent = self.current().send(record(), Timeout::Never).await;
        }
        match sent {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(format!("Kafka did not acknowledge the message on {topic}: {e}")),
        }
    }

    /// Waits until everything queued is delivered (or the timeout passes).
    pub fn flush(&self, timeout: std::time::Duration) {
        let _ = self.current().flush(Timeout::After(timeout));
    }
}

type Encoded<'a> = (&'a str, &'a str, Result<MessageRecord, String>);

/// Sends the envelopes at `indices` and waits for their acknowledgements; one result per
/// index, in order; `fenced` is set when the broker fenced the producer. Everything is
/// enqueued first (so batches go out together); a full local queue is waited out by
/// awaiting earlier sends.
async fn send_encoded(
    producer: &FutureProducer,
    encoded: &[Encoded<'_>],
    indices: &[usize],
    fenced: &mut bool,
) -> Vec<Result<(), String>> {
    let mut results = Slots::new(indices.len());
    let mut pending = std::collections::VecDeque::new();
    for (slot, &i) in indices.iter().enumerate() {
        let (topic, key, record) = &encoded[i];
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                results.set(slot, Err(e.clone()));
                continue;
            }
        };
        loop {
            let future_record: FutureRecord<'_, str, Vec<u8>> =
                FutureRecord::to(topic).key(*key).message_record(record);
            match producer.send_result(future_record) {
                Ok(delivery) => {
                    pending.push_back((slot, *topic, delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    match pending.pop_front() {
                        Some((j, t, delivery)) => results.set(j, acknowledged(t, delivery.await, fenced)),
                        None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                }
                Err((e, _)) => {
                    *fenced |= fences(&e);
                    results.set(slot, Err(format!("Kafka refused the message for {topic}: {e}")));
                    break;
                }
            }
        }
    }
    for (j, t, delivery) in pending {
        results.set(j, acknowledged(t, delivery.await, fenced));
    }
    results.into_results(|| Err("not sent".into()))
}

/// Whether the broker refused the producer itself (its id taken over by a newer instance):
/// every later message would be refused too.
fn fences(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
    )
}

fn acknowledged(
    topic: &str,
    ack: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
    fenced: &mut bool,
) -> Result<(), String> {
    match ack {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => {
            *fenced |= fences(&e);
            Err(format!("Kafka did not acknowledge the message on {topic}: {e}"))
        }
        Err(_) => Err("the producer was dropped before the acknowledgement".into()),
    }
}
