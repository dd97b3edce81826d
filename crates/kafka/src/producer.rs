//! Publishing CloudEvents to Kafka: idempotent producer, `acks=all`, binary content mode
//! (`ce_*` headers), message key = user id for per-user order.

use crate::config::KafkaConfig;
use cloudevents::binding::rdkafka::{FutureRecordExt, MessageRecord};
use cloudevents::Event;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// A shared producer (cheap to clone).
#[derive(Clone)]
pub struct EventProducer {
    inner: FutureProducer,
}

/// One event to send.
pub struct Envelope<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub event: Event,
}

impl EventProducer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let inner = cfg
            .client_config()
            // Exactly one copy per send even when the producer retries internally, and an
            // acknowledgement only once every in-sync replica has the message.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", cfg.delivery_timeout.as_millis().to_string())
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create()?;
        Ok(Self { inner })
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
        // Enqueue everything first (so batches go out together), then await the
        // acknowledgements. A full local queue is waited out by awaiting earlier sends.
        let mut results: Vec<Option<Result<(), String>>> = vec![None; encoded.len()];
        let mut pending = std::collections::VecDeque::new();
        for (i, (topic, key, record)) in encoded.iter().enumerate() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    results[i] = Some(Err(e.clone()));
                    continue;
                }
            };
            loop {
                let future_record: FutureRecord<'_, str, Vec<u8>> =
                    FutureRecord::to(topic).key(*key).message_record(record);
                match self.inner.send_result(future_record) {
                    Ok(delivery) => {
                        pending.push_back((i, *topic, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        match pending.pop_front() {
                            Some((j, t, delivery)) => results[j] = Some(acknowledged(t, delivery.await)),
                            None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                        }
                    }
                    Err((e, _)) => {
                        results[i] = Some(Err(format!("Kafka refused the message for {topic}: {e}")));
                        break;
                    }
                }
            }
        }
        for (j, t, delivery) in pending {
            results[j] = Some(acknowledged(t, delivery.await));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not sent".into())))
            .collect()
    }

    /// Sends raw bytes (dead letters keep the original payload and headers).
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), String> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        match self.inner.send(record, Timeout::Never).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(format!("Kafka did not acknowledge the message on {topic}: {e}")),
        }
    }

    /// Waits until everything queued is delivered (or the timeout passes).
    pub fn flush(&self, timeout: std::time::Duration) {
        use rdkafka::producer::Producer;
        let _ = self.inner.flush(Timeout::After(timeout));
    }
}

fn acknowledged(
    topic: &str,
    ack: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<(), String> {
    match ack {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(format!("Kafka did not acknowledge the message on {topic}: {e}")),
        Err(_) => Err("the producer was dropped before the acknowledgement".into()),
    }
}
