//! What the stand-ins model, written down, so that a manifest setting they do not model
//! stops the rehearsal before it starts instead of being ignored while it passes. A new
//! annotation on a Knative revision, a KafkaSource's `delivery.timeout`, a ScaledObject's
//! `scalingModifiers`: each changes what a cluster does, and a rehearsal that silently ran
//! without it would measure something else than what is deployed. Adding a key here means
//! modelling it in the stand-in that plays its controller, or saying why it changes nothing
//! the rehearsal measures.

use serde_json::Value;

/// Keys of a Knative revision template's `spec` the rehearsal reads, or that change nothing
/// it measures (identity, security, placement).
const REVISION_SPEC: &[&str] = &[
    "containers",
    "containerConcurrency",
    "timeoutSeconds",
    // Identity and security: the OIDC stand-in plays the service account's token.
    "serviceAccountName",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "securityContext",
    "imagePullSecrets",
];

/// `autoscaling.knative.dev/*` annotations of a revision the Serving stand-in models
/// (`serving.rs`, `manifests.rs` `knative_service`).
const REVISION_AUTOSCALING: &[&str] = &[
    "min-scale",
    "max-scale",
    "initial-scale",
    "target",
    "window",
    "scale-to-zero-pod-retention-period",
];

/// `autoscaling.eventing.knative.dev/*` annotations of a KafkaSource: those the Kafka
/// controller passes on to the ScaledObject it generates (the KEDA stand-in reads them), the
/// class, and `activation-lag-threshold`, which the controller copies to the ConsumerGroup
/// where nothing reads it (so ignoring it is what a cluster does too).
const SOURCE_AUTOSCALING: &[&str] = &[
    "class",
    "min-scale",
    "max-scale",
    "lag-threshold",
    "polling-interval",
    "cooldown-period",
    "activation-lag-threshold",
];

const SOURCE_SPEC: &[&str] = &[
    "bootstrapServers",
    // Kafka security: the rehearsal's one stated departure (manifests.rs,
    // REHEARSAL_KAFKA_PLAINTEXT).
    "net",
    "topics",
    "consumerGroup",
    "initialOffset",
    "ordering",
    "sink",
    "delivery",
    "consumers",
];

const DELIVERY: &[&str] = &["retry", "backoffPolicy", "backoffDelay", "deadLetterSink"];

const SCALED_OBJECT_SPEC: &[&str] = &[
    "scaleTargetRef",
    "minReplicaCount",
    "maxReplicaCount",
    "pollingInterval",
    "cooldownPeriod",
    "fallback",
    "advanced",
    "triggers",
];

const TRIGGER: &[&str] = &["type", "name", "metricType", "authenticationRef", "metadata"];

/// The Kafka scaler's metadata the KEDA stand-in models (`keda.rs`); `sasl` and `tls` are
/// the Kafka security departure.
const TRIGGER_METADATA: &[&str] = &[
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "sasl",
    "tls",
];

const CRONJOB_SPEC: &[&str] = &[
    "schedule",
    "timeZone",
    "concurrencyPolicy",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "jobTemplate",
];

