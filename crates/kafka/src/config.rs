//! Kafka settings from the environment.

use rdkafka::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;
use todo_events_domain::events::Stream;
use todo_events_domain::{EventKind, HumanDuration};

/// The variable naming the status events' topic, and its default.
const NOTIFICATIONS_TOPIC: (&str, &str) = ("KAFKA_TOPIC_NOTIFICATIONS", "notifications");
use todo_events_host::config::{required, var, var_or, ConfigError};

/// How to reach the brokers, and the topics.
#[derive(Clone)]
pub struct KafkaConfig {
    /// `KAFKA_BROKERS`: `host:port[,host:port…]`.
    pub brokers: String,
    /// `KAFKA_TOPIC_REMINDERS` (default `reminders`).
    pub topic_reminders: String,
    /// `KAFKA_TOPIC_TASK_EVENTS` (default `task-events`).
    pub topic_task_events: String,
    /// `KAFKA_TOPIC_NOTIFICATIONS` (default `notifications`): the status events, when the
    /// scheduler publishes them (`NOTIFICATION_EVENTS=kafka`).
    pub topic_notifications: String,
    /// `KAFKA_GROUP`: the consumer group (default: the function's name).
    pub group: Option<String>,
    /// `KAFKA_SECURITY_PROTOCOL`: `plaintext` (default), `ssl`, `sasl_plaintext`, `sasl_ssl`.
    pub security_protocol: String,
    /// `KAFKA_SASL_MECHANISM`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD` (never logged).
    pub sasl_username: Option<String>,
    pub sasl_password: Option<SecretString>,
    /// `KAFKA_SSL_CA_LOCATION`: PEM file of the CA that signed the brokers' certificates
    /// (with `ssl` / `sasl_ssl`; default: the system's trust store).
    pub ssl_ca_location: Option<String>,
    /// `KAFKA_SESSION_TIMEOUT` (default 6s): how fast a dead consumer's partitions move.
    pub session_timeout: Duration,
    /// `KAFKA_DELIVERY_TIMEOUT` (default 30s): how long the producer tries before a message
    /// counts as not delivered.
    pub delivery_timeout: Duration,
    /// `KAFKA_CONSUMER_BATCH`: most messages of one partition a consumer hands to the
    /// function at once (one database transaction); default 200.
    pub consumer_batch: usize,
    /// How a consumer retries an event that failed transiently (database down, SMTP 4xx).
    pub retry: RetryPolicy,
}

/// The consumer mode's answer to a transient failure, written like a Knative delivery spec
/// so that keda/ can say what knative/'s KafkaSources say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `KAFKA_RETRY`: retries before the event goes to `<topic>.dlq`; unset: retry until it
    /// succeeds (the partition waits), with waits capped at 30 s.
    pub retries: Option<u32>,
    /// `KAFKA_BACKOFF_DELAY` (default 100ms): retry n (n = 1, 2, …) waits this × 2^n, as
    /// eventing-kafka-broker's dispatcher does with `backoffPolicy: exponential`.
    pub backoff_delay: Duration,
}

impl RetryPolicy {
    /// The longest single wait when retrying without end.
    const CAP: Duration = Duration::from_secs(30);

    /// The wait before retry `n` (1-based), or `None` when the retries are used up.
    pub fn wait_before(&self, n: u32) -> Option<Duration> {
        let wait = self.backoff_delay.saturating_mul(2u32.saturating_pow(n.min(30)));
        match self.retries {
            Some(max) if n > max => None,
            Some(_) => Some(wait),
            None => Some(wait.min(Self::CAP)),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: None,
            backoff_delay: Duration::from_millis(100),
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_reminders", &self.topic_reminders)
            .field("topic_task_events", &self.topic_task_events)
            .field("topic_notifications", &self.topic_notifications)
            .field("group", &self.group)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("consumer_batch", &self.consumer_batch)
            .field("retry", &self.retry)
            .finish()
    }
}

const DEFAULT_CONSUMER_BATCH: usize = 200;

impl KafkaConfig {
    /// Reads the settings; `KAFKA_BROKERS` is required.
    pub fn from_env() -> Result<Self, ConfigError> {
        let brokers: String = required("KAFKA_BROKERS", "the Kafka bootstrap servers, e.g. kafka:9092")?;
        Self::from_env_with(brokers)
    }

