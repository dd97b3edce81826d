//! Stand-in for where a KafkaSource's consumers run: the Kafka controller's scheduler places
//! each source's virtual replicas (what KEDA scales) on the pods of the shared
//! `kafka-source-dispatcher` StatefulSet, and each pod runs ONE consumer per source it holds
//! replicas of, whatever their number (eventing-kafka-broker: the scheduler of knative/eventing
//! `pkg/scheduler/statefulset`, used by `control-plane/pkg/reconciler/consumergroup`; the data
//! plane deploys one consumer verticle per egress of its contract,
//! `data-plane/dispatcher/.../main/ConsumerDeployerVerticle.java`).
//!
//! - **Capacity**: at most `POD_CAPACITY` (20) virtual replicas per pod, of all sources
//!   together; placement fills the pods in ordinal order (new replicas go to the lowest pod
//!   with room, removed ones leave the highest first), so with both sources at 6 everything
//!   sits on pod 0 and each source has one consumer.
//! - **Pods**: the StatefulSet has as many pods as the placements need, at least
//!   `DISPATCHERS_MIN_REPLICAS` (0 here: the manifests' sources scale to zero, and so do the
//!   dispatcher pods); a pod that must start first takes `--dispatcher-start` (container
//!   start and the JVM's start-up) before it consumes. Pods above the highest one holding a
//!   replica are removed.
//! - **A change of replicas on a pod is a new egress**: the pod's consumer for that source is
//!   stopped (what it has in flight finishes, its offsets are committed, it leaves the group)
//!   and a new one is started once the new contract reaches the pod (`--contract-delay`: the
//!   contract is a ConfigMap mounted into the pods, which the data plane watches as a file).
//! - **The broker's initial rebalance delay**: a consumer that joins a group no one else is
//!   in waits `group.initial.rebalance.delay.ms` (3 s, Apache Kafka's default; Tansu has no
//!   such delay) for more members before it is given partitions.
//!
//! The consumer itself (in-flight bound, retries, dead letters, commits) is
//! [`crate::dispatcher`].

use crate::dispatcher::Dispatcher;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `POD_CAPACITY` of the Kafka controller's KafkaSource scheduler (eventing-kafka-broker
/// `control-plane/config/eventing-kafka-source/200-controller/500-controller.yaml`).
pub const POD_CAPACITY: usize = 20;
// `DISPATCHERS_MIN_REPLICAS` there is 0: the dispatcher StatefulSet may go to zero pods.
/// `AUTOSCALER_REFRESH_PERIOD` there (100 s): how often the StatefulSet may be scaled down.
pub const REFRESH_PERIOD: Duration = Duration::from_secs(100);
/// Apache Kafka's `group.initial.rebalance.delay.ms` default.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_secs(3);

/// The dispatcher pods of one installation, shared by its KafkaSources.
pub struct DispatcherPods {
    /// A pod's start: container start and the dispatcher's own start-up.
    start: Duration,
    /// From a new placement to the pod's data plane acting on it.
    contract: Duration,
    inner: Mutex<Inner>,
    /// Consumers per group in the group now (for the initial rebalance delay).
    members: Arc<Mutex<HashMap<String, usize>>>,
    /// Most pods at once, and consumer restarts, for the report.
    pub most_pods: std::sync::atomic::AtomicUsize,
    pub restarts: std::sync::atomic::AtomicUsize,
    stop: CancellationToken,
}

struct Inner {
    pods: Vec<DispatcherPod>,
    /// When the StatefulSet was last scaled up (the scale-down tick waits a refresh period
    /// from it).
    last_scale_up: Instant,
}

struct DispatcherPod {
    /// When its dispatcher is up.
    ready_at: Instant,
    /// Per source: its virtual replicas here, and the consumer running them.
    held: BTreeMap<String, (usize, Option<Consumer>)>,
}