/// Every setting of `objects` (one installation's manifests) that no stand-in models, as
/// "kind/name: what".
pub fn unmodelled(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        let name = format!("{kind}/{}", o["metadata"]["name"].as_str().unwrap_or_default());
        let mut not = |what: String| out.push(format!("{name}: {what}"));
        for key in knative_annotations(&o["metadata"]["annotations"]) {
            let allowed = kind == "KafkaSource"
                && key
                    .strip_prefix("autoscaling.eventing.knative.dev/")
                    .is_some_and(|k| SOURCE_AUTOSCALING.contains(&k));
            if !allowed {
                not(format!("annotation {key}"));
            }
        }
        match kind {
            "Service" => {
                let template = &o["spec"]["template"];
                for key in knative_annotations(&template["metadata"]["annotations"]) {
                    let allowed = key
                        .strip_prefix("autoscaling.knative.dev/")
                        .is_some_and(|k| REVISION_AUTOSCALING.contains(&k));
                    if !allowed {
                        not(format!("revision annotation {key}"));
                    }
                }
                for key in extra_keys(&template["spec"], REVISION_SPEC) {
                    not(format!("revision spec.{key}"));
                }
            }
            "KafkaSource" => {
                for key in extra_keys(&o["spec"], SOURCE_SPEC) {
                    not(format!("spec.{key}"));
                }
                for key in extra_keys(&o["spec"]["delivery"], DELIVERY) {
                    not(format!("spec.delivery.{key}"));
                }
                let class = &o["metadata"]["annotations"]["autoscaling.eventing.knative.dev/class"];
                if !class.is_null() && class != "keda.autoscaling.knative.dev" {
                    not(format!("autoscaling class {class} (only KEDA's is modelled)"));
                }
            }
            "ScaledObject" => {
                let spec = &o["spec"];
                for key in extra_keys(spec, SCALED_OBJECT_SPEC) {
                    not(format!("spec.{key}"));
                }
                for key in extra_keys(&spec["advanced"], &["horizontalPodAutoscalerConfig"]) {
                    not(format!("spec.advanced.{key}"));
                }
                for key in extra_keys(&spec["advanced"]["horizontalPodAutoscalerConfig"], &["behavior"]) {
                    not(format!("spec.advanced.horizontalPodAutoscalerConfig.{key}"));
                }
                let triggers = spec["triggers"].as_array().map_or(0, Vec::len);
                if triggers != 1 {
                    not(format!("{triggers} triggers (one Kafka trigger is modelled)"));
                }
                for t in spec["triggers"].as_array().into_iter().flatten() {
                    if t["type"] != "kafka" {
                        not(format!("trigger type {}", t["type"]));
                    }
                    if !t["metricType"].is_null() && t["metricType"] != "AverageValue" {
                        not(format!("trigger metricType {}", t["metricType"]));
                    }
                    for key in extra_keys(t, TRIGGER) {
                        not(format!("trigger {key}"));
                    }
                    for key in extra_keys(&t["metadata"], TRIGGER_METADATA) {
                        not(format!("trigger metadata.{key}"));
                    }
                }
                for key in o["metadata"]["annotations"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .filter(|k| k.starts_with("autoscaling.keda.sh/"))
                {
                    not(format!("annotation {key}"));
                }
            }
            "CronJob" => {
                for key in extra_keys(&o["spec"], CRONJOB_SPEC) {
                    not(format!("spec.{key}"));
                }
                // The stand-in evaluates the schedule in UTC (croner).
                let zone = o["spec"]["timeZone"].as_str().unwrap_or("Etc/UTC");
                if !matches!(zone, "Etc/UTC" | "UTC") {
                    not(format!(
                        "spec.timeZone {zone} (the stand-in evaluates schedules in UTC)"
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Annotations in a `*.knative.dev/` domain (Knative reads those; `prometheus.io/*` and the
/// like change nothing the rehearsal measures).
fn knative_annotations(annotations: &Value) -> Vec<String> {
    annotations
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| {
            k.split('/')
                .next()
                .is_some_and(|domain| domain.ends_with("knative.dev"))
        })
        .cloned()
        .collect()
}

fn extra_keys(object: &Value, known: &[&str]) -> Vec<String> {
    object
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::unmodelled;
    use serde_json::json;

    #[test]
    fn settings_no_stand_in_models_are_named() {
        let objects = vec![
            json!({"kind": "Service", "metadata": {"name": "notify"}, "spec": {"template": {
                "metadata": {"annotations": {
                    "autoscaling.knative.dev/target": "16",
                    "autoscaling.knative.dev/metric": "rps",
                    "prometheus.io/scrape": "true"}},
                "spec": {"containers": [], "idleTimeoutSeconds": 5}}}}),
            json!({"kind": "KafkaSource", "metadata": {"name": "reminders", "annotations": {
                    "autoscaling.eventing.knative.dev/lag-threshold": "100",
                    "kafka.eventing.knative.dev/delivery.order": "ordered"}},
                "spec": {"topics": ["reminders"], "delivery": {"retry": 5, "timeout": "PT10S"}}}),
            json!({"kind": "ScaledObject", "metadata": {"name": "notify"}, "spec": {
                "advanced": {"scalingModifiers": {}},
                "triggers": [{"type": "kafka", "metadata": {"topic": "t", "excludePersistentLag": "true"}}]}}),
        ];
        let found = unmodelled(&objects);
        assert_eq!(
            found,
            [
                "Service/notify: revision annotation autoscaling.knative.dev/metric",
                "Service/notify: revision spec.idleTimeoutSeconds",
                "KafkaSource/reminders: annotation kafka.eventing.knative.dev/delivery.order",
                "KafkaSource/reminders: spec.delivery.timeout",
                "ScaledObject/notify: spec.advanced.scalingModifiers",
                "ScaledObject/notify: trigger metadata.excludePersistentLag",
            ]
        );
    }
}