    /// The settings if `KAFKA_BROKERS` is set.
    pub fn from_env_if_set() -> Result<Option<Self>, ConfigError> {
        match var::<String>("KAFKA_BROKERS")? {
            Some(brokers) => Self::from_env_with(brokers).map(Some),
            None => Ok(None),
        }
    }

    fn from_env_with(brokers: String) -> Result<Self, ConfigError> {
        let topic = |(name, default): (&str, &str)| -> Result<String, ConfigError> {
            let t: String = var_or(name, default.to_owned())?;
            if t.is_empty()
                || t.len() > 249
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(ConfigError(format!(
                    "{name}={t:?} is not a valid Kafka topic name (letters, digits, '.', '_', '-')"
                )));
            }
            Ok(t)
        };
        let security_protocol =
            var_or("KAFKA_SECURITY_PROTOCOL", "plaintext".to_owned())?.to_ascii_lowercase();
        if !matches!(
            security_protocol.as_str(),
            "plaintext" | "ssl" | "sasl_plaintext" | "sasl_ssl"
        ) {
            return Err(ConfigError(format!(
                "KAFKA_SECURITY_PROTOCOL={security_protocol:?} must be plaintext, ssl, sasl_plaintext or sasl_ssl"
            )));
        }
        let cfg = Self {
            brokers,
            topic_reminders: topic(Self::topic_setting(EventKind::ReminderDue))?,
            topic_task_events: topic(Self::topic_setting(EventKind::RecurringTaskDue))?,
            topic_notifications: topic(NOTIFICATIONS_TOPIC)?,
            group: var("KAFKA_GROUP")?,
            security_protocol,
            sasl_mechanism: var("KAFKA_SASL_MECHANISM")?,
            sasl_username: var("KAFKA_SASL_USERNAME")?,
            sasl_password: var::<String>("KAFKA_SASL_PASSWORD")?.map(SecretString::from),
            ssl_ca_location: var("KAFKA_SSL_CA_LOCATION")?,
            session_timeout: var_or("KAFKA_SESSION_TIMEOUT", HumanDuration(Duration::from_secs(6)))?.0,
            delivery_timeout: var_or("KAFKA_DELIVERY_TIMEOUT", HumanDuration(Duration::from_secs(30)))?.0,
            consumer_batch: var_or("KAFKA_CONSUMER_BATCH", DEFAULT_CONSUMER_BATCH)?,
            retry: RetryPolicy {
                retries: var("KAFKA_RETRY")?,
                backoff_delay: var_or(
                    "KAFKA_BACKOFF_DELAY",
                    HumanDuration(RetryPolicy::default().backoff_delay),
                )?
                .0,
            },
        };
        if cfg.retry.retries.is_some_and(|r| r > 100) {
            return Err(ConfigError(
                "KAFKA_RETRY must be between 0 and 100 (unset: retry until it succeeds)".into(),
            ));
        }
        if cfg.retry.backoff_delay.is_zero() || cfg.retry.backoff_delay > Duration::from_secs(60) {
            return Err(ConfigError(
                "KAFKA_BACKOFF_DELAY must be between 1ms and 60s".into(),
            ));
        }
        if !(1..=10_000).contains(&cfg.consumer_batch) {
            return Err(ConfigError(format!(
                "KAFKA_CONSUMER_BATCH={} must be between 1 and 10000",
                cfg.consumer_batch
            )));
        }
        if cfg.security_protocol.starts_with("sasl")
            && (cfg.sasl_username.is_none() || cfg.sasl_password.is_none())
        {
            return Err(ConfigError(
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with a sasl_* KAFKA_SECURITY_PROTOCOL".into(),
            ));
        }
        if !(1..=300).contains(&cfg.session_timeout.as_secs()) {
            return Err(ConfigError(
                "KAFKA_SESSION_TIMEOUT must be between 1s and 5m".into(),
            ));
        }
        Ok(cfg)
    }

