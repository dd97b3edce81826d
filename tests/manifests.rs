//! Deployment as designed: the Kubernetes manifests in `knative/` and `keda/`, the container
//! image (`Dockerfile`) and the operations files in `deploy/`, checked by
//! `tests/manifests/check.py` in the test virtualenv (`.ci/python-requirements.txt`), which
//! reads its facts about the code from the Rust sources. See docs/DEPLOYMENT.md, "Validation".
//! A missing Python package fails these tests; nothing is skipped.

use std::path::Path;
use std::process::Command;

fn check(what: &str) {
    let python = todo_events_testkit::python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(what)
        .output()
        .unwrap_or_else(|e| panic!("{} could not run: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "check.py {what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{what}: ")))
        .unwrap_or_else(|| panic!("check.py {what} printed no verdict:\n{stdout}\n{stderr}"));
    assert!(
        verdict.ends_with(" 0 failed") && !verdict.contains(": 0 passed"),
        "{verdict}"
    );
}

/// Every object in knative/ and keda/, and what their kustomizations render, validates
/// strictly: core kinds against the Kubernetes v1.31 schemas (jsonschema) and with
/// kubernetes-validate; Knative and KEDA kinds against their upstream CRDs (jsonschema) and
/// with an independent structural walk of the CRD schemas.
#[test]
fn manifests_validate_strictly_against_the_upstream_schemas() {
    check("schemas");
}

/// Each validator rejects an unknown field, a wrong type and an unknown kind (mutated copies
/// of the real manifests), and accepts the originals; each rule of the agreement and
/// observability checks (scheduler overlap and deadlines, KafkaSource ordering and retries,
/// Knative probes, NetworkPolicies, PodDisruptionBudgets, histogram buckets) catches a
/// mutated copy that breaks it.
#[test]
fn the_validators_reject_unknown_fields_wrong_types_and_unknown_kinds() {
    check("negative");
}

/// Topics, consumer groups, ports, health paths, variables, subcommands and flags in the
/// manifests are the code's; sinks, targets and references exist; required settings are set.
/// The KafkaSources deliver unordered with keda/'s retry schedule, the Knative readiness probes
/// keep Knative's start-up probing, the NetworkPolicies admit what really calls the functions
/// (and only Prometheus in keda/), the keda/ consumers have PodDisruptionBudgets, and the
/// scheduler's runs overlap by the start margin within activeDeadlineSeconds.
#[test]
fn manifests_agree_with_the_code_and_with_each_other() {
    check("agreement");
}

/// The Dockerfile ships exactly the workspace's binaries in a distroless image as a numeric
/// non-root user, and every manifest runs one of them as that user.
#[test]
fn the_image_holds_every_binary_and_runs_as_non_root() {
    check("image");
}

/// The Grafana dashboard parses, and its queries and the alert rules are valid PromQL over
/// metrics, labels and label values that exist (kube-state-metrics' custom resource metrics as
/// deploy/kube-state-metrics/ configures them); lateness is on the dashboard and alerted at
/// 1.5 s, every resource's "not Ready" and every external source's absence is alerted, and the
/// histogram buckets resolve the targets and the alert thresholds.
#[test]
fn the_dashboard_and_alerts_use_metrics_that_exist() {
    check("observability");
}
