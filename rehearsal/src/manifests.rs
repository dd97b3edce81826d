//! The deployment as the manifests say it: every value the rehearsal runs with that a
//! cluster would take from `knative/` or `keda/` is read here, from the YAML files as
//! shipped, never written down a second time. What a cluster supplies itself (the database,
//! broker and relay addresses in the Secrets, Knative's `PORT`) is the only thing the
//! rehearsal puts in, and one thing it takes out: the Kafka security settings, see
//! [`REHEARSAL_KAFKA_PLAINTEXT`].

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One installation directory (`knative/` or `keda/`), every object of every YAML file.
pub struct Manifests {
    pub dir: PathBuf,
    objects: Vec<Value>,
}

/// The rehearsal's one departure from the manifests' environment: the broker it runs, Tansu,
/// speaks the Kafka protocol in plaintext only (no TLS, no SASL), so every container that the
/// manifests send to the brokers over TLS with SASL/SCRAM (`KAFKA_SECURITY_PROTOCOL` and the
/// rest in `todo-events-config`, the credentials from `todo-events-kafka-*`) talks plaintext
/// here, as the rehearsal's own clients do (`world.rs`, `KafkaConfig::plaintext`). The CA file
/// goes too: the rehearsal mounts no volumes, so it would name a file that is not there.
/// docs/DEPLOYMENT.md "What the rehearsal does not model" says what this leaves untested.
pub const REHEARSAL_KAFKA_PLAINTEXT: (&str, &str) = ("KAFKA_SECURITY_PROTOCOL", "plaintext");
/// The Kafka settings dropped with [`REHEARSAL_KAFKA_PLAINTEXT`].
pub const REHEARSAL_KAFKA_DROPPED: [&str; 4] = [
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
];

/// A container as a pod would run it.
#[derive(Clone, Debug)]
pub struct Container {
    /// The program's file name (`notify`), from `command: ["/usr/local/bin/notify"]`.
    pub binary: String,
    pub args: Vec<String>,
    /// `envFrom` (ConfigMaps, then Secrets), then `env`: later wins, as in Kubernetes.
    pub env: BTreeMap<String, String>,
    /// `resources.limits.cpu` in cores.
    pub cpu_limit: Option<f64>,
    /// `resources.requests.cpu` in cores.
    pub cpu_request: Option<f64>,
}

/// The CronJob controller's inputs.
#[derive(Clone, Debug)]
pub struct CronJob {
    pub schedule: String,
    pub concurrency_policy: String,
    pub starting_deadline: Option<Duration>,
    pub active_deadline: Option<Duration>,
    pub termination_grace: Duration,
    pub container: Container,
}

/// A Knative Service's revision template.
#[derive(Clone, Debug)]
pub struct KnativeService {
    pub name: String,
    pub container: Container,
    pub min_scale: usize,
    pub max_scale: usize,
    /// `autoscaling.knative.dev/initial-scale`: pods a new revision starts with.
    pub initial_scale: usize,
    /// `autoscaling.knative.dev/target` (soft concurrency per pod).
    pub target: f64,
    /// `containerConcurrency` (hard limit per pod; 0 = none).
    pub container_concurrency: usize,
    pub stable_window: Duration,
    pub retention: Duration,
    pub timeout: Duration,
}

/// A KafkaSource with its KEDA annotations and delivery spec.
#[derive(Clone, Debug)]
pub struct KafkaSource {
    pub name: String,
    /// `metadata.namespace`: where its OIDC service account is made.
    pub namespace: String,
    pub topic: String,
    pub group: String,
    pub ordered: bool,
    pub sink_service: String,
    /// `spec.sink.audience`: the OIDC audience the dispatcher requests its token for (none:
    /// it sends no token); the sink's `OIDC_AUDIENCE`.
    pub audience: Option<String>,
    pub retry: u32,
    pub backoff_exponential: bool,
    pub backoff_delay: Duration,
    pub dead_letter_topic: Option<String>,
    /// `spec.initialOffset` is `latest` (the controller commits the end of every partition
    /// for the group before any consumer starts) rather than `earliest`.
    pub initial_latest: bool,
    pub scaling: Scaling,
}

