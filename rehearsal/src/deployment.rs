//! Stand-in for a Deployment's replica count (the ReplicaSet controller, kubernetes
//! `pkg/controller/replicaset/replica_set.go`): KEDA sets `replicas`, pods are started
//! (container start delay, then the program until its readiness probe answers) or deleted
//! (SIGTERM, `terminationGracePeriodSeconds`, SIGKILL), newest first. Pods started while
//! none runs join an empty consumer group, which the broker holds for its initial rebalance
//! delay (3 s, [`crate::placement::INITIAL_REBALANCE_DELAY`]): their start counts it.
//!
//! One deviation, for the broker here: pods deleted together (KEDA's scale to zero from
//! several replicas, an HPA step down of more than one) stop one after another, each once
//! the consumers left have been given the partitions of the one before (at most
//! [`SETTLE_AT_MOST`]). Upstream they get SIGTERM at once and their consumers leave the group
//! together, which Apache Kafka handles; Tansu 0.6 does not: a member leaving while the
//! group rebalances for another's leave leaves the group stuck, and the next consumer to
//! join, minutes later, is never assigned a partition (reproduced with librdkafka alone:
//! three members closed at once, a fourth joining 30 s later got nothing in 60 s in 5 of 7
//! runs, the two others run beside another; closed one after another, each after the group
//! settled, it was assigned every time).

use crate::keda::Target;
use crate::manifests::Consumer;
use crate::pods::{Cluster, Pod};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a pod deleted together with others waits for the group to settle after the
/// one before it stopped (the consumers' session timeout, 6 s, and a join).
pub const SETTLE_AT_MOST: Duration = Duration::from_secs(10);

pub struct Deployment {
    cluster: Cluster,
    pub consumer: Consumer,
    desired: AtomicUsize,
    pods: Mutex<Vec<Pod>>,
    /// Pods being created.
    starting: AtomicUsize,
    /// Pods deleted and not yet stopped.
    stopping: AtomicUsize,
    /// Pods started and not yet deleted, for the report.
    pub most_pods: AtomicUsize,
}

impl Deployment {
    pub fn new(cluster: Cluster, consumer: Consumer) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            consumer,
            desired: AtomicUsize::new(0),
            pods: Mutex::default(),
            starting: AtomicUsize::new(0),
            stopping: AtomicUsize::new(0),
            most_pods: AtomicUsize::new(0),
        })
    }

    /// Pods running (ready, not deleted).
    pub fn pods(&self) -> usize {
        self.pods.lock().expect("not poisoned").len()
    }

    /// Pods being created (not yet ready).
    pub fn starting(&self) -> usize {
        self.starting.load(Ordering::SeqCst)
    }

    pub fn ready(&self) -> usize {
        self.pods.lock().expect("not poisoned").len()
    }

    /// Pods deleted whose program has not stopped yet.
    pub fn stopping(&self) -> usize {
        self.stopping.load(Ordering::SeqCst)
    }

    /// When a running pod's consumer last had its partitions assigned or revoked (its log's
    /// `partitions assigned` / `partitions revoked` lines): a consumer group still
    /// rebalancing pauses the partitions it moves.
    pub fn last_rebalance(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let names: Vec<String> = (self.pods.lock().expect("not poisoned").iter())
            .map(|p| p.name.clone())
            .collect();
        self.rebalances(&names, &["partitions assigned", "partitions revoked"])
            .into_iter()
            .max()
    }

    /// The times of the log lines of `pods` that contain one of `marks`.
    fn rebalances(&self, pods: &[String], marks: &[&str]) -> Vec<chrono::DateTime<chrono::Utc>> {
        pods.iter()
            .filter_map(|name| std::fs::read_to_string(self.cluster.logs.join(format!("{name}.log"))).ok())
            .flat_map(|log| {
                log.lines()
                    .filter(|l| marks.iter().any(|m| l.contains(m)))
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["timestamp"].as_str().and_then(|t| t.parse().ok()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Stops `gone` one after another (see the module docs): after each, waits until every
    /// pod still running has had partitions assigned since, at most [`SETTLE_AT_MOST`].
    async fn stop_one_by_one(self: Arc<Self>, gone: Vec<Pod>) {
        if gone.len() > 1 {
            tracing::info!(
                "deployment {}: {} pods deleted together stop one after another (the broker here)",
                self.consumer.name,
                gone.len()
            );
        }
        let mut gone = gone.into_iter().peekable();
        while let Some(pod) = gone.next() {
            pod.terminate().await;
            self.stopping.fetch_sub(1, Ordering::SeqCst);
            if gone.peek().is_none() {
                break;
            }
            let stopped = chrono::Utc::now();
            let waiting_since = std::time::Instant::now();
            while waiting_since.elapsed() < SETTLE_AT_MOST {
                let names: Vec<String> = (self.pods.lock().expect("not poisoned").iter())
                    .map(|p| p.name.clone())
                    .chain(gone.peek().map(|p| p.name.clone()))
                    .collect();
                let settled = names.iter().all(|name| {
                    self.rebalances(std::slice::from_ref(name), &["partitions assigned"])
                        .into_iter()
                        .any(|t| t > stopped)
                });
                if settled {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub async fn stop(&self) {
        self.desired.store(0, Ordering::SeqCst);
        let pods: Vec<Pod> = self.pods.lock().expect("not poisoned").drain(..).collect();
        futures::future::join_all(pods.into_iter().map(Pod::terminate)).await;
    }
}

impl Target for Arc<Deployment> {
    fn replicas(&self) -> usize {
        self.desired.load(Ordering::SeqCst)
    }

    fn scale(&self, n: usize) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let before = self.desired.swap(n, Ordering::SeqCst);
            // Pods that join an empty consumer group get their partitions only after the
            // broker's initial rebalance delay.
            let empty = self.pods() == 0;
            for _ in before..n {
                let d = self.clone();
                d.starting.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if empty {
                        tokio::time::sleep(crate::placement::INITIAL_REBALANCE_DELAY).await;
                    }
                    // A pod deleted while it was being created (KEDA scales a new
                    // Deployment's first pod away at its first poll) never runs.
                    let pod = d
                        .cluster
                        .start_if(
                            &d.consumer.name,
                            &d.consumer.container,
                            true,
                            d.consumer.termination_grace,
                            || d.pods() < d.desired.load(Ordering::SeqCst),
                        )
                        .await;
                    d.starting.fetch_sub(1, Ordering::SeqCst);
                    match pod {
                        Ok(None) => {}
                        Ok(Some(pod)) => {
                            // Scaled down while it was starting: the ReplicaSet deletes it.
                            let extra = {
                                let mut pods = d.pods.lock().expect("not poisoned");
                                if pods.len() >= d.desired.load(Ordering::SeqCst) {
                                    Some(pod)
                                } else {
                                    pods.push(pod);
                                    d.most_pods.fetch_max(pods.len(), Ordering::SeqCst);
                                    None
                                }
                            };
                            if let Some(pod) = extra {
                                pod.terminate().await;
                            }
                        }
                        Err(e) => tracing::error!("deployment {}: pod did not start: {e:#}", d.consumer.name),
                    }
                });
            }
            if n < before {
                let gone: Vec<Pod> = {
                    let mut pods = self.pods.lock().expect("not poisoned");
                    let keep = n.min(pods.len());
                    pods.drain(keep..).collect()
                };
                self.stopping.fetch_add(gone.len(), Ordering::SeqCst);
                tokio::spawn(self.clone().stop_one_by_one(gone));
            }
        })
    }
}
