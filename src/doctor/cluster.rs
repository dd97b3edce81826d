//! The cluster: the custom resources the manifests use and, for `knative/`, Knative
//! Eventing's feature flags.
//!
//! Why: without a CRD, `kubectl apply -k` stops part-way ("no matches for kind"); with an old
//! release the CRD is there but does not serve the version the manifests are written in (a
//! KafkaSource is `sources.knative.dev/v1beta1`; releases before it served only `v1alpha1`),
//! and the apply fails the same way. The two flags are off by default and are set by patching
//! Knative's own ConfigMaps, which the manifests cannot do without replacing the cluster's
//! whole feature configuration: without `controller-autoscaler-keda` the KafkaSources'
//! `autoscaling.eventing.knative.dev/*` annotations do nothing and each source runs
//! `spec.consumers` (1) consumer for ever; without `authentication-oidc` the sources send no
//! token for the sink's audience, and the functions answer every delivery `401`
//! (docs/DEPLOYMENT.md, "What to install first").
//!
//! Read: `kubectl get … -o json`, or the same output from a file (`--cluster-json`).
//! Decide: [`decide`], over the parsed [`ClusterState`].

use super::{DoctorArgs, Finding};
use anyhow::Context;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// Which deployment is checked: its directory of manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// knative/: Knative Services, KafkaSources with KEDA autoscaling, KafkaSinks.
    Knative,
    /// keda/: consumer Deployments scaled by KEDA ScaledObjects.
    Keda,
}

impl Shape {
    /// The directory of its manifests.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Knative => "knative",
            Self::Keda => "keda",
        }
    }
}

/// A custom resource the manifests use, and how to install the CRD that serves it.
#[derive(Debug)]
pub struct RequiredCrd {
    /// The CRD's name, `<plural>.<group>`.
    pub name: &'static str,
    pub kind: &'static str,
    /// The version the manifests are written in.
    pub version: &'static str,
    /// Needed by knative/ only (KEDA's are needed by both: knative/'s KafkaSources scale
    /// through ScaledObjects the Kafka controller generates).
    pub knative_only: bool,
    /// The command that installs it (the release the manifests are validated against:
    /// tests/system/manifests/schemas/README.md).
    pub install: &'static str,
}

impl RequiredCrd {
    pub fn group(&self) -> &'static str {
        self.name.split_once('.').map_or("", |(_, group)| group)
    }

    fn needed_by(&self, shape: Shape) -> bool {
        shape == Shape::Knative || !self.knative_only
    }
}

const KEDA: &str = "kubectl apply --server-side -f https://github.com/kedacore/keda/releases/download/v2.20.2/keda-2.20.2.yaml";
const SERVING: &str = "kubectl apply -f https://github.com/knative/serving/releases/download/knative-v1.23.0/serving-crds.yaml \
     -f https://github.com/knative/serving/releases/download/knative-v1.23.0/serving-core.yaml";
const KAFKA_SOURCE: &str = "kubectl apply \
     -f https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.23.0/eventing-kafka-controller.yaml \
     -f https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.23.0/eventing-kafka-source.yaml";
const KAFKA_SINK: &str = "kubectl apply \
     -f https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.23.0/eventing-kafka-controller.yaml \
     -f https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.23.0/eventing-kafka-sink.yaml";
const EVENTING: &str = "kubectl apply -f https://github.com/knative/eventing/releases/download/knative-v1.23.0/eventing-core.yaml";

/// Every custom resource kind the manifests use (a test checks this list against every
/// `apiVersion`/`kind` in knative/ and keda/).
pub const REQUIRED_CRDS: &[RequiredCrd] = &[
    RequiredCrd {
        name: "scaledobjects.keda.sh",
        kind: "ScaledObject",
        version: "v1alpha1",
        knative_only: false,
        install: KEDA,
    },
    RequiredCrd {
        name: "triggerauthentications.keda.sh",
        kind: "TriggerAuthentication",
        version: "v1alpha1",
        knative_only: false,
        install: KEDA,
    },
    RequiredCrd {
        name: "services.serving.knative.dev",
        kind: "Service",
        version: "v1",
        knative_only: true,
        install: SERVING,
    },
    RequiredCrd {
        name: "kafkasources.sources.knative.dev",
        kind: "KafkaSource",
        version: "v1beta1",
        knative_only: true,
        install: KAFKA_SOURCE,
    },
    RequiredCrd {
        name: "kafkasinks.eventing.knative.dev",
        kind: "KafkaSink",
        version: "v1alpha1",
        knative_only: true,
        install: KAFKA_SINK,
    },
];

