//! Stand-in for KEDA's Kafka scaler and the HPA it feeds, for one scaled target (a keda/
//! consumer Deployment, or the consumers of a KafkaSource).
//!
//! - Lag, as kedacore/keda `pkg/scalers/kafka_scaler.go` (`getLagForPartition`,
//!   `getTotalLag`) computes it: per partition, the topic's latest offset minus the group's
//!   committed offset; a partition without a committed offset counts its latest offset as
//!   lag with `offsetResetPolicy: earliest`, 1 with `latest`; the total is capped at
//!   partitions × `lagThreshold` with `allowIdleConsumers: false`.
//! - `scaleToZeroOnInvalidOffset: true`: a partition without a committed offset counts 0.
//! - Fallback (`pkg/fallback/fallback.go`): once reading the lag has failed more than
//!   `failureThreshold` times in a row, the HPA is fed a metric that holds
//!   `fallback.replicas` (only while scaled out; a scaler in error is inactive, so it never
//!   wakes a target at zero).
//! - A new ScaledObject starts from the target's own replicas (a Deployment's `spec.replicas`,
//!   1 if unset; a KafkaSource's `spec.consumers`) and, with no `lastActiveTime` yet, scales
//!   an inactive target to zero at its first poll (`scale_scaledobjects.go`).
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
    // As created, before KEDA's first poll.
    target.scale(s.initial.min(s.max)).await;
    // No lastActiveTime: an inactive target goes to zero at the first poll.
    let mut last_active = Instant::now() - s.cooldown;
    let mut failures = 0u32;
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
            let invalid = if s.zero_on_invalid {
                Invalid::Zero
            } else if s.reset_earliest {
                Invalid::Latest
            } else {
                Invalid::One
            };
            tokio::task::spawn_blocking(move || total_lag(&kafka, &topic, &group, invalid))
                .await
                .expect("lag task")
        };
        failures = if lag.is_err() { failures + 1 } else { 0 };
        match lag {
            Err(e) => {
                tracing::warn!("KEDA: lag of {group} unreadable ({failures} in a row): {e:#}");
                let replicas = target.replicas();
                if let Some((threshold, fallback)) = s.fallback {
                    if failures > threshold && replicas > 0 && replicas != fallback {
                        tracing::info!("KEDA: {group} fallback: {replicas} → {fallback}");
                        target.scale(fallback.clamp(s.min.max(1), s.max)).await;
                    }
                }
            }
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

/// What a partition without a committed offset counts as lag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// `offsetResetPolicy: latest` (the default): 1.
    One,
    /// `offsetResetPolicy: earliest`: the partition's latest offset, all it ever held.
    Latest,
    /// `scaleToZeroOnInvalidOffset: true`: 0.
    Zero,
}

/// The group's lag on `topic`, summed over partitions (see the module docs).
pub fn total_lag(kafka: &KafkaConfig, topic: &str, group: &str, invalid: Invalid) -> anyhow::Result<i64> {
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
        lag += match (done, invalid) {
            (Offset::Offset(o), _) => (latest - o).max(0),
            (_, Invalid::Zero) => 0,
            (_, Invalid::Latest) => latest,
            (_, Invalid::One) => 1,
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