    /// Plaintext settings for `brokers` with the default topics (tests, local runs).
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_reminders: Self::topic_setting(EventKind::ReminderDue).1.into(),
            topic_task_events: Self::topic_setting(EventKind::RecurringTaskDue).1.into(),
            topic_notifications: NOTIFICATIONS_TOPIC.1.into(),
            group: None,
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            session_timeout: Duration::from_secs(6),
            delivery_timeout: Duration::from_secs(30),
            consumer_batch: DEFAULT_CONSUMER_BATCH,
            retry: RetryPolicy::default(),
        }
    }

    /// The topic carrying `kind` events (an agenda travels with the reminders).
    pub fn topic_for(&self, kind: EventKind) -> &str {
        self.topic_of(Stream::from(kind))
    }

    /// The topic of `stream`'s events.
    pub fn topic_of(&self, stream: Stream) -> &str {
        match stream {
            Stream::Reminders => &self.topic_reminders,
            Stream::TaskEvents => &self.topic_task_events,
            Stream::Notifications => &self.topic_notifications,
        }
    }

    /// The variable that names the topic of `kind` events, and the topic when it is unset.
    pub fn topic_setting(kind: EventKind) -> (&'static str, &'static str) {
        match kind {
            EventKind::ReminderDue | EventKind::AgendaDue => ("KAFKA_TOPIC_REMINDERS", "reminders"),
            EventKind::RecurringTaskDue => ("KAFKA_TOPIC_TASK_EVENTS", "task-events"),
        }
    }

    /// The client settings every producer and consumer starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("security.protocol", &self.security_protocol)
            .set("client.id", "todo-events");
        if let Some(m) = &self.sasl_mechanism {
            c.set("sasl.mechanism", m);
        }
        if let Some(ca) = &self.ssl_ca_location {
            c.set("ssl.ca.location", ca);
        }
        if let (Some(u), Some(p)) = (&self.sasl_username, &self.sasl_password) {
            c.set("sasl.username", u).set("sasl.password", p.expose_secret());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_and_scram_clients_can_be_made() {
        // librdkafka is built with TLS and SASL/SCRAM: clients for such a cluster start.
        let mut c = super::KafkaConfig::plaintext("kafka.example:9093");
        c.security_protocol = "sasl_ssl".into();
        c.sasl_mechanism = Some("SCRAM-SHA-512".into());
        c.sasl_username = Some("todo".into());
        c.sasl_password = Some(secrecy::SecretString::from("secret"));
        assert!(crate::EventProducer::new(&c).is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut c = super::KafkaConfig::plaintext("k:9092");
        c.sasl_password = Some(secrecy::SecretString::from("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

#[cfg(test)]
mod retry_tests {
    use super::RetryPolicy;
    use std::time::Duration;

    #[test]
    fn bounded_retries_follow_the_knative_schedule() {
        let p = RetryPolicy {
            retries: Some(5),
            backoff_delay: Duration::from_secs(1),
        };
        let waits: Vec<u64> = (1..=6)
            .filter_map(|n| p.wait_before(n))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32], "then no sixth retry");
    }

    #[test]
    fn unbounded_retries_wait_at_most_30_s() {
        let p = RetryPolicy::default();
        assert_eq!(p.wait_before(1), Some(Duration::from_millis(200)));
        assert_eq!(p.wait_before(40), Some(Duration::from_secs(30)));
    }
}