/// The namespace of Knative Eventing's ConfigMaps.
const EVENTING_NAMESPACE: &str = "knative-eventing";

/// A feature flag of Knative Eventing that knative/ needs `enabled`.
#[derive(Debug)]
pub struct FeatureFlag {
    pub config_map: &'static str,
    pub key: &'static str,
    /// What goes wrong without it.
    pub why: &'static str,
    /// The patch that sets it.
    pub patch: &'static str,
    /// What installs the ConfigMap itself.
    pub install: &'static str,
}

pub const FEATURE_FLAGS: &[FeatureFlag] = &[
    FeatureFlag {
        config_map: "config-kafka-features",
        key: "controller-autoscaler-keda",
        why: "without it the KafkaSources' autoscaling annotations do nothing and each source runs \
              at spec.consumers (1) for ever",
        patch: r#"kubectl -n knative-eventing patch configmap config-kafka-features --type merge -p '{"data":{"controller-autoscaler-keda":"enabled"}}'"#,
        install: KAFKA_SOURCE,
    },
    FeatureFlag {
        config_map: "config-features",
        key: "authentication-oidc",
        why: "without it (Knative's sender identity) the KafkaSources send no OIDC token and \
              the functions answer every delivery 401",
        patch: r#"kubectl patch configmap/config-features -n knative-eventing --type merge -p '{"data":{"authentication-oidc":"enabled"}}'"#,
        install: EVENTING,
    },
];

/// What was read from the cluster: the CRDs with the versions each serves, and the
/// ConfigMaps' data by `namespace/name`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    pub crds: BTreeMap<String, BTreeSet<String>>,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Deserialize)]
struct Crd {
    metadata: Metadata,
    spec: CrdSpec,
}

#[derive(Deserialize)]
struct CrdSpec {
    versions: Vec<CrdVersion>,
}

#[derive(Deserialize)]
struct CrdVersion {
    name: String,
    served: bool,
}