/// What KEDA is told, from a ScaledObject or a KafkaSource's annotations.
#[derive(Clone, Debug)]
pub struct Scaling {
    pub min: usize,
    pub max: usize,
    pub polling: Duration,
    pub cooldown: Duration,
    pub lag_threshold: i64,
    pub activation_lag_threshold: i64,
    /// `advanced.horizontalPodAutoscalerConfig.behavior.scaleDown` as (stabilization
    /// window, pods per period, period); the HPA defaults when absent.
    pub scale_down: (Duration, usize, Duration),
    /// `…behavior.scaleUp`: at most this many pods added per 15 s (the HPA default:
    /// max(100 %, 4 pods), written as `None`).
    pub scale_up_pods: Option<usize>,
    /// `allowIdleConsumers: false`: the lag counted is capped at partitions × lagThreshold.
    pub cap_at_partitions: bool,
    /// `offsetResetPolicy: earliest`: a partition without a committed offset counts all
    /// its records as lag (`latest`, KEDA's default: it counts 1).
    pub reset_earliest: bool,
    /// `scaleToZeroOnInvalidOffset: true`: a partition without a committed offset counts 0.
    pub zero_on_invalid: bool,
    /// `fallback`: after more than `failureThreshold` failed reads of the lag in a row, the
    /// HPA is fed a metric that holds `replicas` (only while scaled out).
    pub fallback: Option<(u32, usize)>,
    /// Replicas before KEDA first acts (a Deployment's `spec.replicas`, default 1; a
    /// KafkaSource's `spec.consumers`).
    pub initial: usize,
}

/// A keda/ consumer: its Deployment and ScaledObject.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub name: String,
    pub container: Container,
    pub topic: String,
    pub group: String,
    pub termination_grace: Duration,
    pub scaling: Scaling,
}