struct Consumer {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherPods {
    pub fn new(start: Duration, contract: Duration) -> Arc<Self> {
        let pods = Arc::new(Self {
            start,
            contract,
            inner: Mutex::new(Inner {
                pods: Vec::new(),
                last_scale_up: Instant::now(),
            }),
            members: Arc::default(),
            most_pods: Default::default(),
            restarts: Default::default(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(autoscaler(Arc::downgrade(&pods), pods.stop.clone()));
        pods
    }

    /// Dispatcher pods running or starting.
    pub fn running(&self) -> usize {
        self.inner.lock().expect("not poisoned").pods.len()
    }

    /// Places `n` virtual replicas of `d`'s source (KEDA changed the ConsumerGroup's
    /// replicas), restarting the consumer of each pod whose share changed.
    pub fn place(self: &Arc<Self>, d: &Arc<Dispatcher>, n: usize) {
        let source = d.name().to_owned();
        let mut inner = self.inner.lock().expect("not poisoned");
        let before: Vec<usize> = inner.pods.iter().map(|p| held(p, &source)).collect();
        let others: Vec<usize> = (inner.pods.iter())
            .map(|p| {
                p.held
                    .iter()
                    .filter(|(s, _)| **s != source)
                    .map(|(_, (k, _))| k)
                    .sum()
            })
            .collect();
        let after = spread(&others, &before, n);
        while inner.pods.len() < after.len() {
            inner.pods.push(DispatcherPod {
                ready_at: Instant::now() + self.start,
                held: BTreeMap::new(),
            });
        }
        for (pod, k) in inner.pods.iter_mut().zip(&after) {
            if *k > 0 || pod.held.contains_key(&source) {
                pod.held.entry(source.clone()).or_insert((0, None)).0 = *k;
            }
        }
        // Each pod whose share of this source changed gets a new egress: a new consumer.
        for (i, pod) in inner.pods.iter_mut().enumerate() {
            let was = before.get(i).copied().unwrap_or(0);
            let Some((k, running)) = pod.held.get_mut(&source) else {
                continue;
            };
            if *k == was {
                continue;
            }
            let old = running.take();
            if old.is_some() {
                self.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if *k > 0 {
                let cancel = CancellationToken::new();
                let ready_at = pod.ready_at;
                let task = tokio::spawn(egress(self.clone(), d.clone(), old, ready_at, cancel.clone()));
                *running = Some(Consumer { cancel, task });
            } else if let Some(old) = old {
                old.cancel.cancel();
                tokio::spawn(async move {
                    let _ = old.task.await;
                });
            }
        }
        for pod in &mut inner.pods {
            pod.held.retain(|_, (k, _)| *k > 0);
        }
        if inner.pods.len() > before.len() {
            // A scale-up of the StatefulSet restarts the autoscaler's wait.
            inner.last_scale_up = Instant::now();
        }
        self.most_pods
            .fetch_max(inner.pods.len(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops every consumer (what is in flight finishes).
    pub async fn stop(&self) {
        self.stop.cancel();
        let consumers: Vec<Consumer> = {
            let mut inner = self.inner.lock().expect("not poisoned");
            inner
                .pods
                .drain(..)
                .flat_map(|p| p.held.into_values().filter_map(|(_, c)| c))
                .collect()
        };
        for c in consumers {
            c.cancel.cancel();
            let _ = c.task.await;
        }
    }
}

/// The scheduler's placement of `n` replicas of one source, per pod, given what the other
/// sources hold on each pod (`others`) and this source's placement now (`mine`)
/// (knative/eventing `pkg/scheduler/statefulset/scheduler.go`, `addReplicas`,
/// `candidatesOrdered`, `removeReplicas`). The autoscaler first makes the StatefulSet
/// ceil(all replicas / capacity) pods if it has fewer; new replicas are spread one per pod
/// and pass, pods not yet holding this source first, each in ordinal order, while a pod has
/// room; removed ones leave the highest pods first; what stays does not move.
fn spread(others: &[usize], mine: &[usize], n: usize) -> Vec<usize> {
    let total = others.iter().sum::<usize>() + n;
    let pods = others.len().max(mine.len()).max(total.div_ceil(POD_CAPACITY));
    let other = |i: usize| others.get(i).copied().unwrap_or(0);
    let mut after = mine.to_vec();
    after.resize(pods, 0);
    let now: usize = mine.iter().sum();
    if n > now {
        let mut more = n - now;
        while more > 0 {
            let mut candidates: Vec<usize> = (0..after.len()).filter(|&i| after[i] == 0).collect();
            candidates.extend((0..after.len()).filter(|&i| after[i] > 0));
            let mut placed = false;
            for i in candidates {
                if more > 0 && other(i) + after[i] < POD_CAPACITY {
                    after[i] += 1;
                    more -= 1;
                    placed = true;
                }
            }
            if !placed {
                after.push(0);
            }
        }
    } else {
        let mut fewer = now - n;
        for k in after.iter_mut().rev() {
            let take = (*k).min(fewer);
            *k -= take;
            fewer -= take;
        }
    }
    after
}

/// The StatefulSet's scale-down (`pkg/scheduler/statefulset/autoscaler.go`, `Start`,
/// `doautoscale`): every `AUTOSCALER_REFRESH_PERIOD` after the last scale-up, down to
/// ceil(placed replicas / capacity) pods, at least `DISPATCHERS_MIN_REPLICAS`; pods above it
/// go (what they held was moved off them first, by compaction; the rehearsal's sources
/// never need more than one pod, so it removes only pods that hold nothing).
async fn autoscaler(pods: std::sync::Weak<DispatcherPods>, stop: CancellationToken) {
    let mut last_tick = Instant::now();
    loop {
        let wake = match pods.upgrade() {
            Some(p) => p.inner.lock().expect("not poisoned").last_scale_up.max(last_tick) + REFRESH_PERIOD,
            None => return,
        };
        let wake = wake.max(Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let Some(p) = pods.upgrade() else { return };
        let mut inner = p.inner.lock().expect("not poisoned");
        if inner.last_scale_up + REFRESH_PERIOD > Instant::now() {
            continue;
        }
        let placed: usize = inner
            .pods
            .iter()
            .flat_map(|p| p.held.values())
            .map(|(k, _)| k)
            .sum();
        // At least DISPATCHERS_MIN_REPLICAS, which is 0.
        let needed = placed.div_ceil(POD_CAPACITY);
        while inner.pods.len() > needed && inner.pods.last().is_some_and(|p| p.held.is_empty()) {
            inner.pods.pop();
            tracing::info!("dispatcher StatefulSet: {} pod(s)", inner.pods.len());
        }
        last_tick = Instant::now();
    }
}

fn held(pod: &DispatcherPod, source: &str) -> usize {
    pod.held.get(source).map_or(0, |(n, _)| *n)
}

/// One egress of one pod: waits for the consumer it replaces to drain, for the pod to be
/// up and for the contract to reach it, joins the group (with the broker's delay when the
/// group is empty) and consumes until cancelled.
async fn egress(
    pods: Arc<DispatcherPods>,
    d: Arc<Dispatcher>,
    old: Option<Consumer>,
    ready_at: Instant,
    cancel: CancellationToken,
) {
    if let Some(old) = old {
        old.cancel.cancel();
        let _ = old.task.await;
    }
    let contract = tokio::time::sleep(pods.contract);
    let up = tokio::time::sleep_until(ready_at.into());
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = async { up.await; contract.await } => {}
    }
    let group = d.group().to_owned();
    let first = {
        let mut members = pods.members.lock().expect("not poisoned");
        let n = members.entry(group.clone()).or_default();
        *n += 1;
        *n == 1
    };
    let joined = async {
        if first {
            tokio::time::sleep(INITIAL_REBALANCE_DELAY).await;
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = joined => crate::dispatcher::consume(d, cancel.clone()).await,
    }
    *pods
        .members
        .lock()
        .expect("not poisoned")
        .entry(group)
        .or_default() -= 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_spread_over_the_pods_there_are() {
        // Both sources at their max-scale (6) fit on one pod: one consumer each.
        assert_eq!(spread(&[], &[], 6), [6]);
        assert_eq!(spread(&[6], &[0], 6), [6]);
        // Beyond a pod's capacity the StatefulSet grows, and replicas are spread one per pod
        // and pass, the pods without this source first.
        assert_eq!(spread(&[16], &[0], 6), [3, 3]);
        assert_eq!(spread(&[19, 0], &[0, 0], 3), [1, 2]);
        // Down: the highest pods first; the rest stays where it is.
        assert_eq!(spread(&[16, 0], &[3, 3], 3), [3, 0]);
        assert_eq!(spread(&[6], &[6], 0), [0]);
        // Pods are not removed here (the autoscaler's tick does it).
        assert_eq!(spread(&[0, 0], &[0, 0], 1), [1, 0]);
    }
}
