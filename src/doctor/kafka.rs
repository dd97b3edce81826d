//! Kafka: the topics and the functions' consumer groups, with the settings the functions read
//! (`KafkaConfig::from_env`: `KAFKA_BROKERS`, the security settings, `KAFKA_TOPIC_REMINDERS`,
//! `KAFKA_TOPIC_TASK_EVENTS`).
//!
//! Why:
//! - **The four topics, each with at least `--partitions` partitions.** Nothing creates them
//!   (no program's Kafka user may; the KafkaSinks have no partition settings on purpose), and
//!   a group gives each partition to one consumer: with fewer partitions than the manifests'
//!   most consumers (6), the consumers beyond them idle while the lag waits.
//! - **A committed offset on every partition, for each function's group.** KEDA's Kafka
//!   scaler counts a partition without one as lag: 1 with `offsetResetPolicy: latest` (what
//!   the trigger the Kafka controller generates for a knative/ KafkaSource has), its high
//!   watermark with `earliest` (keda/'s ScaledObjects). A consumer that receives nothing there
//!   (an empty partition, or one whose messages retention deleted) commits nothing, so the lag
//!   never goes away and a consumer never scales to zero. It happens to a group whose
//!   consumers never had the partition, and to one whose offsets the broker expired
//!   `offsets.retention.minutes` after its last member left (docs/DEPLOYMENT.md, "Apply").
//!   `--commit-missing-offsets` commits such a partition at its log start offset (low
//!   watermark): nothing still on the topic is skipped, and an empty partition's lag is 0.
//!   Only for a group with no consumer in it: the broker refuses commits from outside a
//!   running group, and a running consumer would commit over them anyway.
//!
//! Read: `todo_events_kafka::admin` (metadata, committed offsets, watermarks, the group's
//! members). Decide: `topic_finding`, `group_finding`, `plan_commit`. The whole group is
//! the `kafka` feature (the image and .ci/run have it): without it this build has no Kafka
//! client, and says so in one line.

#[cfg(not(feature = "kafka"))]
use super::{DoctorArgs, Finding};

#[cfg(not(feature = "kafka"))]
pub fn check(_: &DoctorArgs) -> Vec<Finding> {
    vec![Finding::skipped(
        "Kafka",
        "this build has no Kafka client (built without the `kafka` feature, which the image and \
         .ci/run use): the topics and consumer groups were not checked",
    )]
}

#[cfg(feature = "kafka")]
pub use with_client::check;

#[cfg(feature = "kafka")]
mod with_client {
    use super::super::{one_line, DoctorArgs, Finding, Shape};
    use std::time::Duration;
    use todo_events_kafka::admin::{
        commit_offsets, group_activity, group_offsets, topic_partitions, GroupActivity, PartitionOffsets,
    };
    use todo_events_kafka::KafkaConfig;

    /// How long one request to the brokers may take.
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// The topics the functions use, each with its dead letters: `<topic>.dlq`.
    pub fn topics(kafka: &KafkaConfig) -> Vec<String> {
        let main = [&kafka.topic_reminders, &kafka.topic_task_events];
        let mut all: Vec<String> = main.iter().map(|t| t.to_string()).collect();
        all.extend(main.iter().map(|t| format!("{t}.dlq")));
        all
    }

    /// Whether `topic` exists with `partitions` partitions (`None`: it does not exist).
    pub fn topic_finding(topic: &str, partitions: Option<usize>, needed: u32, brokers: &str) -> Finding {
        let what = format!("topic {topic} with at least {needed} partitions");
        let tool = format!("kafka-topics.sh --bootstrap-server {brokers} --command-config admin.properties");
        match partitions {
            None => Finding::missing(
                what,
                "it does not exist (nothing creates it: no program's Kafka user may)",
                format!("{tool} --create --if-not-exists --topic {topic} --partitions {needed} --replication-factor 3"),
            ),
            Some(n) if n < needed as usize => Finding::missing(
                what,
                format!(
                    "it has {n}: a partition is read by one consumer of a group at a time, so the \
                     consumers beyond {n} would idle"
                ),
                format!("{tool} --alter --topic {topic} --partitions {needed}"),
            ),
            Some(n) => Finding::ok(format!("topic {topic}: {n} partitions")),
        }
    }

