//! One installation brought up as its manifests describe it: the CronJob, and either the
//! knative/ shape (Knative Services behind KafkaSources, both scaled from zero) or the keda/
//! shape (consumer Deployments scaled by ScaledObjects). Every value comes from the
//! manifests ([`crate::manifests`]); the stand-ins play the controllers.

use crate::cronjob;
use crate::deployment::Deployment;
use crate::dispatcher::{self, Dispatcher};
use crate::keda::{Keda, Target};
use crate::manifests::Manifests;
use crate::placement::DispatcherPods;
use crate::pods::Cluster;
use crate::serving::Serving;
use crate::world::World;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Shape {
    Knative,
    Keda,
}

impl Shape {
    pub fn dir(self) -> &'static str {
        match self {
            Shape::Knative => "knative",
            Shape::Keda => "keda",
        }
    }
}

/// The two functions, each with what feeds and scales it.
pub struct Function {
    pub keda: Keda,
    pub max: usize,
    /// KEDA's pollingInterval for it.
    pub polling: Duration,
    /// KEDA's cooldownPeriod for it.
    pub cooldown: Duration,
    pub part: Part,
}

pub enum Part {
    Knative {
        serving: Arc<Serving>,
        dispatcher: Arc<Dispatcher>,
        /// The delivery spec's waits before each retry, in order.
        retry_schedule: Vec<Duration>,
    },
    Keda {
        deployment: Arc<Deployment>,
        retry_schedule: Vec<Duration>,
    },
}

pub struct Stack {
    pub cron: Option<cronjob::Controller>,
    /// knative/: the `kafka-source-dispatcher` pods the sources' consumers run on.
    pub dispatcher_pods: Option<Arc<DispatcherPods>>,
    pub notify: Function,
    pub recur: Function,
    /// The CronJob's `--every`, from its args.
    pub every: Duration,
}

impl Stack {
    pub fn start(
        shape: Shape,
        m: &Manifests,
        world: &World,
        cluster: &Cluster,
        partitions: i32,
        dispatcher: (Duration, Duration),
    ) -> anyhow::Result<Self> {
        let dispatcher_pods =
            (shape == Shape::Knative).then(|| DispatcherPods::new(dispatcher.0, dispatcher.1));
        let cron = m.cronjob("scheduler-cron")?;
        let every = cron
            .container
            .args
            .iter()
            .position(|a| a == "--every")
            .and_then(|i| cron.container.args.get(i + 1))
            .map(|e| humantime::parse_duration(e))
            .transpose()?
            .unwrap_or(Duration::from_secs(1));
        let function = |name: &str, source: &str| -> anyhow::Result<Function> {
            Ok(match shape {
                Shape::Knative => {
                    let svc = m.knative_service(name)?;
                    let source = m.kafka_source(source)?;
                    // As the Kafka controller leaves a new source's group before placing
                    // its consumers: offsets initialised at the end with `latest`, none
                    // with `earliest`.
                    if source.initial_latest {
                        world.init_offsets_latest(&source.group, &source.topic)?;
                    }
                    anyhow::ensure!(
                        source.sink_service == name,
                        "KafkaSource {} sinks to {}",
                        source.name,
                        source.sink_service
                    );
                    let serving = Serving::start(cluster.clone(), svc);
                    let dispatcher = Dispatcher::new(
                        source.clone(),
                        world.kafka.clone(),
                        serving.clone(),
                        world.issuer.clone(),
                        dispatcher_pods.clone().expect("knative/ has dispatcher pods"),
                    )?;
                    let retry_schedule = (1..=source.retry)
                        .map(|n| dispatcher::backoff(&source, n))
                        .collect();
                    let keda = Keda::start(
                        world.kafka.clone(),
                        source.topic.clone(),
                        source.group.clone(),
                        partitions,
                        source.scaling.clone(),
                        Arc::new(dispatcher.clone()) as Arc<dyn Target>,
                    );
                    Function {
                        keda,
                        max: source.scaling.max,
                        polling: source.scaling.polling,
                        cooldown: source.scaling.cooldown,
                        part: Part::Knative {
                            serving,
                            dispatcher,
                            retry_schedule,
                        },
                    }
                }
                Shape::Keda => {
                    // A new consumer group: no committed offsets until its consumers commit.
                    let consumer = m.consumer(name)?;
                    let retry_schedule = consumer_retry_schedule(&consumer.container.env)?;
                    let deployment = Deployment::new(cluster.clone(), consumer.clone());
                    let keda = Keda::start(
                        world.kafka.clone(),
                        consumer.topic.clone(),
                        consumer.group.clone(),
                        partitions,
                        consumer.scaling.clone(),
                        Arc::new(deployment.clone()) as Arc<dyn Target>,
                    );
                    Function {
                        keda,
                        max: consumer.scaling.max,
                        polling: consumer.scaling.polling,
                        cooldown: consumer.scaling.cooldown,
                        part: Part::Keda {
                            deployment,
                            retry_schedule,
                        },
                    }
                }
            })
        };
        // The sources (their groups' offsets) before the CronJob's first run publishes.
        let notify = function("notify", "reminders")?;
        let recur = function("recur", "task-events")?;
        let controller = cronjob::Controller::start(cluster.clone(), cron)?;
        Ok(Self {
            cron: Some(controller),
            dispatcher_pods,
            notify,
            recur,
            every,
        })
    }

