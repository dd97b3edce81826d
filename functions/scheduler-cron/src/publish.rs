//! Publishing events: the [`Publisher`] seam, the HTTP sink publisher (the local stack,
//! Knative `K_SINK`) and, with the `kafka` feature, the Kafka publisher (`KAFKA_BROKERS`);
//! [`AnyPublisher`] is whichever the configuration chose.

use cloudevents::binding::reqwest::RequestBuilderExt;
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use futures::stream::{self, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use todo_events_domain::events::Outgoing;
use todo_events_domain::events::Stream;
use todo_events_host::Slots;

/// Why one event was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Somewhere events go. `publish` returns one result per event, in order; an event counts
/// as published only when its result is `Ok` (the sink acknowledged it).
pub trait Publisher: Send + Sync {
    fn publish(
        &self,
        events: &[Outgoing],
    ) -> impl std::future::Future<Output = Vec<Result<(), PublishError>>> + Send;
}

/// The CloudEvent for an outgoing event. Each event starts a trace of its own (a `publish`
/// span without parent); its context travels in the `traceparent` extension, so the
/// function's handling joins the same trace.
pub fn to_cloudevent(e: &Outgoing) -> Result<Event, PublishError> {
    let span = tracing::info_span!(
        parent: None,
        "publish",
        otel.name = %format!("publish {}", e.ty),
        event_id = %e.id,
    );
    let mut builder = EventBuilderV10::new()
        .id(e.id.clone())
        .ty(e.ty.clone())
        .source(e.source)
        .subject(e.subject.clone())
        .time(chrono::Utc::now())
        .data("application/json", e.data.clone());
    for (key, value) in todo_events_host::telemetry::inject(&span) {
        builder = builder.extension(&key, value);
    }
    builder
        .build()
        .map_err(|err| PublishError(format!("event {} could not be built: {err}", e.id)))
}

/// POSTs each event in binary mode to the sink of its type; a 2xx answer acknowledges it.
pub struct HttpPublisher {
    client: reqwest::Client,
    reminders: Option<String>,
    task_events: Option<String>,
    /// Where the status events go (`SINK_NOTIFICATIONS`), if anywhere.
    notifications: Option<String>,
    concurrency: usize,
    /// Sent as `Authorization: Bearer <token>` (the functions' `AUTH_TOKEN`).
    token: Option<SecretString>,
}

impl HttpPublisher {
    pub fn new(reminders: Option<String>, task_events: Option<String>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()
            .expect("a client with default TLS builds");
        Self {
            client,
            reminders,
            task_events,
            notifications: None,
            concurrency: 32,
            token: None,
        }
    }

    /// Sends the status events (`dev.todo.notification.*`) to `sink` (`SINK_NOTIFICATIONS`).
    pub fn with_notifications(mut self, sink: Option<String>) -> Self {
        self.notifications = sink;
        self
    }

    /// Authenticates every request with the functions' shared token (`AUTH_TOKEN`).
    pub fn with_token(mut self, token: Option<SecretString>) -> Self {
        self.token = token;
        self
    }

    async fn send(&self, e: &Outgoing) -> Result<(), PublishError> {
        let sink = match e.stream {
            Stream::Reminders => self.reminders.as_deref(),
            Stream::TaskEvents => self.task_events.as_deref(),
            Stream::Notifications => self.notifications.as_deref(),
        }
        .ok_or_else(|| PublishError(format!("no sink configured for {}", e.ty)))?;
        let mut request = self.client.post(sink);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let request = request
            .event(to_cloudevent(e)?)
            .map_err(|err| PublishError(format!("event {} could not be encoded: {err}", e.id)))?;
        let response = request
            .send()
            .await
            .map_err(|err| PublishError(format!("{sink} unreachable: {err}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = response.text().await.unwrap_or_default();
            let snippet: String = body.chars().take(300).collect();
            Err(PublishError(format!("{sink} answered {status}: {snippet}")))
        }
    }
}

impl Publisher for HttpPublisher {
    async fn publish(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        // Events of one user keep their order: each user's events go one after another,
        // different users' in parallel.
        let mut slot: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut by_user: Vec<Vec<usize>> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let n = *slot.entry(e.key.as_str()).or_insert_with(|| {
                by_user.push(Vec::new());
                by_user.len() - 1
            });
            by_user[n].push(i);
        }
        let mut results = Slots::new(events.len());
        let outcomes: Vec<Vec<(usize, Result<(), PublishError>)>> = stream::iter(by_user)
            .map(|idx| async move {
                let mut out = Vec::with_capacity(idx.len());
                for i in idx {
                    out.push((i, self.send(&events[i]).await));
                }
                out
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (i, r) in outcomes.into_iter().flatten() {
            results.set(i, r);
        }
        results.into_results(not_published)
    }
}

/// Publishes to Kafka (the `kafka` feature): topic by event type, key = user id, binary content mode; an event
/// counts as published when the broker acknowledged it (`acks=all`, idempotent producer).
#[cfg(feature = "kafka")]
pub struct KafkaPublisher {
    producer: todo_events_kafka::EventProducer,
    config: todo_events_kafka::KafkaConfig,
}

#[cfg(feature = "kafka")]
impl KafkaPublisher {
    pub fn new(config: todo_events_kafka::KafkaConfig) -> Result<Self, PublishError> {
        let producer = todo_events_kafka::EventProducer::new(&config)
            .map_err(|e| PublishError(format!("Kafka producer could not be created: {e}")))?;
        Ok(Self { producer, config })
    }
}

#[cfg(feature = "kafka")]
impl Publisher for KafkaPublisher {
    async fn publish(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        let mut results = Slots::new(events.len());
        let mut envelopes = Vec::with_capacity(events.len());
        let mut index = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            match to_cloudevent(e) {
                Ok(event) => {
                    envelopes.push(todo_events_kafka::producer::Envelope {
                        topic: self.config.topic_of(e.stream),
                        key: &e.key,
                        event,
                    });
                    index.push(i);
                }
                Err(err) => results.set(i, Err(err)),
            }
        }
        for (i, r) in index.into_iter().zip(self.producer.send_all(envelopes).await) {
            results.set(i, r.map_err(PublishError));
        }
        results.into_results(not_published)
    }
}

/// The result of an event no step gave one (a bug): not published, so its row is claimed
/// and published again after the lease.
fn not_published() -> Result<(), PublishError> {
    Err(PublishError(
        "no result for this event (a bug): not published".into(),
    ))
}

/// The publisher chosen by configuration.
pub enum AnyPublisher {
    Http(HttpPublisher),
    // Boxed: the Kafka settings make it several times larger than the HTTP variant.
    #[cfg(feature = "kafka")]
    Kafka(Box<KafkaPublisher>),
}

impl Publisher for AnyPublisher {
    async fn publish(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        match self {
            Self::Http(p) => p.publish(events).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(p) => p.publish(events).await,
        }
    }
}
