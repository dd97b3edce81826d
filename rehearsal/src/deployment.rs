//! Stand-in for a Deployment's replica count (the ReplicaSet controller, kubernetes
//! `pkg/controller/replicaset/replica_set.go`): KEDA sets `replicas`, pods are started
//! (container start delay, then the program until its readiness probe answers) or deleted
//! (SIGTERM, `terminationGracePeriodSeconds`, SIGKILL), newest first. Pods started while
//! none runs join an empty consumer group, which the broker holds for its initial rebalance
//! delay (3 s, [`crate::placement::INITIAL_REBALANCE_DELAY`]): their start counts it.

use crate::keda::Target;
use crate::manifests::Consumer;
use crate::pods::{Cluster, Pod};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Deployment {
    cluster: Cluster,
    pub consumer: Consumer,
    desired: AtomicUsize,
    pods: Mutex<Vec<Pod>>,
    /// Pods being created.
    starting: AtomicUsize,
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

    /// When a running pod's consumer last had its partitions assigned or revoked (its log's
    /// `partitions assigned` / `partitions revoked` lines): a consumer group still
    /// rebalancing pauses the partitions it moves.
    pub fn last_rebalance(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let names: Vec<String> = (self.pods.lock().expect("not poisoned").iter())
            .map(|p| p.name.clone())
            .collect();
        names
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.cluster.logs.join(format!("{name}.log"))).ok())
            .flat_map(|log| {
                log.lines()
                    .filter(|l| l.contains("partitions assigned") || l.contains("partitions revoked"))
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["timestamp"].as_str().and_then(|t| t.parse().ok()))
                    .collect::<Vec<_>>()
            })
            .max()
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
                for pod in gone {
                    tokio::spawn(pod.terminate());
                }
            }
        })
    }
}
