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

/// One partition of a topic as a consumer group sees it: the group's committed offset (none
/// when the group never committed one there, or its offsets expired) and the partition's
/// watermarks (log start offset, next offset to be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub committed: Option<i64>,
    pub low: i64,
    pub high: i64,
}

/// A consumer group as the group coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupActivity {
    /// `Stable`, `Empty`, `Dead`, `PreparingRebalance`, … (empty when the broker says none).
    pub state: String,
    /// Consumers in the group now.
    pub members: usize,
}

/// A consumer of `group` that never joins it and commits nothing by itself: for reading and
/// committing the group's offsets from outside.
fn group_client(kafka: &KafkaConfig, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .create()?)
}

/// The partition ids of `topic`, ascending, or `None` when the broker says it does not exist.
pub fn topic_partitions(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Option<Vec<i32>>> {
    let client: BaseConsumer = kafka
        .client_config()
        .set("allow.auto.create.topics", "false")
        .create()?;
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(None),
        Some(code) => anyhow::bail!("topic {topic}: {code}"),
    }
    let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(Some(ids))
}

/// `group`'s committed offset and the watermarks of each of `partitions` of `topic`.
pub fn group_offsets(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> anyhow::Result<Vec<PartitionOffsets>> {
    let client = group_client(kafka, group)?;
    let mut list = rdkafka::TopicPartitionList::new();
    for p in partitions {
        list.add_partition(topic, *p);
    }
    let committed = client.committed_offsets(list, timeout)?;
    partitions
        .iter()
        .map(|&partition| {
            let (low, high) = client.fetch_watermarks(topic, partition, timeout)?;
            let committed = match committed.find_partition(topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            Ok(PartitionOffsets {
                partition,
                committed,
                low,
                high,
            })
        })
        .collect()
}

/// Who is in `group` now, from the group coordinator (ListGroups/DescribeGroups).
pub fn group_activity(kafka: &KafkaConfig, group: &str, timeout: Duration) -> anyhow::Result<GroupActivity> {
    let client = group_client(kafka, group)?;
    let list = client.fetch_group_list(Some(group), timeout)?;
    Ok(match list.groups().iter().find(|g| g.name() == group) {
        Some(g) => GroupActivity {
            state: g.state().to_owned(),
            members: g.members().len(),
        },
        None => GroupActivity {
            state: String::new(),
            members: 0,
        },
    })
}

/// Commits `offsets` (partition, offset) of `topic` for `group` as a standalone consumer
/// (no subscription, no group membership) and waits for the broker's answer. The broker
/// refuses it while the group has members; callers check [`group_activity`] first.
pub fn commit_offsets(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> anyhow::Result<()> {
    let client = group_client(kafka, group)?;
    let mut list = rdkafka::TopicPartitionList::new();
    for &(partition, offset) in offsets {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    client.commit(&list, rdkafka::consumer::CommitMode::Sync)?;
    Ok(())
}