impl Manifests {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut objects = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            for doc in serde_norway::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc)
                    .with_context(|| format!("parsing {}", file.display()))?;
                if !value.is_null() {
                    objects.push(value);
                }
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            objects,
        })
    }

    /// Every object of every file, as read.
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    fn object(&self, kind: &str, name: &str) -> anyhow::Result<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .ok_or_else(|| anyhow!("no {kind} {name} in {}", self.dir.display()))
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// The data of a ConfigMap, or the `stringData` of a Secret (from the template:
    /// placeholders the rehearsal replaces with its own addresses).
    fn data(&self, kind: &str, name: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let field = if kind == "Secret" { "stringData" } else { "data" };
        let obj = self.object(kind, name)?;
        Ok(obj[field]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
            .unwrap_or_default())
    }

    /// The first container of a pod spec, with its environment resolved.
    fn container(&self, pod_spec: &Value) -> anyhow::Result<Container> {
        let c = &pod_spec["containers"][0];
        let command = c["command"][0]
            .as_str()
            .ok_or_else(|| anyhow!("container {} has no command", c["name"]))?;
        let binary = command.rsplit('/').next().unwrap_or(command).to_owned();
        let args = strings(&c["args"]);
        let mut env = BTreeMap::new();
        for from in c["envFrom"].as_array().into_iter().flatten() {
            if let Some(name) = from["configMapRef"]["name"].as_str() {
                env.extend(self.data("ConfigMap", name)?);
            }
            if let Some(name) = from["secretRef"]["name"].as_str() {
                env.extend(self.data("Secret", name)?);
            }
        }
        for var in c["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().unwrap_or_default().to_owned();
            let value = if let Some(v) = var.get("value") {
                scalar(v)
            } else if let Some(r) = var["valueFrom"].get("configMapKeyRef") {
                self.data("ConfigMap", r["name"].as_str().unwrap_or_default())?
                    .get(r["key"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(r) = var["valueFrom"].get("secretKeyRef") {
                self.data("Secret", r["name"].as_str().unwrap_or_default())?
                    .get(r["key"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default()
            } else {
                bail!("env {name}: no value or valueFrom this rehearsal can resolve")
            };
            env.insert(name, value);
        }
        // Volumes (the Kafka CA) are not mounted here: see REHEARSAL_KAFKA_PLAINTEXT.
        if env.contains_key(REHEARSAL_KAFKA_PLAINTEXT.0) {
            for var in REHEARSAL_KAFKA_DROPPED {
                env.remove(var);
            }
            env.insert(
                REHEARSAL_KAFKA_PLAINTEXT.0.to_owned(),
                REHEARSAL_KAFKA_PLAINTEXT.1.to_owned(),
            );
        }
        Ok(Container {
            binary,
            args,
            env,
            cpu_limit: cores(&c["resources"]["limits"], "limits.cpu")?,
            cpu_request: cores(&c["resources"]["requests"], "requests.cpu")?,
        })
    }

    pub fn cronjob(&self, name: &str) -> anyhow::Result<CronJob> {
        let spec = &self.object("CronJob", name)?["spec"];
        let job = &spec["jobTemplate"]["spec"];
        let pod = &job["template"]["spec"];
        Ok(CronJob {
            schedule: spec["schedule"].as_str().context("CronJob schedule")?.to_owned(),
            concurrency_policy: spec["concurrencyPolicy"].as_str().unwrap_or("Allow").to_owned(),
            starting_deadline: spec["startingDeadlineSeconds"].as_u64().map(Duration::from_secs),
            active_deadline: job["activeDeadlineSeconds"].as_u64().map(Duration::from_secs),
            termination_grace: Duration::from_secs(
                pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30),
            ),
            container: self.container(pod)?,
        })
    }

    pub fn knative_service(&self, name: &str) -> anyhow::Result<KnativeService> {
        let template = &self.object("Service", name)?["spec"]["template"];
        let ann = &template["metadata"]["annotations"];
        let spec = &template["spec"];
        let ann_num = |key: &str, default: f64| -> anyhow::Result<f64> {
            match ann.get(format!("autoscaling.knative.dev/{key}")) {
                Some(v) => scalar(v).parse().with_context(|| format!("annotation {key}")),
                None => Ok(default),
            }
        };
        let ann_dur = |key: &str, default: Duration| -> anyhow::Result<Duration> {
            match ann.get(format!("autoscaling.knative.dev/{key}")) {
                Some(v) => {
                    Ok(humantime::parse_duration(&scalar(v)).with_context(|| format!("annotation {key}"))?)
                }
                None => Ok(default),
            }
        };
        Ok(KnativeService {
            name: name.to_owned(),
            container: self.container(spec)?,
            // Defaults: knative/serving config/core/configmaps/autoscaler.yaml.
            min_scale: ann_num("min-scale", 0.0)? as usize,
            max_scale: ann_num("max-scale", 0.0)? as usize,
            initial_scale: ann_num("initial-scale", 1.0)? as usize,
            target: ann_num("target", 100.0)?,
            container_concurrency: spec["containerConcurrency"].as_u64().unwrap_or(0) as usize,
            stable_window: ann_dur("window", Duration::from_secs(60))?,
            retention: ann_dur("scale-to-zero-pod-retention-period", Duration::ZERO)?,
            timeout: Duration::from_secs(spec["timeoutSeconds"].as_u64().unwrap_or(300)),
        })
    }

    pub fn kafka_source(&self, name: &str) -> anyhow::Result<KafkaSource> {
        let source = self.object("KafkaSource", name)?;
        let spec = &source["spec"];
        let ann = &source["metadata"]["annotations"];
        let a = |key: &str| {
            ann.get(format!("autoscaling.eventing.knative.dev/{key}"))
                .map(scalar)
        };
        let num = |key: &str, default: i64| -> anyhow::Result<i64> {
            a(key).map_or(Ok(default), |v| {
                v.parse().with_context(|| format!("annotation {key}"))
            })
        };
        let delivery = &spec["delivery"];
        let dead_letter_topic = match delivery["deadLetterSink"]["ref"]["name"].as_str() {
            Some(sink) => Some(
                self.object("KafkaSink", sink)?["spec"]["topic"]
                    .as_str()
                    .context("KafkaSink topic")?
                    .to_owned(),
            ),
            None => None,
        };
        Ok(KafkaSource {
            name: name.to_owned(),
            namespace: source["metadata"]["namespace"]
                .as_str()
                .context("KafkaSource metadata.namespace")?
                .to_owned(),
            topic: strings(&spec["topics"])
                .into_iter()
                .next()
                .context("KafkaSource topics")?,
            group: spec["consumerGroup"]
                .as_str()
                .context("consumerGroup")?
                .to_owned(),
            // eventing-kafka-broker: `ordering` defaults to ordered (DeliveryOrdered).
            ordered: spec["ordering"].as_str().unwrap_or("ordered") == "ordered",
            sink_service: spec["sink"]["ref"]["name"]
                .as_str()
                .context("sink ref")?
                .to_owned(),
            audience: spec["sink"]["audience"].as_str().map(str::to_owned),
            retry: delivery["retry"].as_u64().unwrap_or(0) as u32,
            backoff_exponential: delivery["backoffPolicy"].as_str().unwrap_or("exponential") == "exponential",
            backoff_delay: iso8601_seconds(delivery["backoffDelay"].as_str().unwrap_or("PT0S"))?,
            dead_letter_topic,
            initial_latest: spec["initialOffset"].as_str().unwrap_or("latest") == "latest",
            // Defaults: eventing-kafka-broker control-plane/pkg/autoscaler/autoscaler_api.go.
            // The trigger it writes (control-plane/pkg/autoscaler/keda/resources.go) carries
            // only bootstrapServers, consumerGroup, topic, lagThreshold and
            // allowIdleConsumers ("true" once the consumer group has placements): KEDA's
            // defaults for the rest.
            scaling: Scaling {
                min: num("min-scale", 0)? as usize,
                max: num("max-scale", 50)? as usize,
                polling: Duration::from_secs(num("polling-interval", 10)? as u64),
                cooldown: Duration::from_secs(num("cooldown-period", 30)? as u64),
                lag_threshold: num("lag-threshold", 100)?,
                activation_lag_threshold: 0,
                scale_down: hpa_default_scale_down(),
                scale_up_pods: None,
                cap_at_partitions: false,
                reset_earliest: false,
                zero_on_invalid: false,
                fallback: None,
                initial: spec["consumers"].as_u64().unwrap_or(1) as usize,
            },
        })
    }

    pub fn consumer(&self, deployment: &str) -> anyhow::Result<Consumer> {
        let pod = &self.object("Deployment", deployment)?["spec"]["template"]["spec"];
        let container = self.container(pod)?;
        let so = self
            .of_kind("ScaledObject")
            .find(|o| o["spec"]["scaleTargetRef"]["name"] == deployment)
            .ok_or_else(|| anyhow!("no ScaledObject targets {deployment}"))?;
        let spec = &so["spec"];
        let trigger = &spec["triggers"][0]["metadata"];
        let num = |v: &Value, default: i64| -> i64 { scalar(v).parse().unwrap_or(default) };
        let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
        let down = &behavior["scaleDown"];
        // Pods policies only (the manifests use no Percent policy for scaling up).
        let scale_up_pods = behavior["scaleUp"]["policies"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .filter(|p| p["type"] == "Pods")
                    .filter_map(|p| p["value"].as_u64())
                    .max()
            })
            .map(|v| v as usize);
        let scale_down = if down.is_null() {
            hpa_default_scale_down()
        } else {
            (
                Duration::from_secs(down["stabilizationWindowSeconds"].as_u64().unwrap_or(300)),
                down["policies"][0]["value"].as_u64().unwrap_or(100) as usize,
                Duration::from_secs(down["policies"][0]["periodSeconds"].as_u64().unwrap_or(15)),
            )
        };
        Ok(Consumer {
            name: deployment.to_owned(),
            container,
            topic: trigger["topic"].as_str().context("trigger topic")?.to_owned(),
            group: trigger["consumerGroup"]
                .as_str()
                .context("trigger consumerGroup")?
                .to_owned(),
            termination_grace: Duration::from_secs(
                pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30),
            ),
            // Defaults: kedacore/keda apis/keda/v1alpha1/scaledobject_types.go.
            scaling: Scaling {
                min: spec["minReplicaCount"].as_u64().unwrap_or(0) as usize,
                max: spec["maxReplicaCount"].as_u64().unwrap_or(100) as usize,
                polling: Duration::from_secs(spec["pollingInterval"].as_u64().unwrap_or(30)),
                cooldown: Duration::from_secs(spec["cooldownPeriod"].as_u64().unwrap_or(300)),
                lag_threshold: num(&trigger["lagThreshold"], 10),
                activation_lag_threshold: num(&trigger["activationLagThreshold"], 0),
                scale_down,
                scale_up_pods,
                cap_at_partitions: scalar(&trigger["allowIdleConsumers"]) != "true",
                reset_earliest: scalar(&trigger["offsetResetPolicy"]) == "earliest",
                zero_on_invalid: scalar(&trigger["scaleToZeroOnInvalidOffset"]) == "true",
                fallback: spec["fallback"]["failureThreshold"].as_u64().map(|t| {
                    (
                        t as u32,
                        spec["fallback"]["replicas"].as_u64().unwrap_or(1) as usize,
                    )
                }),
                initial: self.object("Deployment", deployment)?["spec"]["replicas"]
                    .as_u64()
                    .unwrap_or(1) as usize,
            },
        })
    }
}

/// The HPA's default scale-down: 300 s stabilization, up to 100 % of the pods per 15 s
/// (kubernetes pkg/apis/autoscaling/v2/defaults.go); as (window, pods, period) with "all"
/// as a large pod count.
fn hpa_default_scale_down() -> (Duration, usize, Duration) {
    (Duration::from_secs(300), usize::MAX, Duration::from_secs(15))
}

/// Partitions per topic as docs/DEPLOYMENT.md creates them (`--partitions N` in step 2).
pub fn partitions(root: &Path) -> anyhow::Result<i32> {
    let doc = std::fs::read_to_string(root.join("docs/DEPLOYMENT.md"))?;
    // The first `--partitions` followed by a number (the doctor's flag is mentioned bare).
    doc.split("--partitions")
        .skip(1)
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .context("docs/DEPLOYMENT.md creates no topic with --partitions N")
}

/// A quantity of CPU (`500m`, `"1"`, `0.5`) in cores, from `resources.limits` or `.requests`.
fn cores(resources: &Value, what: &str) -> anyhow::Result<Option<f64>> {
    let Some(cpu) = resources.get("cpu").map(scalar) else {
        return Ok(None);
    };
    Ok(Some(match cpu.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().context(what.to_owned())? / 1000.0,
        None => cpu.parse::<f64>().context(what.to_owned())?,
    }))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(scalar).collect()
}

