//! The cluster's own settings, which no file of ours carries: the stand-ins play them as
//! docs/DEPLOYMENT.md "What to install first" leaves a cluster (Knative's, the Kafka
//! extension's and Kafka's defaults, with `controller-autoscaler-keda` and
//! `authentication-oidc` enabled). `--cluster-config FILE` gives a real cluster's settings
//! instead (what `kubectl get -o json` prints for the objects below, one object or a List, as
//! `todo-events doctor --cluster-json` reads them); every setting there that differs from what
//! the stand-ins play stops the rehearsal before it starts, so that a rehearsal never passes
//! for a cluster it did not model.
//!
//! - `knative-serving/config-autoscaler`: the KPA's settings `serving.rs` uses;
//! - `knative-eventing/config-kafka-features`: `controller-autoscaler-keda` (without it a
//!   source is not scaled at all);
//! - `knative-eventing/config-features`: `authentication-oidc` (without it the dispatcher
//!   sends no token and every event is refused);
//! - `knative-eventing/config-kafka-source-data-plane`: `max.poll.records` of the consumer
//!   properties (the in-flight bound, `dispatcher.rs`);
//! - the `kafka-controller` Deployment's `POD_CAPACITY`, `DISPATCHERS_MIN_REPLICAS`,
//!   `AUTOSCALER_REFRESH_PERIOD` (`placement.rs`).

use anyhow::Context;
use serde_json::Value;

/// (ConfigMap, key, the value the stand-ins play). An absent key is the default, played.
const CONFIG_MAPS: &[(&str, &str, &str)] = &[
    // knative/serving config/core/configmaps/autoscaler.yaml defaults.
    (
        "config-autoscaler",
        "container-concurrency-target-percentage",
        "70",
    ),
    ("config-autoscaler", "stable-window", "60s"),
    ("config-autoscaler", "panic-window-percentage", "10.0"),
    ("config-autoscaler", "panic-threshold-percentage", "200.0"),
    ("config-autoscaler", "max-scale-down-rate", "2.0"),
    ("config-autoscaler", "scale-to-zero-grace-period", "30s"),
    ("config-autoscaler", "enable-scale-to-zero", "true"),
    ("config-autoscaler", "initial-scale", "1"),
    ("config-autoscaler", "allow-zero-initial-scale", "false"),
    (
        "config-autoscaler",
        "pod-autoscaler-class",
        "kpa.autoscaling.knative.dev",
    ),
    // What "What to install first" switches on.
    ("config-kafka-features", "controller-autoscaler-keda", "enabled"),
    ("config-features", "authentication-oidc", "enabled"),
];

/// (kafka-controller env var, the value the stand-ins play).
const CONTROLLER_ENV: &[(&str, &str)] = &[
    ("POD_CAPACITY", "20"),
    ("DISPATCHERS_MIN_REPLICAS", "0"),
    ("AUTOSCALER_REFRESH_PERIOD", "100"),
];

/// Keys of config-autoscaler the stand-in reads nothing of but that change nothing it
/// measures (`_example` is the ConfigMap's documentation).
const IGNORED: &[&str] = &["_example"];

/// Settings of `file` that differ from what the stand-ins play, as "where: key = value
/// (played: …)".
pub fn differences(file: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let json: Value = serde_json::from_str(&text).with_context(|| format!("{file}: not JSON"))?;
    Ok(check(&objects(json)))
}

fn objects(json: Value) -> Vec<Value> {
    match json["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![json],
    }
}

fn check(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        match o["kind"].as_str() {
            Some("ConfigMap") => {
                let data = o["data"].as_object().cloned().unwrap_or_default();
                if name == "config-kafka-source-data-plane" {
                    let props = data
                        .iter()
                        .find(|(k, _)| k.contains("consumer"))
                        .and_then(|(_, v)| v.as_str())
                        .unwrap_or_default();
                    let polled = props.lines().find_map(|l| {
                        l.trim()
                            .strip_prefix("max.poll.records")
                            .map(|v| v.trim_start_matches([' ', '=', ':']).trim())
                    });
                    if let Some(v) = polled.filter(|v| *v != "50") {
                        out.push(format!("{name}: max.poll.records = {v} (played: 50)"));
                    }
                    continue;
                }
                let played: Vec<_> = CONFIG_MAPS.iter().filter(|(cm, _, _)| *cm == name).collect();
                if played.is_empty() {
                    continue;
                }
                for (key, value) in &data {
                    let value = value.as_str().unwrap_or_default();
                    match played.iter().find(|(_, k, _)| k == key) {
                        Some((_, _, want)) if normalized(value) == normalized(want) => {}
                        Some((_, _, want)) => out.push(format!("{name}: {key} = {value} (played: {want})")),
                        None if IGNORED.contains(&key.as_str()) => {}
                        None => out.push(format!("{name}: {key} = {value} (not modelled)")),
                    }
                }
                // The switched-on flags must be there: their defaults are "disabled".
                for (_, key, want) in played.iter().filter(|(_, _, w)| *w == "enabled") {
                    if !data.contains_key(*key) {
                        out.push(format!("{name}: {key} unset, so disabled (played: {want})"));
                    }
                }
            }
            Some("Deployment") if name == "kafka-controller" => {
                let env = o["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c["env"].as_array().into_iter().flatten());
                for var in env {
                    let key = var["name"].as_str().unwrap_or_default();
                    let value = var["value"].as_str().unwrap_or_default();
                    if let Some((_, want)) = CONTROLLER_ENV.iter().find(|(k, _)| *k == key) {
                        if value != *want {
                            out.push(format!("{name}: {key} = {value} (played: {want})"));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `60s` and `1m`, `200` and `200.0`, alike.
fn normalized(v: &str) -> String {
    if let Ok(d) = humantime::parse_duration(v) {
        return format!("{}s", d.as_secs_f64());
    }
    match v.parse::<f64>() {
        Ok(n) => n.to_string(),
        Err(_) => v.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_the_stand_ins_do_not_play_is_named() {
        let list = json!({"kind": "List", "items": [
            {"kind": "ConfigMap", "metadata": {"name": "config-autoscaler"},
             "data": {"stable-window": "1m", "panic-threshold-percentage": "200",
                      "scale-to-zero-grace-period": "10s", "_example": "…", "activation-scale": "2"}},
            {"kind": "ConfigMap", "metadata": {"name": "config-kafka-features"}, "data": {}},
            {"kind": "ConfigMap", "metadata": {"name": "config-features"},
             "data": {"authentication-oidc": "enabled"}},
            {"kind": "ConfigMap", "metadata": {"name": "config-kafka-source-data-plane"},
             "data": {"config-kafka-source-consumer.properties": "auto.offset.reset=earliest\nmax.poll.records=200\n"}},
            {"kind": "Deployment", "metadata": {"name": "kafka-controller"}, "spec": {"template": {"spec": {"containers": [
                {"env": [{"name": "POD_CAPACITY", "value": "20"}, {"name": "DISPATCHERS_MIN_REPLICAS", "value": "1"}]}]}}}},
        ]});
        assert_eq!(
            check(&objects(list)),
            [
                "config-autoscaler: activation-scale = 2 (not modelled)",
                "config-autoscaler: scale-to-zero-grace-period = 10s (played: 30s)",
                "config-kafka-features: controller-autoscaler-keda unset, so disabled (played: enabled)",
                "config-kafka-source-data-plane: max.poll.records = 200 (played: 50)",
                "kafka-controller: DISPATCHERS_MIN_REPLICAS = 1 (played: 0)",
            ]
        );
    }
}