    /// Where a consumer of the group starts on a partition without a committed offset, as the
    /// KEDA trigger of each shape says it (`offsetResetPolicy`), which decides how KEDA counts
    /// such a partition.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ResetPolicy {
        Earliest,
        Latest,
    }

    impl ResetPolicy {
        /// keda/: the ScaledObjects say `earliest` (a test reads them). knative/: the trigger the
        /// Kafka controller generates for a KafkaSource sets none, and KEDA's default is
        /// `latest` (control-plane/pkg/autoscaler/keda/keda.go; kedacore/keda
        /// pkg/scalers/kafka_scaler.go).
        pub fn of(shape: Shape) -> Self {
            match shape {
                Shape::Keda => Self::Earliest,
                Shape::Knative => Self::Latest,
            }
        }
    }

    /// The lag KEDA's Kafka scaler sees on one partition (getLagForPartition): a partition
    /// without a committed offset counts its high watermark with `earliest`, 1 with `latest`.
    fn keda_lag(p: &PartitionOffsets, policy: ResetPolicy) -> i64 {
        match (p.committed, policy) {
            (Some(c), _) => (p.high - c).max(0),
            (None, ResetPolicy::Earliest) => p.high,
            (None, ResetPolicy::Latest) => 1,
        }
    }

    /// The group's lag as KEDA counts it, and its committed offsets against the high
    /// watermarks, summed over the partitions.
    fn lag_summary(offsets: &[PartitionOffsets], policy: ResetPolicy) -> String {
        let committed: i64 = offsets.iter().filter_map(|p| p.committed).sum();
        let high: i64 = offsets.iter().map(|p| p.high).sum();
        let lag: i64 = offsets.iter().map(|p| keda_lag(p, policy)).sum();
        format!("lag {lag} (committed {committed} of high watermark {high})")
    }

    /// Why a partition without a committed offset keeps a consumer awake, under `policy`.
    fn why_uncommitted(policy: ResetPolicy) -> &'static str {
        match policy {
            ResetPolicy::Latest => {
                "KEDA's Kafka scaler counts each as lag 1 (the trigger the Kafka controller generates for a \
                 KafkaSource has offsetResetPolicy latest), and a consumer that receives nothing there never \
                 commits one, so a consumer stays awake for ever"
            }
            ResetPolicy::Earliest => {
                "KEDA's Kafka scaler counts each as lag, its high watermark (offsetResetPolicy earliest), and \
                 a consumer that finds nothing left to read there (retention deleted it) never commits one, \
                 so once such a partition has carried events a consumer stays awake for ever"
            }
        }
    }

    /// Whether every partition has a committed offset for `group`, with the group's lag.
    pub fn group_finding(group: &str, topic: &str, offsets: &[PartitionOffsets], shape: Shape) -> Finding {
        let what = format!("committed offsets of group {group} on {topic}");
        let policy = ResetPolicy::of(shape);
        let without: Vec<String> = offsets
            .iter()
            .filter(|p| p.committed.is_none())
            .map(|p| p.partition.to_string())
            .collect();
        if without.is_empty() {
            return Finding::ok(format!(
                "{what}: all {} partitions; {}",
                offsets.len(),
                lag_summary(offsets, policy)
            ));
        }
        Finding::missing(
            what,
            format!(
                "partition(s) {} of {} have none; {}. {}",
                without.join(", "),
                offsets.len(),
                lag_summary(offsets, policy),
                why_uncommitted(policy)
            ),
            format!(
                "todo-events doctor --shape {} --commit-missing-offsets (while the group has no consumers)",
                shape.dir()
            ),
        )
    }

    /// What `--commit-missing-offsets` does for one group.
    #[derive(Debug, PartialEq, Eq)]
    pub enum CommitPlan {
        /// Every partition has a committed offset.
        Nothing,
        /// Commit these (partition, log start offset).
        Commit(Vec<(i32, i64)>),
        /// Commit nothing, for this reason.
        Refuse(String),
    }

    /// The group states in which no consumer is in the group.
    const IDLE_STATES: &[&str] = &["Empty", "Dead", ""];

    /// For each partition without a committed offset, its low watermark; only while the group
    /// has no consumer (`activity`: what the broker said, or why it could not say).
    pub fn plan_commit(offsets: &[PartitionOffsets], activity: Result<&GroupActivity, &str>) -> CommitPlan {
        let commits: Vec<(i32, i64)> = offsets
            .iter()
            .filter(|p| p.committed.is_none())
            .map(|p| (p.partition, p.low))
            .collect();
        if commits.is_empty() {
            return CommitPlan::Nothing;
        }
        match activity {
            Err(e) => CommitPlan::Refuse(format!(
                "the broker did not say whether consumers are in the group ({e}), and a commit beside \
                 running consumers is refused or overwritten"
            )),
            Ok(a) if a.members > 0 || !IDLE_STATES.contains(&a.state.as_str()) => {
                CommitPlan::Refuse(format!(
                    "the group has {} consumer(s) (state {}): they commit their own offsets, and the broker \
                 refuses commits from outside a running group",
                    a.members, a.state
                ))
            }
            Ok(_) => CommitPlan::Commit(commits),
        }
    }

    /// Reads the topics and groups, commits what `--commit-missing-offsets` asks for, and
    /// decides.
    pub fn check(args: &DoctorArgs) -> Vec<Finding> {
        let kafka = match KafkaConfig::from_env_if_set() {
            Ok(Some(kafka)) => kafka,
            Ok(None) => {
                return vec![Finding::missing(
                    "Kafka settings",
                    "KAFKA_BROKERS is not set, so the topics and consumer groups cannot be checked",
                    "export KAFKA_BROKERS=host:port (with KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, \
                     KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SSL_CA_LOCATION as the functions \
                     have them), then run this again",
                )]
            }
            Err(e) => {
                return vec![Finding::missing(
                    "Kafka settings",
                    e.0,
                    "set the variable as the functions have it (README, \"Configuration\")",
                )]
            }
        };
        let mut findings = Vec::new();
        let mut partitions = std::collections::BTreeMap::new();
        for topic in topics(&kafka) {
            match topic_partitions(&kafka, &topic, TIMEOUT) {
                Ok(found) => {
                    findings.push(topic_finding(
                        &topic,
                        found.as_ref().map(Vec::len),
                        args.partitions,
                        &kafka.brokers,
                    ));
                    partitions.insert(topic, found);
                }
                Err(e) => {
                    findings.push(unreachable(&kafka, &topic, &e));
                    return findings;
                }
            }
        }
        let groups = [
            (&args.group_notify, &kafka.topic_reminders),
            (&args.group_recur, &kafka.topic_task_events),
        ];
        for (group, topic) in groups {
            let Some(Some(ids)) = partitions.get(topic.as_str()) else {
                findings.push(Finding::skipped(
                    format!("committed offsets of group {group} on {topic}"),
                    "the topic does not exist",
                ));
                continue;
            };
            findings.extend(check_group(&kafka, args, group, topic, ids));
        }
        findings
    }

    /// The brokers could not answer about `topic`.
    fn unreachable(kafka: &KafkaConfig, topic: &str, e: &anyhow::Error) -> Finding {
        Finding::missing(
            format!("Kafka brokers {}", kafka.brokers),
            format!("they did not answer about topic {topic}: {}", one_line(e)),
            "check KAFKA_BROKERS and the security settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, \
             KAFKA_SSL_CA_LOCATION), and that this Kafka user may describe the topics",
        )
    }

    /// One group: its offsets, the commits asked for, then its finding.
    fn check_group(
        kafka: &KafkaConfig,
        args: &DoctorArgs,
        group: &str,
        topic: &str,
        ids: &[i32],
    ) -> Vec<Finding> {
        let what = format!("committed offsets of group {group} on {topic}");
        let read = || group_offsets(kafka, group, topic, ids, TIMEOUT);
        let cannot_read = |e: anyhow::Error| {
            Finding::missing(
                &what,
                format!("they cannot be read: {}", one_line(&e)),
                "give this Kafka user Describe on the group and the topic (ACLs), then run this again",
            )
        };
        let mut offsets = match read() {
            Ok(offsets) => offsets,
            Err(e) => return vec![cannot_read(e)],
        };
        let mut findings = Vec::new();
        if args.commit_missing_offsets {
            let committed = commit_missing(kafka, group, topic, &offsets, args.shape);
            let changed = matches!(committed, Finding::Ok { .. });
            findings.push(committed);
            if changed {
                offsets = match read() {
                    Ok(offsets) => offsets,
                    Err(e) => {
                        findings.push(cannot_read(e));
                        return findings;
                    }
                };
            }
        }
        findings.push(group_finding(group, topic, &offsets, args.shape));
        findings
    }

    /// `--commit-missing-offsets` for one group: the plan, carried out.
    fn commit_missing(
        kafka: &KafkaConfig,
        group: &str,
        topic: &str,
        offsets: &[PartitionOffsets],
        shape: Shape,
    ) -> Finding {
        let what = format!("committing the missing offsets of group {group} on {topic}");
        let activity = group_activity(kafka, group, TIMEOUT).map_err(|e| one_line(&e));
        match plan_commit(offsets, activity.as_ref().map_err(String::as_str)) {
            CommitPlan::Nothing => Finding::skipped(what, "every partition has a committed offset"),
            CommitPlan::Refuse(why) => Finding::missing(
                what,
                why,
                match shape {
                    Shape::Keda => "pause KEDA at zero replicas for the group's consumers (kubectl -n \
                                    todo-events annotate scaledobject notify recur \
                                    autoscaling.keda.sh/paused-replicas=0), run this again, then remove the \
                                    annotation (`autoscaling.keda.sh/paused-replicas-`)"
                        .to_owned(),
                    // The ScaledObject the Kafka controller generates for a source is its own:
                    // an annotation added there is reverted at the next reconcile.
                    Shape::Knative => "re-create the group's KafkaSource (kubectl -n todo-events delete \
                                       kafkasource NAME, then kubectl apply -f knative/kafka-sources.yaml): \
                                       once its consumers have left, the Kafka controller commits the end \
                                       of every partition without an offset before it places new ones \
                                       (initialOffset latest); what was skipped is republished by the \
                                       scheduler (SCHEDULER_REPUBLISH_AFTER)"
                        .to_owned(),
                },
            ),
            CommitPlan::Commit(commits) => match commit_offsets(kafka, group, topic, &commits) {
                Ok(()) => Finding::ok(format!(
                    "committed group {group} on {topic} at each partition's log start offset: {}",
                    commits
                        .iter()
                        .map(|(p, o)| format!("partition {p} at {o}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Err(e) => Finding::missing(
                    what,
                    format!("the broker refused the commit: {}", one_line(&e)),
                    "give this Kafka user Read on the group (ACLs), stop the group's consumers, then run this again",
                ),
            },
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn p(partition: i32, committed: Option<i64>, low: i64, high: i64) -> PartitionOffsets {
            PartitionOffsets {
                partition,
                committed,
                low,
                high,
            }
        }

        fn idle() -> GroupActivity {
            GroupActivity {
                state: "Empty".into(),
                members: 0,
            }
        }

        #[test]
        fn doctor_kafka_topics_need_enough_partitions() {
            let cases = [
                (None, false, "it does not exist"),
                (Some(2), false, "it has 2"),
                (Some(6), true, "ok   topic reminders: 6 partitions"),
                (Some(12), true, "ok   topic reminders: 12 partitions"),
            ];
            for (found, ok, says) in cases {
                let line = topic_finding("reminders", found, 6, "kafka:9093").to_string();
                assert_eq!(!line.starts_with("MISSING"), ok, "{line}");
                assert!(line.contains(says), "{line}");
            }
            let missing = topic_finding("reminders", None, 6, "kafka:9093").to_string();
            assert!(missing.ends_with("Fix: kafka-topics.sh --bootstrap-server kafka:9093 --command-config admin.properties --create --if-not-exists --topic reminders --partitions 6 --replication-factor 3"), "{missing}");
            let few = topic_finding("reminders", Some(2), 6, "kafka:9093").to_string();
            assert!(few.ends_with("--alter --topic reminders --partitions 6"), "{few}");
            assert_eq!(cases.len(), 4);
        }

        #[test]
        fn doctor_kafka_topics_are_the_configured_ones_and_their_dead_letters() {
            let mut kafka = KafkaConfig::plaintext("k:9092");
            kafka.topic_reminders = "r".into();
            assert_eq!(topics(&kafka), ["r", "task-events", "r.dlq", "task-events.dlq"]);
        }

        #[test]
        fn doctor_kafka_groups_need_an_offset_on_every_partition() {
            let all = [p(0, Some(5), 0, 7), p(1, Some(3), 0, 3)];
            let line = group_finding("g", "reminders", &all, Shape::Keda).to_string();
            assert_eq!(
                line,
                "ok   committed offsets of group g on reminders: all 2 partitions; lag 2 (committed 8 of high watermark 10)"
            );
            // KEDA's lag for partitions without a committed offset: the high watermark
            // (keda/: earliest), 1 each (knative/: latest).
            let some = [p(0, Some(5), 0, 7), p(1, None, 2, 4), p(2, None, 0, 0)];
            let cases = [
                (
                    Shape::Keda,
                    "lag 6 (committed 5 of high watermark 11)",
                    "its high watermark (offsetResetPolicy earliest)",
                ),
                (
                    Shape::Knative,
                    "lag 4 (committed 5 of high watermark 11)",
                    "lag 1 (the trigger the Kafka controller generates",
                ),
            ];
            for (shape, lag, why) in cases {
                let line = group_finding("g", "reminders", &some, shape).to_string();
                let head = format!("MISSING committed offsets of group g on reminders: partition(s) 1, 2 of 3 have none; {lag}. ");
                assert!(line.starts_with(&head), "{line}");
                assert!(line.contains(why), "{line}");
                let fix = format!(
                    "Fix: todo-events doctor --shape {} --commit-missing-offsets (while the group has no consumers)",
                    shape.dir()
                );
                assert!(line.ends_with(&fix), "{line}");
            }
            assert_eq!(cases.len(), 2);
        }

        /// keda/'s reset policy is what its ScaledObjects say.
        #[test]
        fn doctor_kafka_reset_policy_of_keda_is_the_scaled_objects() {
            let scaled = crate::doctor::manifests::of_kind("keda/scaledobjects.yaml", "ScaledObject");
            assert_eq!(scaled.len(), 2);
            for object in &scaled {
                let policy = object["spec"]["triggers"][0]["metadata"]["offsetResetPolicy"].as_str();
                assert_eq!(policy, Some("earliest"), "{:?}", object["metadata"]["name"]);
            }
            assert_eq!(ResetPolicy::of(Shape::Keda), ResetPolicy::Earliest);
        }

        #[test]
        fn doctor_kafka_commits_log_start_offsets_only_where_none_and_only_while_idle() {
            let offsets = [p(0, Some(5), 0, 7), p(1, None, 2, 4), p(2, None, 0, 0)];
            let busy = GroupActivity {
                state: "Stable".into(),
                members: 2,
            };
            let rebalancing = GroupActivity {
                state: "PreparingRebalance".into(),
                members: 0,
            };
            let dead = GroupActivity {
                state: "Dead".into(),
                members: 0,
            };
            /// What the plan must be; `None`: a refusal.
            type Case<'a> = (
                &'a [PartitionOffsets],
                Result<&'a GroupActivity, &'a str>,
                Option<CommitPlan>,
            );
            let idle = idle();
            let cases: [Case; 6] = [
                (
                    &offsets,
                    Ok(&idle),
                    Some(CommitPlan::Commit(vec![(1, 2), (2, 0)])),
                ),
                (
                    &offsets,
                    Ok(&dead),
                    Some(CommitPlan::Commit(vec![(1, 2), (2, 0)])),
                ),
                (&offsets[..1], Ok(&busy), Some(CommitPlan::Nothing)),
                (&offsets, Ok(&busy), None),
                (&offsets, Ok(&rebalancing), None),
                (&offsets, Err("ListGroups not supported"), None),
            ];
            for (offsets, activity, expected) in &cases {
                let plan = plan_commit(offsets, *activity);
                match expected {
                    Some(expected) => assert_eq!(&plan, expected, "{activity:?}"),
                    None => assert!(matches!(plan, CommitPlan::Refuse(_)), "{activity:?}: {plan:?}"),
                }
            }
            let CommitPlan::Refuse(why) = plan_commit(&offsets, Ok(&busy)) else {
                unreachable!()
            };
            assert!(why.contains("2 consumer(s) (state Stable)"), "{why}");
            assert_eq!(cases.len(), 6);
        }
    }
}