/// `PT1S`, `PT0.5S`, `PT2M`: the ISO 8601 durations of a delivery spec (seconds and minutes
/// are all the manifests use; anything else is refused, not guessed).
pub fn iso8601_seconds(s: &str) -> anyhow::Result<Duration> {
    let body = s
        .strip_prefix("PT")
        .ok_or_else(|| anyhow!("{s:?}: expected PT…S or PT…M"))?;
    let (num, unit) = body.split_at(body.len().saturating_sub(1));
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?}: not a number of seconds or minutes"))?;
    match unit {
        "S" => Ok(Duration::from_secs_f64(n)),
        "M" => Ok(Duration::from_secs_f64(n * 60.0)),
        _ => bail!("{s:?}: expected PT…S or PT…M"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn reads_both_installations() {
        let knative = Manifests::load(&root().join("knative")).unwrap();
        let cron = knative.cronjob("scheduler-cron").unwrap();
        assert_eq!(cron.container.binary, "scheduler-cron");
        assert!(cron.container.env.contains_key("DATABASE_URL"));
        let notify = knative.knative_service("notify").unwrap();
        assert_eq!(notify.container.binary, "notify");
        assert!(notify.max_scale >= 1 && notify.container_concurrency >= 1);
        let source = knative.kafka_source("reminders").unwrap();
        assert_eq!(source.sink_service, "notify");
        assert!(source.dead_letter_topic.is_some());
        // The token the dispatcher presents is for the audience notify expects.
        assert!(source.audience.is_some());
        assert_eq!(
            source.audience.as_ref(),
            notify.container.env.get("OIDC_AUDIENCE")
        );
        let keda = Manifests::load(&root().join("keda")).unwrap();
        let consumer = keda.consumer("notify").unwrap();
        assert_eq!(consumer.container.args, ["consume"]);
        // Tansu speaks plaintext only: the manifests' TLS and SASL settings are taken out.
        for c in [&cron.container, &consumer.container] {
            assert_eq!(c.env["KAFKA_SECURITY_PROTOCOL"], "plaintext");
            assert!(REHEARSAL_KAFKA_DROPPED.iter().all(|v| !c.env.contains_key(*v)));
        }
        assert!(consumer.scaling.max >= 1);
        assert!(partitions(&root()).unwrap() >= 1);
        // Every setting of both installations is one the stand-ins model.
        for m in [&knative, &keda] {
            assert_eq!(crate::modelled::unmodelled(m.objects()), Vec::<String>::new());
        }
    }

    #[test]
    fn iso_durations() {
        assert_eq!(iso8601_seconds("PT1S").unwrap(), Duration::from_secs(1));
        assert_eq!(iso8601_seconds("PT0.5S").unwrap(), Duration::from_millis(500));
        assert_eq!(iso8601_seconds("PT2M").unwrap(), Duration::from_secs(120));
        assert!(iso8601_seconds("1s").is_err());
        assert!(iso8601_seconds("PT1H").is_err());
    }
}
