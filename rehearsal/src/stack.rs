//! One installation brought up as its manifests describe it: the CronJob, and either the
//! knative/ shape (Knative Services behind KafkaSources, both scaled from zero) or the keda/
//! shape (consumer Deployments scaled by ScaledObjects). Every value comes from the
//! manifests ([`crate::manifests`]); the stand-ins play the controllers.

use crate::cronjob;
use crate::deployment::Deployment;
use crate::dispatcher::{self, Dispatcher};
use crate::keda::{Keda, Target};
use crate::manifests::Manifests;
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
    ) -> anyhow::Result<Self> {
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
        let controller = cronjob::Controller::start(cluster.clone(), cron)?;
        let function = |name: &str, source: &str| -> anyhow::Result<Function> {
            Ok(match shape {
                Shape::Knative => {
                    let svc = m.knative_service(name)?;
                    let source = m.kafka_source(source)?;
                    world.consumed_so_far(&source.group, &source.topic)?;
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
                        part: Part::Knative {
                            serving,
                            dispatcher,
                            retry_schedule,
                        },
                    }
                }
                Shape::Keda => {
                    let consumer = m.consumer(name)?;
                    world.consumed_so_far(&consumer.group, &consumer.topic)?;
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
                        part: Part::Keda {
                            deployment,
                            retry_schedule,
                        },
                    }
                }
            })
        };
        Ok(Self {
            cron: Some(controller),
            notify: function("notify", "reminders")?,
            recur: function("recur", "task-events")?,
            every,
        })
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

    pub async fn stop(mut self) -> cronjob::Runs {
        let runs = match self.cron.take() {
            Some(c) => c.stop().await,
            None => cronjob::Runs::default(),
        };
        for f in [self.notify, self.recur] {
            f.keda.stop().await;
            match f.part {
                Part::Knative {
                    serving, dispatcher, ..
                } => {
                    dispatcher.stop().await;
                    serving.stop().await;
                }
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
