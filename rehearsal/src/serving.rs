//! Stand-in for Knative Serving in front of one Service: the activator, the queue-proxy's
//! concurrency limit and the KPA autoscaler, as far as scale-from-zero and bursts need them.
//!
//! - Activator (knative/serving `pkg/activator/handler/handler.go`, `pkg/activator/net/
//!   throttler.go`): requests wait while no pod is ready (a request to a Service at zero
//!   pokes the autoscaler, which scales to 1 at once); each pod takes at most
//!   `containerConcurrency` requests at a time, the rest wait for a free slot.
//! - KPA (`pkg/autoscaler/scaling/autoscaler.go`, defaults in `pkg/autoscaler/config/
//!   config.go`): every 2 s, desired pods = ceil(average concurrency (time-weighted, as
//!   the queue-proxy reports it: `pkg/queue/stats.go`) / (target × 70 %
//!   target utilization)) over the stable window (`autoscaling.knative.dev/window`) and over
//!   the panic window (10 % of it); when the panic figure reaches 200 % of the ready pods the
//!   autoscaler panics: it scales on the panic figure and does not scale down while
//!   panicking (at least a stable window). Within [min-scale, max-scale].
//! - Scale to zero (`pkg/reconciler/autoscaling/kpa/scaler.go`): once desired is 0, the last
//!   pod stays for max(scale-to-zero-grace-period 30 s, the retention period annotation).
//! - A new revision starts with `autoscaling.knative.dev/initial-scale` pods (1 by default).
//! - Pod start: the container start delay, then the program until its readiness probe
//!   answers (probed every 50 ms while starting, as the queue-proxy does).

use crate::manifests::KnativeService;
use crate::pods::{Cluster, Pod};
use cloudevents::binding::reqwest::RequestBuilderExt;
use cloudevents::Event;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

const TICK: Duration = Duration::from_secs(2);
const TARGET_UTILIZATION: f64 = 0.7;
const PANIC_WINDOW_PERCENTAGE: f64 = 0.10;
const PANIC_THRESHOLD: f64 = 2.0;
const SCALE_TO_ZERO_GRACE: Duration = Duration::from_secs(30);
const SAMPLE: Duration = Duration::from_millis(100);

struct Slot {
    port: u16,
    slots: Arc<Semaphore>,
    draining: bool,
    pod: Option<Pod>,
}

pub struct Serving {
    svc: KnativeService,
    cluster: Cluster,
    client: reqwest::Client,
    pods: Mutex<Vec<Slot>>,
    /// Pods asked for (starting or ready).
    desired: AtomicUsize,
    changed: Notify,
    in_flight: AtomicUsize,
    /// Microseconds of requests answered so far (all requests' durations summed): the
    /// time-weighted concurrency between two samples is its growth over their distance.
    busy_micros: std::sync::atomic::AtomicU64,
    stop: CancellationToken,
    /// Most pods ready at once, for the report.
    pub most_pods: AtomicUsize,
    /// An operator's min-scale raised for a while (0: the manifest's).
    hold: AtomicUsize,
}

impl Serving {
    pub fn start(cluster: Cluster, svc: KnativeService) -> Arc<Self> {
        let serving = Arc::new(Self {
            svc,
            cluster,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .build()
                .expect("HTTP client"),
            pods: Mutex::default(),
            desired: AtomicUsize::new(0),
            changed: Notify::new(),
            in_flight: AtomicUsize::new(0),
            busy_micros: Default::default(),
            stop: CancellationToken::new(),
            most_pods: AtomicUsize::new(0),
            hold: AtomicUsize::new(0),
        });
        // A new revision starts with `initial-scale` pods (config-autoscaler's
        // `initial-scale`, 1); the KPA takes them away once no traffic has come.
        serving.scale_to(serving.svc.initial_scale);
        tokio::spawn(autoscaler(serving.clone()));
        serving
    }

    /// The Service's address as a dead letter names it.
    pub fn url(&self) -> String {
        format!("http://{}.todo-events.svc.cluster.local", self.svc.name)
    }