#[derive(Deserialize)]
struct ConfigMap {
    metadata: Metadata,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

impl ClusterState {
    /// Adds the objects in `json`: what `kubectl get … -o json` prints, one object or a
    /// `List` of them; nothing at all (kubectl's `--ignore-not-found` with nothing found)
    /// adds nothing. Kinds other than CRDs and ConfigMaps are ignored.
    pub fn absorb(&mut self, json: &str) -> anyhow::Result<()> {
        if json.trim().is_empty() {
            return Ok(());
        }
        let value: serde_json::Value = serde_json::from_str(json).context("not JSON")?;
        let objects = match value["kind"].as_str() {
            Some("List") => value["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![value],
        };
        objects
            .into_iter()
            .try_for_each(|object| self.absorb_object(object))
    }

    fn absorb_object(&mut self, object: serde_json::Value) -> anyhow::Result<()> {
        match object["kind"].as_str() {
            Some("CustomResourceDefinition") => {
                let crd: Crd = serde_json::from_value(object).context("a CustomResourceDefinition")?;
                let served = crd.spec.versions.into_iter().filter(|v| v.served).map(|v| v.name);
                self.crds.entry(crd.metadata.name).or_default().extend(served);
            }
            Some("ConfigMap") => {
                let cm: ConfigMap = serde_json::from_value(object).context("a ConfigMap")?;
                let key = format!("{}/{}", cm.metadata.namespace, cm.metadata.name);
                self.config_maps.insert(key, cm.data);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The kubectl invocations that print what [`decide`] needs for `shape`.
pub fn kubectl_queries(shape: Shape) -> Vec<Vec<String>> {
    let mut crds: Vec<String> = ["get", "crd"].map(String::from).into();
    crds.extend(
        REQUIRED_CRDS
            .iter()
            .filter(|c| c.needed_by(shape))
            .map(|c| c.name.to_owned()),
    );
    crds.extend(["-o", "json", "--ignore-not-found"].map(String::from));
    let mut queries = vec![crds];
    if shape == Shape::Knative {
        let mut maps: Vec<String> = ["-n", EVENTING_NAMESPACE, "get", "configmap"]
            .map(String::from)
            .into();
        maps.extend(FEATURE_FLAGS.iter().map(|f| f.config_map.to_owned()));
        maps.extend(["-o", "json", "--ignore-not-found"].map(String::from));
        queries.push(maps);
    }
    queries
}

/// The findings for `shape` from what the cluster holds.
pub fn decide(shape: Shape, state: &ClusterState) -> Vec<Finding> {
    let mut findings: Vec<Finding> = REQUIRED_CRDS
        .iter()
        .filter(|crd| crd.needed_by(shape))
        .map(|crd| crd_finding(crd, state.crds.get(crd.name)))
        .collect();
    if shape == Shape::Knative {
        findings.extend(FEATURE_FLAGS.iter().map(|flag| {
            let key = format!("{EVENTING_NAMESPACE}/{}", flag.config_map);
            flag_finding(flag, state.config_maps.get(&key))
        }));
    }
    findings
}

fn crd_finding(crd: &RequiredCrd, served: Option<&BTreeSet<String>>) -> Finding {
    let what = format!("CRD {} ({} {}/{})", crd.name, crd.kind, crd.group(), crd.version);
    match served {
        None => Finding::missing(what, "not installed", crd.install),
        Some(versions) if !versions.contains(crd.version) => {
            let serves = versions.iter().cloned().collect::<Vec<_>>().join(", ");
            let serves = if serves.is_empty() { "nothing" } else { &serves };
            Finding::missing(
                what,
                format!(
                    "it serves {serves}, not {}, which the manifests use (an older release)",
                    crd.version
                ),
                crd.install,
            )
        }
        Some(_) => Finding::ok(what),
    }
}

fn flag_finding(flag: &FeatureFlag, data: Option<&BTreeMap<String, String>>) -> Finding {
    let what = format!("{EVENTING_NAMESPACE}/{} {}=enabled", flag.config_map, flag.key);
    let value = data.map(|d| d.get(flag.key).map_or("", |v| v.trim()));
    match value {
        Some(v) if v.eq_ignore_ascii_case("enabled") => Finding::ok(what),
        Some(v) => {
            let is = if v.is_empty() { "not set" } else { v };
            Finding::missing(what, format!("it is {is}: {}", flag.why), flag.patch)
        }
        None => Finding::missing(
            what,
            format!(
                "the ConfigMap does not exist (is Knative Eventing installed?): {}",
                flag.why
            ),
            format!("{}, then {}", flag.install, flag.patch),
        ),
    }
}

/// Reads the cluster (kubectl or `--cluster-json`) and decides; a cluster that cannot be
/// read is one finding.
pub fn check(args: &DoctorArgs) -> Vec<Finding> {
    if args.skip_cluster {
        return vec![Finding::skipped(
            "cluster",
            "--skip-cluster: the CRDs and Knative's feature flags were not checked",
        )];
    }
    match read(args) {
        Ok(state) => decide(args.shape, &state),
        Err(e) => vec![Finding::missing(
            "cluster objects",
            super::one_line(&e),
            format!(
                "point kubectl at the cluster (KUBECONFIG, --kubectl PATH), or pass --cluster-json FILE \
                 with the output of `kubectl {}`, or --skip-cluster",
                kubectl_queries(args.shape)[0].join(" ")
            ),
        )],
    }
}

fn read(args: &DoctorArgs) -> anyhow::Result<ClusterState> {
    let mut state = ClusterState::default();
    for file in &args.cluster_json {
        let json = if file == "-" {
            let mut json = String::new();
            std::io::stdin()
                .read_to_string(&mut json)
                .context("reading --cluster-json - (standard input)")?;
            json
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading --cluster-json {file}"))?
        };
        state
            .absorb(&json)
            .with_context(|| format!("--cluster-json {file}"))?;
    }
    if args.cluster_json.is_empty() {
        for query in kubectl_queries(args.shape) {
            let json = kubectl(&args.kubectl, &query)?;
            state
                .absorb(&json)
                .with_context(|| format!("the output of kubectl {}", query.join(" ")))?;
        }
    }
    Ok(state)
}

/// Runs `kubectl args` and returns what it printed.
fn kubectl(kubectl: &Path, args: &[String]) -> anyhow::Result<String> {
    let out = Command::new(kubectl)
        .args(args)
        .output()
        .with_context(|| format!("{} cannot run", kubectl.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!(
            "`{} {}` failed ({}): {}",
            kubectl.display(),
            args.join(" "),
            out.status,
            stderr.trim()
        );
    }
    String::from_utf8(out.stdout).context("kubectl printed something that is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::manifests;

    fn fixture(name: &str) -> String {
        let path = manifests::root().join("tests/fixtures/doctor").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn state(fixtures: &[&str]) -> ClusterState {
        let mut state = ClusterState::default();
        for name in fixtures {
            state
                .absorb(&fixture(name))
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        state
    }

    /// The problems found (their `what`), for each shape and what the cluster holds.
    #[test]
    fn doctor_cluster_decisions_over_kubectl_fixtures() {
        struct Case {
            shape: Shape,
            fixtures: &'static [&'static str],
            checked: usize,
            missing: &'static [&'static str],
        }
        const INSTALLED: &str = "crds-installed.json";
        const OLD: &str = "crds-kafkasource-v1alpha1.json";
        const ENABLED: &str = "configmaps-enabled.json";
        const WITHOUT: &str = "config-kafka-features-without-flag.json";
        const EMPTY: &str = "empty-list.json";
        let cases = [
            Case {
                shape: Shape::Knative,
                fixtures: &[INSTALLED, ENABLED],
                checked: 7,
                missing: &[],
            },
            Case {
                shape: Shape::Keda,
                fixtures: &[INSTALLED],
                checked: 2,
                missing: &[],
            },
            Case {
                shape: Shape::Knative,
                fixtures: &[OLD, ENABLED],
                checked: 7,
                missing: &["CRD kafkasources.sources.knative.dev"],
            },
            Case {
                shape: Shape::Keda,
                fixtures: &[OLD],
                checked: 2,
                missing: &[],
            },
            Case {
                shape: Shape::Knative,
                fixtures: &[INSTALLED, WITHOUT],
                checked: 7,
                missing: &[
                    "knative-eventing/config-kafka-features controller-autoscaler-keda",
                    "knative-eventing/config-features authentication-oidc",
                ],
            },
            Case {
                shape: Shape::Knative,
                fixtures: &[EMPTY],
                checked: 7,
                missing: &[
                    "CRD scaledobjects.keda.sh",
                    "CRD triggerauthentications.keda.sh",
                    "CRD services.serving.knative.dev",
                    "CRD kafkasources.sources.knative.dev",
                    "CRD kafkasinks.eventing.knative.dev",
                    "knative-eventing/config-kafka-features controller-autoscaler-keda",
                    "knative-eventing/config-features authentication-oidc",
                ],
            },
            Case {
                shape: Shape::Keda,
                fixtures: &[EMPTY],
                checked: 2,
                missing: &["CRD scaledobjects.keda.sh", "CRD triggerauthentications.keda.sh"],
            },
        ];
        for case in &cases {
            let findings = decide(case.shape, &state(case.fixtures));
            let label = format!("{:?} {:?}", case.shape, case.fixtures);
            assert_eq!(findings.len(), case.checked, "{label}: {findings:#?}");
            let missing: Vec<&Finding> = findings.iter().filter(|f| f.is_problem()).collect();
            assert_eq!(missing.len(), case.missing.len(), "{label}: {missing:#?}");
            for (finding, expected) in missing.iter().zip(case.missing) {
                let line = finding.to_string();
                assert!(
                    line.starts_with(&format!("MISSING {expected}")),
                    "{label}: {line}"
                );
                assert!(line.contains(". Fix: kubectl "), "{label}: {line}");
            }
        }
        assert_eq!(cases.len(), 7, "every case was checked");
    }

    #[test]
    fn doctor_cluster_lines_say_why_and_how() {
        let old = decide(Shape::Knative, &state(&["crds-kafkasource-v1alpha1.json"]));
        let line = old[3].to_string();
        assert!(line.contains("it serves v1alpha1, not v1beta1"), "{line}");
        assert!(line.contains("eventing-kafka-source.yaml"), "{line}");

        let without = decide(
            Shape::Knative,
            &state(&["config-kafka-features-without-flag.json"]),
        );
        let line = without[5].to_string();
        assert!(
            line.contains("it is not set") && line.contains("spec.consumers (1)"),
            "{line}"
        );
        assert!(
            line.ends_with(r#"Fix: kubectl -n knative-eventing patch configmap config-kafka-features --type merge -p '{"data":{"controller-autoscaler-keda":"enabled"}}'"#),
            "{line}"
        );
        let line = without[6].to_string();
        assert!(
            line.contains("does not exist") && line.contains("eventing-core.yaml, then kubectl patch"),
            "{line}"
        );
    }

    #[test]
    fn doctor_cluster_reads_one_object_a_list_or_nothing() {
        let mut s = ClusterState::default();
        s.absorb("").unwrap();
        s.absorb(&fixture("empty-list.json")).unwrap();
        assert_eq!(s, ClusterState::default());
        s.absorb(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-kafka-features","namespace":"knative-eventing"},
                "data":{"controller-autoscaler-keda":"disabled"}}"#,
        )
        .unwrap();
        let flag = decide(Shape::Knative, &s)[5].to_string();
        assert!(flag.contains("it is disabled"), "{flag}");
        // A version listed but not served does not count.
        s.absorb(
            r#"{"kind":"List","items":[{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
                "metadata":{"name":"scaledobjects.keda.sh"},
                "spec":{"versions":[{"name":"v1alpha1","served":false,"storage":true}]}}]}"#,
        )
        .unwrap();
        let crd = decide(Shape::Keda, &s)[0].to_string();
        assert!(crd.contains("it serves nothing, not v1alpha1"), "{crd}");
        assert!(s.absorb("kubectl: not found").is_err());
    }

    #[test]
    fn doctor_cluster_asks_kubectl_for_what_it_decides_on() {
        let keda = kubectl_queries(Shape::Keda);
        assert_eq!(
            keda,
            [[
                "get",
                "crd",
                "scaledobjects.keda.sh",
                "triggerauthentications.keda.sh",
                "-o",
                "json",
                "--ignore-not-found"
            ]]
        );
        let knative = kubectl_queries(Shape::Knative);
        assert_eq!(knative[0].len(), 2 + 5 + 3);
        assert_eq!(
            knative[1].join(" "),
            "-n knative-eventing get configmap config-kafka-features config-features -o json --ignore-not-found"
        );
    }

    /// A group Kubernetes itself serves: the core group (`v1`), the dotless ones (`apps`,
    /// `batch`, `policy`) and `*.k8s.io` (which includes kustomize's own file).
    fn core_group(group: &str) -> bool {
        !group.contains('.') || group.ends_with(".k8s.io")
    }

    /// Every `apiVersion`/`kind` pair anywhere in `value` (objects and their references).
    fn kinds(value: &serde_norway::Value, out: &mut BTreeSet<(String, String)>) {
        match value {
            serde_norway::Value::Mapping(map) => {
                if let (Some(api), Some(kind)) = (value["apiVersion"].as_str(), value["kind"].as_str()) {
                    out.insert((api.to_owned(), kind.to_owned()));
                }
                map.values().for_each(|v| kinds(v, out));
            }
            serde_norway::Value::Sequence(items) => items.iter().for_each(|v| kinds(v, out)),
            _ => {}
        }
    }

    /// The list of CRDs is the manifests': each custom kind they use, in the version they
    /// use, is checked for their shape.
    #[test]
    fn doctor_checks_every_custom_kind_the_manifests_use() {
        let mut checked = 0;
        for shape in [Shape::Knative, Shape::Keda] {
            let mut used = BTreeSet::new();
            let dir = manifests::root().join(shape.dir());
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    manifests::documents(&path)
                        .iter()
                        .for_each(|d| kinds(d, &mut used));
                }
            }
            for (api, kind) in &used {
                let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
                if core_group(group) {
                    continue;
                }
                let crd = REQUIRED_CRDS
                    .iter()
                    .find(|c| c.group() == group && c.kind == kind)
                    .unwrap_or_else(|| {
                        panic!(
                            "{}/ uses {api} {kind}, which the doctor does not check",
                            shape.dir()
                        )
                    });
                assert_eq!(crd.version, version, "{}/ uses {api} {kind}", shape.dir());
                assert!(crd.needed_by(shape), "{}/ uses {api} {kind}", shape.dir());
                checked += 1;
            }
        }
        // knative/: Service, KafkaSource, KafkaSink; keda/: ScaledObject, TriggerAuthentication.
        assert_eq!(checked, 5);
    }
}
