//! Dead letters: messages a function can never handle go to `<topic>.dlq` unchanged (same
//! key, payload and headers) plus CloudEvents extension attributes saying why and from
//! where, so they can be inspected and, after a fix, replayed onto the original topic.

use crate::config::KafkaConfig;
use crate::producer::EventProducer;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use std::time::Duration;

/// Extension attribute (Kafka header `ce_deadletterreason`) with the failure reason.
pub const REASON_HEADER: &str = "ce_deadletterreason";
/// `ce_deadlettersource`: `<topic>/<partition>/<offset>` of the original message.
pub const SOURCE_HEADER: &str = "ce_deadlettersource";
/// `ce_deadlettertime`: when it was dead-lettered (RFC 3339).
pub const TIME_HEADER: &str = "ce_deadlettertime";

pub fn topic_for(topic: &str) -> String {
    format!("{topic}.dlq")
}

fn is_dead_letter_header(name: &str) -> bool {
    name.starts_with("ce_deadletter")
}

/// The message's headers without dead-letter attributes.
fn original_headers(message: &OwnedMessage) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter().filter(|h| !is_dead_letter_header(h.key)) {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    headers
}

/// Copies `message` to `dlq_topic` with the reason attached.
pub async fn publish(
    producer: &EventProducer,
    dlq_topic: &str,
    message: &OwnedMessage,
    reason: &str,
) -> Result<(), String> {
    let mut headers = original_headers(message);
    // Header values are bounded: a reason can quote a large payload.
    let reason: String = reason.chars().take(1000).collect();
    let source = format!("{}/{}/{}", message.topic(), message.partition(), message.offset());
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    headers = headers
        .insert(Header {
            key: REASON_HEADER,
            value: Some(reason.as_bytes()),
        })
        .insert(Header {
            key: SOURCE_HEADER,
            value: Some(source.as_bytes()),
        })
        .insert(Header {
            key: TIME_HEADER,
            value: Some(time.as_bytes()),
        });
    producer
        .send_raw(dlq_topic, message.key(), message.payload(), headers)
        .await
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub replayed: usize,
}

/// Moves dead letters from `<topic>.dlq` back onto `topic` (without the dead-letter
/// attributes), for after the cause was fixed. Uses its own consumer group
/// (`<group>-dlq-replay`, offsets committed after each message), so each dead letter is
/// replayed once; stops at the end of the dead-letter topic or after `limit` messages. With `dry_run`, only lists them.
pub async fn replay(
    kafka: &KafkaConfig,
    topic: &str,
    group: &str,
    limit: usize,
    dry_run: bool,
) -> anyhow::Result<ReplayReport> {
    let dlq = topic_for(topic);
    let consumer = crate::admin::reader_from_committed(kafka, &format!("{group}-dlq-replay"), &dlq)?;
    let producer = EventProducer::new(kafka)?;
    let mut report = ReplayReport::default();
    // The end of the dead-letter topic: nothing new for a few seconds.
    let quiet = Duration::from_secs(3);
    let mut last = std::time::Instant::now();
    while report.replayed < limit && last.elapsed() < quiet {
        let message = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)));
        let Some(message) = message else {
            continue;
        };
        tracing::debug!(
            "dead-letter topic read: {:?}",
            message.as_ref().map(|m| (m.partition(), m.offset()))
        );
        last = std::time::Instant::now();
        let message = message?.detach();
        let reason = header(&message, REASON_HEADER).unwrap_or_default();
        let source = header(&message, SOURCE_HEADER).unwrap_or_default();
        if dry_run {
            println!("{source}\t{reason}");
            report.replayed += 1;
            continue;
        }
        let headers = original_headers(&message);
        producer
            .send_raw(topic, message.key(), message.payload(), headers)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let mut done = rdkafka::TopicPartitionList::new();
        done.add_partition_offset(
            message.topic(),
            message.partition(),
            rdkafka::Offset::Offset(message.offset() + 1),
        )?;
        consumer.commit(&done, CommitMode::Sync)?;
        report.replayed += 1;
        tracing::info!("replayed dead letter {source} onto {topic} (it failed with: {reason})");
    }
    Ok(report)
}

fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}