    pub fn ready_pods(&self) -> usize {
        self.pods
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|p| !p.draining)
            .count()
    }

    /// Pods asked for or still running (starting, ready or draining).
    pub fn pods(&self) -> usize {
        let live = self.pods.lock().expect("not poisoned").len();
        live.max(self.desired.load(Ordering::SeqCst))
    }

    /// Gives back a hold of [`Serving::prescale`]: the manifest's min-scale again.
    pub fn release(&self) {
        self.hold.store(0, Ordering::SeqCst);
    }

    /// Holds at least `n` pods (an operator raising min-scale), e.g. for a burst at full
    /// scale-out, and waits until they are ready.
    pub async fn prescale(self: &Arc<Self>, n: usize) {
        let n = n.min(self.svc.max_scale.max(1));
        self.hold.store(n, Ordering::SeqCst);
        self.scale_to(n);
        while self.ready_pods() < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One request through the activator and a pod's queue-proxy: (status, body), or why
    /// there was no answer.
    /// Sends `event` to a pod, with the sender's `Authorization` header when it has one (the
    /// queue-proxy passes it through to the user container).
    pub async fn send(
        self: &Arc<Self>,
        event: &Event,
        authorization: Option<&str>,
    ) -> Result<(u16, Vec<u8>), String> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _counted = Decrement(&self.in_flight, &self.busy_micros, Instant::now());
        if self.desired.load(Ordering::SeqCst) == 0 {
            // The activator's poke: a Service at zero is scaled to 1 at once.
            self.scale_to(1);
        }
        let deadline = Instant::now() + self.svc.timeout;
        let (port, _permit) = loop {
            if let Some(slot) = self.free_slot() {
                break slot;
            }
            if Instant::now() > deadline {
                return Err("activator: no pod within the request timeout".into());
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), self.changed.notified()).await;
        };
        let mut request = self
            .client
            .post(format!("http://127.0.0.1:{port}/"))
            .timeout(self.svc.timeout);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let request = request.event(event.clone()).map_err(|e| e.to_string())?;
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        self.changed.notify_waiters();
        Ok((status, body.to_vec()))
    }

    /// A ready pod with a free slot, the least busy first.
    fn free_slot(&self) -> Option<(u16, OwnedSemaphorePermit)> {
        let pods = self.pods.lock().expect("not poisoned");
        let mut ready: Vec<&Slot> = pods.iter().filter(|p| !p.draining).collect();
        ready.sort_by_key(|p| std::cmp::Reverse(p.slots.available_permits()));
        ready.into_iter().find_map(|p| {
            p.slots
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|permit| (p.port, permit))
        })
    }

    fn min_scale(&self) -> usize {
        self.svc.min_scale.max(self.hold.load(Ordering::SeqCst))
    }

    fn scale_to(self: &Arc<Self>, n: usize) {
        let n = n.clamp(self.min_scale(), self.svc.max_scale.max(1));
        let before = self.desired.swap(n, Ordering::SeqCst);
        if n > before {
            for _ in before..n {
                let s = self.clone();
                tokio::spawn(async move {
                    let pod = s
                        .cluster
                        .start(&s.svc.name, &s.svc.container, true, Duration::from_secs(30))
                        .await;
                    match pod {
                        Ok(pod) => {
                            let cc = if s.svc.container_concurrency == 0 {
                                10_000
                            } else {
                                s.svc.container_concurrency
                            };
                            let mut pods = s.pods.lock().expect("not poisoned");
                            // Scaled down while it was starting: it goes at once.
                            let draining = pods.iter().filter(|p| !p.draining).count()
                                >= s.desired.load(Ordering::SeqCst);
                            pods.push(Slot {
                                port: pod.port,
                                slots: Arc::new(Semaphore::new(cc)),
                                draining,
                                pod: Some(pod),
                            });
                            let ready = pods.iter().filter(|p| !p.draining).count();
                            s.most_pods.fetch_max(ready, Ordering::SeqCst);
                        }
                        Err(e) => {
                            tracing::error!("serving: {} pod did not start: {e:#}", s.svc.name);
                            s.desired.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    s.changed.notify_waiters();
                });
            }
        } else if n < before {
            let mut pods = self.pods.lock().expect("not poisoned");
            let mut to_drain = before - n;
            for p in pods.iter_mut().rev().filter(|p| !p.draining) {
                if to_drain == 0 {
                    break;
                }
                p.draining = true;
                to_drain -= 1;
            }
        }
    }

    /// Stops the autoscaler and every pod.
    pub async fn stop(&self) {
        self.stop.cancel();
        let pods: Vec<Pod> = self
            .pods
            .lock()
            .expect("not poisoned")
            .drain(..)
            .filter_map(|mut p| p.pod.take())
            .collect();
        futures::future::join_all(pods.into_iter().map(Pod::terminate)).await;
    }
}

/// A request in flight: counted out when it ends, its duration added to the busy time.
struct Decrement<'a>(&'a AtomicUsize, &'a std::sync::atomic::AtomicU64, Instant);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        self.1
            .fetch_add(self.2.elapsed().as_micros() as u64, Ordering::SeqCst);
    }
}

