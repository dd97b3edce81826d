//! Topic creation and consumer-lag inspection, for tests and operators.

use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::Offset;
use std::time::Duration;

/// Creates the topics that do not exist yet.
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("topic {topic} could not be created: {code}"),
        }
    }
    Ok(())
}

/// A consumer reading every partition of `topic` from `group`'s committed offsets (the
/// beginning where nothing is committed), without joining the group: no rebalance wait,
/// and the group's members are not disturbed. Offsets it commits are the group's.
pub fn reader_from_committed(kafka: &KafkaConfig, group: &str, topic: &str) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut list = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            list.add_partition(topic, p.id());
        }
    }
    if list.count() == 0 {
        anyhow::bail!("topic {topic} has no partitions (does it exist?)");
    }
    let committed = consumer.committed_offsets(list, timeout)?;
    let mut start = rdkafka::TopicPartitionList::new();
    for e in committed.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        start.add_partition_offset(topic, e.partition(), offset)?;
    }
    tracing::debug!(
        group,
        topic,
        "reading from {:?}",
        start
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect::<Vec<_>>()
    );
    consumer.assign(&start)?;
    Ok(consumer)
}

/// Messages of `topic` after `group`'s committed offsets, counted by reading them until
/// nothing new arrives for `quiet`. (Reading instead of comparing with the high watermark:
/// Tansu 0.6, the broker the tests run against, reports a wrong high watermark; against
/// Kafka both give the same answer.)
pub fn consumer_lag(kafka: &KafkaConfig, group: &str, topic: &str) -> anyhow::Result<i64> {
    let reader = reader_from_committed(kafka, group, topic)?;
    let quiet = Duration::from_millis(1500);
    let mut lag = 0;
    let mut last = std::time::Instant::now();
    while last.elapsed() < quiet {
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                lag += 1;
                last = std::time::Instant::now();
            }
            Some(Err(e)) => anyhow::bail!("reading {topic}: {e}"),
            None => {}
        }
    }
    Ok(lag)
}
