//! Stand-in for KEDA's Kafka scaler and the HPA it feeds, for one scaled target (a keda/
//! consumer Deployment, or the consumers of a KafkaSource).
//!
//! - Lag, as kedacore/keda `pkg/scalers/kafka_scaler.go` (`getLagForPartition`,
//!   `getTotalLag`) computes it: per partition, the topic's latest offset minus the group's
//!   committed offset; a partition without a committed offset counts its latest offset as
//!   lag with `offsetResetPolicy: earliest`, 1 with `latest`; the total is capped at
//!   partitions × `lagThreshold` with `allowIdleConsumers: false`.
//! - Activation and scale to zero, as `pkg/scaling/scale_handler.go` and
//!   `pkg/scaling/executor/scale_scaledobjects.go` do it every `pollingInterval`: active
//!   when the lag exceeds `activationLagThreshold`; 0 → max(1, min) when active; back to 0
//!   only once `cooldownPeriod` has passed since it was last active.
//! - 1 → N by the HPA (kubernetes `pkg/controller/podautoscaler/horizontal.go`), every
//!   15 s (`--horizontal-pod-autoscaler-sync-period`): desired = ceil(lag / lagThreshold)
//!   for an `AverageValue` target, a 10 % tolerance, scale-up by at most max(100 %, 4 pods)
//!   per 15 s (the default behavior) or the Pods policy the ScaledObject sets, scale-down
//!   after the stabilization window and at the rate the ScaledObject's behavior sets.

use crate::manifests::Scaling;
use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use todo_events_kafka::KafkaConfig;
use tokio_util::sync::CancellationToken;

/// Something KEDA scales: replicas now, and a way to set them.
pub trait Target: Send + Sync + 'static {
    fn replicas(&self) -> usize;
    fn scale(&self, replicas: usize) -> BoxFuture<'_, ()>;
}

const HPA_SYNC: Duration = Duration::from_secs(15);

pub struct Keda {
    /// An operator's `minReplicaCount` raised for a while (e.g. to the max before a known
    /// burst); 0 = the manifest's.
    pub hold: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Keda {
    pub fn start(
        kafka: KafkaConfig,
        topic: String,
        group: String,
        partitions: i32,
        scaling: Scaling,
        target: Arc<dyn Target>,
    ) -> Self {
        let stop = CancellationToken::new();
        let hold = Arc::new(AtomicUsize::new(0));
        let watched = Watched {
            kafka,
            topic,
            group,
            partitions,
        };
        let task = tokio::spawn(scale_loop(watched, scaling, target, hold.clone(), stop.clone()));
        Self { hold, stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The consumer group and topic a scaler reads the lag of.
struct Watched {
    kafka: KafkaConfig,
    topic: String,
    group: String,
    partitions: i32,
}

async fn scale_loop(
    Watched {
        kafka,
        topic,
        group,
        partitions,
    }: Watched,
    mut s: Scaling,
    target: Arc<dyn Target>,
    hold: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let manifest_min = s.min;
    let mut last_active = Instant::now() - s.cooldown;
    let mut next_hpa = Instant::now();
    // The HPA's recommendations of the stabilization window, newest last.
    let mut recommendations: VecDeque<(Instant, usize)> = VecDeque::new();
    let mut last_scale_down = Instant::now() - s.scale_down.2;
    loop {
        s.min = manifest_min.max(hold.load(Ordering::SeqCst)).min(s.max);
        if target.replicas() < s.min {
            target.scale(s.min).await;
        }
        let lag = {
            let (kafka, topic, group) = (kafka.clone(), topic.clone(), group.clone());
            let earliest = s.reset_earliest;
            tokio::task::spawn_blocking(move || total_lag(&kafka, &topic, &group, earliest))
                .await
                .expect("lag task")
        };
        match lag {
            Err(e) => tracing::warn!("KEDA: lag of {group} unreadable: {e:#}"),
            Ok(lag) => {
                let capped = if s.cap_at_partitions {
                    lag.min(partitions as i64 * s.lag_threshold)
                } else {
                    lag
                };
                let replicas = target.replicas();
                if capped > s.activation_lag_threshold {
                    last_active = Instant::now();
                    if replicas == 0 {
                        tracing::info!("KEDA: {group} lag {lag}: activating (0 → {})", s.min.max(1));
                        target.scale(s.min.max(1)).await;
                        next_hpa = Instant::now() + HPA_SYNC;
                    }
                } else if replicas > 0 && s.min == 0 && last_active.elapsed() >= s.cooldown {
                    tracing::info!("KEDA: {group} idle for the cooldown period: {replicas} → 0");
                    target.scale(0).await;
                    recommendations.clear();
                }
                let replicas = target.replicas();
                if replicas > 0 && Instant::now() >= next_hpa {
                    next_hpa = Instant::now() + HPA_SYNC;
                    let wanted = hpa_desired(capped, s.lag_threshold, replicas, s.min.max(1), s.max);
                    recommendations.push_back((Instant::now(), wanted));
                    while recommendations
                        .front()
                        .is_some_and(|(t, _)| t.elapsed() > s.scale_down.0)
                    {
                        recommendations.pop_front();
                    }
                    if wanted > replicas {
                        let step = s.scale_up_pods.unwrap_or((replicas).max(4));
                        let up = wanted.min(replicas + step);
                        tracing::info!("HPA: {group} lag {lag}: {replicas} → {up}");
                        target.scale(up).await;
                    } else {
                        // Scale down only to the highest recommendation of the window, at the
                        // behavior's rate.
                        let floor = recommendations.iter().map(|(_, r)| *r).max().unwrap_or(replicas);
                        if floor < replicas && last_scale_down.elapsed() >= s.scale_down.2 {
                            let down = floor.max(replicas.saturating_sub(s.scale_down.1));
                            tracing::info!("HPA: {group} lag {lag}: {replicas} → {down}");
                            target.scale(down).await;
                            last_scale_down = Instant::now();
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(s.polling.min(HPA_SYNC)) => {}
        }
    }
}

/// The HPA's answer for an `AverageValue` metric target: ceil(total / target per pod),
/// unchanged within the 10 % tolerance, within [min, max].
fn hpa_desired(total: i64, per_pod: i64, current: usize, min: usize, max: usize) -> usize {
    let usage_ratio = total as f64 / (per_pod as f64 * current as f64);
    if (usage_ratio - 1.0).abs() <= 0.1 {
        return current.clamp(min, max);
    }
    ((total as f64 / per_pod as f64).ceil() as usize).clamp(min, max)
}

/// The group's lag on `topic`, summed over partitions (see the module docs).
pub fn total_lag(kafka: &KafkaConfig, topic: &str, group: &str, reset_earliest: bool) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(5))?;
    let mut lag = 0;
    for p in partitions {
        let (_, latest) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
        let done = committed
            .find_partition(topic, p)
            .map(|e| e.offset())
            .unwrap_or(Offset::Invalid);
        lag += match done {
            Offset::Offset(o) => (latest - o).max(0),
            _ if reset_earliest => latest,
            _ => 1,
        };
    }
    Ok(lag)
}

#[cfg(test)]
mod tests {
    use super::hpa_desired;

    #[test]
    fn hpa_follows_the_average_value() {
        assert_eq!(hpa_desired(2000, 20, 1, 1, 6), 6);
        assert_eq!(hpa_desired(45, 20, 1, 1, 6), 3);
        assert_eq!(hpa_desired(21, 20, 1, 1, 6), 1, "within the tolerance");
        assert_eq!(hpa_desired(0, 20, 3, 1, 6), 1);
    }
}