    /// What still runs of the functions and their consumers, as "part: n" (empty: all at
    /// zero): KEDA's targets (a source's consumers, a Deployment's pods), Knative's pods.
    pub fn running(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, f) in [("notify", &self.notify), ("recur", &self.recur)] {
            match &f.part {
                Part::Knative {
                    serving, dispatcher, ..
                } => {
                    let consumers = dispatcher.replicas();
                    if consumers > 0 {
                        out.push(format!("{name}'s source: {consumers} consumer(s)"));
                    }
                    let pods = serving.pods();
                    if pods > 0 {
                        out.push(format!("{name}: {pods} pod(s)"));
                    }
                }
                Part::Keda { deployment, .. } => {
                    let pods = (deployment.pods() + deployment.starting()).max(deployment.replicas());
                    if pods > 0 {
                        out.push(format!("{name}: {pods} pod(s)"));
                    }
                }
            }
        }
        out
    }

    /// The `kafka-source-dispatcher` pods still running (knative/; 0 for keda/).
    pub fn dispatcher_pods_running(&self) -> usize {
        self.dispatcher_pods.as_ref().map_or(0, |p| p.running())
    }

    pub fn notify_polling(&self) -> Duration {
        self.notify.polling
    }

    /// Holds every scaled part at its maximum (an operator raising the minimum before a
    /// known burst) and waits until all of it is up.
    pub async fn full_scale_out(&self) {
        for f in [&self.notify, &self.recur] {
            f.keda.hold.store(f.max, Ordering::SeqCst);
            if let Part::Knative { serving, .. } = &f.part {
                serving.prescale(usize::MAX).await;
            }
        }
        for f in [&self.notify, &self.recur] {
            if let Part::Keda { deployment, .. } = &f.part {
                while deployment.ready() < f.max {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        // Consumers join their group: let the rebalance settle, at least 8 s and until no
        // consumer's partitions moved for 5 s (a group rebalances in rounds as its members
        // join; a burst during one is held up by it, which is not what this scenario measures),
        // at most 40 s.
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(8)).await;
        while started.elapsed() < Duration::from_secs(40) {
            let last = [&self.notify, &self.recur]
                .iter()
                .filter_map(|f| match &f.part {
                    Part::Keda { deployment, .. } => deployment.last_rebalance(),
                    Part::Knative { .. } => None,
                })
                .max();
            if last.is_none_or(|t| chrono::Utc::now() - t >= chrono::Duration::seconds(5)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Gives back the holds of [`Stack::full_scale_out`]: the manifests' minimums again.
    pub fn release(&self) {
        for f in [&self.notify, &self.recur] {
            f.keda.hold.store(0, Ordering::SeqCst);
            if let Part::Knative { serving, .. } = &f.part {
                serving.release();
            }
        }
    }

    /// Pods deleted whose consumers have not left their group yet (keda/ only: see
    /// [`crate::deployment`] on pods deleted together).
    pub fn stopping(&self) -> usize {
        [&self.notify, &self.recur]
            .iter()
            .map(|f| match &f.part {
                Part::Keda { deployment, .. } => deployment.stopping(),
                Part::Knative { .. } => 0,
            })
            .sum()
    }

    /// How long after the last event everything may take to reach zero: KEDA's cooldown
    /// and one polling interval after it (the longest of the two functions'), and a pod's
    /// termination grace. Knative's own scale to zero (the grace period or the retention
    /// annotation after the stable window) and the dispatcher pods' come within it
    /// (`zero_bound_covers_knative` checks the manifests).
    pub fn zero_bound(&self) -> Duration {
        [&self.notify, &self.recur]
            .iter()
            .map(|f| f.cooldown + f.polling)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(10)
    }

    pub async fn stop(mut self) -> cronjob::Runs {
        let runs = match self.cron.take() {
            Some(c) => c.stop().await,
            None => cronjob::Runs::default(),
        };
        // The consumers first: what they have in flight goes to the functions' pods.
        if let Some(pods) = &self.dispatcher_pods {
            pods.stop().await;
        }
        for f in [self.notify, self.recur] {
            f.keda.stop().await;
            match f.part {
                Part::Knative { serving, .. } => serving.stop().await,
                Part::Keda { deployment, .. } => deployment.stop().await,
            }
        }
        runs
    }
}

/// keda/ consumers: `KAFKA_RETRY` retries after `KAFKA_BACKOFF_DELAY` × 2^n (crates/kafka).
fn consumer_retry_schedule(
    env: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Vec<Duration>> {
    let retry: u32 = match env.get("KAFKA_RETRY") {
        Some(r) => r.parse()?,
        None => return Ok(Vec::new()),
    };
    let delay = env
        .get("KAFKA_BACKOFF_DELAY")
        .map(|d| humantime::parse_duration(d))
        .transpose()?
        .unwrap_or(Duration::from_secs(1));
    Ok((1..=retry).map(|n| delay * 2u32.pow(n)).collect())
}

/// The PostgreSQL connections the installation may open at full scale: every pod's
/// `DATABASE_MAX_CONNECTIONS`, two overlapping CronJob runs included.
pub fn connections_needed(shape: Shape, m: &Manifests) -> anyhow::Result<usize> {
    let per_pod = |env: &std::collections::BTreeMap<String, String>| -> usize {
        env.get("DATABASE_MAX_CONNECTIONS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10)
    };
    let cron = m.cronjob("scheduler-cron")?;
    let mut n = 2 * per_pod(&cron.container.env);
    for name in ["notify", "recur"] {
        n += match shape {
            Shape::Knative => {
                let s = m.knative_service(name)?;
                s.max_scale * per_pod(&s.container.env)
            }
            Shape::Keda => {
                let c = m.consumer(name)?;
                c.scaling.max * per_pod(&c.container.env)
            }
        };
    }
    Ok(n)
}