async fn autoscaler(s: Arc<Serving>) {
    let stable = s.svc.stable_window;
    let panic = stable.mul_f64(PANIC_WINDOW_PERCENTAGE);
    // pkg/reconciler/autoscaling/resources/target.go: the target annotation, at most
    // containerConcurrency, times the target utilization.
    let cc = s.svc.container_concurrency;
    let target = if cc > 0 {
        s.svc.target.min(cc as f64)
    } else {
        s.svc.target
    };
    let per_pod = (target * TARGET_UTILIZATION).max(0.01);
    // The queue-proxy reports time-weighted concurrency (knative/serving pkg/queue/stats.go),
    // so a trickle of short requests counts as what it is (4 requests/s of 5 ms: 0.02), not
    // as 0 because no sample fell inside one: each sample is the larger of the requests in
    // flight now and the busy time since the last sample over its length.
    let mut samples: VecDeque<(Instant, f64)> = VecDeque::new();
    let mut last_busy = 0u64;
    let mut next_tick = Instant::now() + TICK;
    let mut panicking_since: Option<Instant> = None;
    let mut zero_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = s.stop.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE) => {}
        }
        let busy = s.busy_micros.load(Ordering::SeqCst);
        let weighted = (busy - last_busy) as f64 / SAMPLE.as_micros() as f64;
        last_busy = busy;
        let now_in_flight = s.in_flight.load(Ordering::SeqCst) as f64;
        samples.push_back((Instant::now(), now_in_flight.max(weighted)));
        while samples.front().is_some_and(|(t, _)| t.elapsed() > stable) {
            samples.pop_front();
        }
        reap_drained(&s).await;
        if Instant::now() < next_tick {
            continue;
        }
        next_tick += TICK;
        let average = |window: Duration| {
            let recent: Vec<f64> = samples
                .iter()
                .filter(|(t, _)| t.elapsed() <= window)
                .map(|(_, v)| *v)
                .collect();
            recent.iter().sum::<f64>() / recent.len().max(1) as f64
        };
        let current = s.desired.load(Ordering::SeqCst);
        let ready = s.ready_pods().max(1);
        // MaxScaleDownRate 2: never below half the ready pods in one step.
        let floor = s.ready_pods() / 2;
        let desired_stable = ((average(stable) / per_pod).ceil() as usize).max(floor);
        let desired_panic = ((average(panic) / per_pod).ceil() as usize).max(floor);
        if desired_panic as f64 / ready as f64 >= PANIC_THRESHOLD {
            panicking_since = Some(Instant::now());
        } else if panicking_since.is_some_and(|t| t.elapsed() >= stable) {
            panicking_since = None;
        }
        let mut desired = match panicking_since {
            Some(_) => desired_panic.max(current),
            None => desired_stable,
        };
        if s.in_flight.load(Ordering::SeqCst) > 0 {
            desired = desired.max(1);
        }
        if desired == 0 && current > 0 {
            let since = *zero_since.get_or_insert_with(Instant::now);
            if since.elapsed() < SCALE_TO_ZERO_GRACE.max(s.svc.retention) {
                continue;
            }
        } else {
            zero_since = None;
        }
        let desired = desired.clamp(s.min_scale(), s.svc.max_scale.max(1));
        if desired != current {
            tracing::info!("KPA: {} {current} → {desired} pods", s.svc.name);
            s.scale_to(desired);
        }
    }
}

/// Pods marked for removal go once their last request is answered.
async fn reap_drained(s: &Serving) {
    let done: Vec<Pod> = {
        let mut pods = s.pods.lock().expect("not poisoned");
        let cc = s.svc.container_concurrency.max(1);
        let mut gone = Vec::new();
        pods.retain_mut(|p| {
            let idle = p.slots.available_permits() >= cc.min(10_000);
            if p.draining && idle {
                if let Some(pod) = p.pod.take() {
                    gone.push(pod);
                }
                false
            } else {
                true
            }
        });
        gone
    };
    for pod in done {
        tokio::spawn(pod.terminate());
    }
}
