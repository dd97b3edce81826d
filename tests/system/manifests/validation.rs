//! Deployment as designed: the Kubernetes manifests in `knative/` and `keda/`, the container
//! image (`Dockerfile`) and the operations files in `deploy/`, checked by
//! `tests/system/manifests/check.py` in the test virtualenv (`.ci/python-requirements.txt`). See
//! docs/DEPLOYMENT.md, "Validation". Without the test virtualenv (no `python3-venv`) they are
//! skipped with a message and fail under CI=true (`todo_events_testkit::require`); a missing
//! Python package in a virtualenv that was made fails them.
//!
//! What check.py knows about the code comes from the code's behaviour, never from its source
//! text: this file serves both functions in-process and writes what they answer (reply
//! outcomes, `/metrics`, health paths) and what the Kafka and host libraries say (topics,
//! dead-letter topics, consumer settings, outcome labels) to a JSON file; `check.py facts`
//! then runs the workspace's binaries (`--help` of every command, and every command with
//! `TODO_EVENTS_ENV_TRACE` to learn the variables it reads) once for all the checks.

use notify::{Notify, NotifyConfig};
use recur::Recur;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use todo_events_domain::EventKind;
use todo_events_host::{Function, Outcome, Problem};
use todo_events_kafka::consumer::{consumer_config, ConsumerOptions, DEAD_LETTERED};
use todo_events_kafka::KafkaConfig;
use todo_events_testkit::{self as kit, reply, TestApp};

/// One function served in-process: what it answers to a valid event and to an invalid one,
/// and its `/metrics` and health paths afterwards.
async fn observe<F: Function>(app: TestApp, valid_id: &str, valid: &Value) -> Value {
    let ty = F::ACCEPTS.cloudevent_type();
    let (status, reply_type, body) = reply(app.post_binary(ty, valid_id, valid).await).await;
    assert_eq!(status, 200, "{}: {reply_type} {body}", F::NAME);
    let rejected = app.post_binary(ty, "invalid-1", &json!({})).await.status();
    assert_eq!(rejected.as_u16(), 400, "{}", F::NAME);
    let get = |path: &str| app.client.get(format!("{}{path}", app.url)).send();
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    let mut health = serde_json::Map::new();
    for path in [
        todo_events_host::server::READINESS_PATH,
        todo_events_host::server::LIVENESS_PATH,
    ] {
        health.insert(path.into(), get(path).await.unwrap().status().as_u16().into());
    }
    let (topic_var, topic_default) = KafkaConfig::topic_setting(F::ACCEPTS);
    json!({
        "accepts": ty,
        "reply_type": reply_type,
        "done": body["outcome"],
        "metrics": metrics,
        "health": health,
        "topic_var": topic_var,
        "topic_default": topic_default,
    })
}

/// The facts of the code, written once per test process; check.py reads them from the file
/// named by `TODO_EVENTS_CODE_FACTS`.
fn facts() -> &'static Path {
    static FACTS: OnceLock<PathBuf> = OnceLock::new();
    FACTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manifests");
        std::fs::create_dir_all(&dir).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let functions = runtime.block_on(async {
            let db = kit::sqlite().await;
            let outbox = tempfile::tempdir().unwrap();
            let notify = Notify::new(db.store.clone(), NotifyConfig::local(outbox.path().into())).unwrap();
            let r = kit::reminder(&db.store, "Facts", chrono::Utc::now() - chrono::Duration::seconds(1)).await;
            let notify = observe::<Notify>(kit::spawn(notify).await, &r.event_id(), &r.data()).await;
            let occ = kit::at("2026-03-28T08:00:00Z");
            let rt = kit::recurring(&db.store, "FREQ=DAILY", "2026-03-01T09:00:00", "Europe/Berlin", occ, "latest", &[])
                .await;
            let recur = observe::<Recur>(kit::spawn(Recur::new(db.store.clone())).await, "recurring-task/x", &rt.data(occ))
                .await;
            json!({ Notify::NAME: notify, Recur::NAME: recur })
        });
        let problem_outcomes: Vec<&str> = (100..600)
            .map(|status| {
                todo_events_host::server::problem_outcome(&Problem {
                    status,
                    ..Problem::invalid("body", "")
                })
            })
            .collect();
        let mut outcomes: Vec<Value> = problem_outcomes.into_iter().map(Value::from).collect();
        outcomes.extend([Outcome::Duplicate, Outcome::Skipped, Outcome::Failed].map(|o| Value::from(o.word())));
        outcomes.push(DEAD_LETTERED.into());
        let consumer = consumer_config(&ConsumerOptions {
            kafka: KafkaConfig::plaintext("127.0.0.1:9"),
            topic: "t".into(),
            group: "g".into(),
        });
        let binaries = kit::binary("notify").parent().unwrap().to_owned();
        let code = json!({
            "binaries_dir": binaries,
            "functions": functions,
            "outcomes": outcomes,
            "event_types": [EventKind::ReminderDue.cloudevent_type(), EventKind::RecurringTaskDue.cloudevent_type()],
            "dead_letter_topic_of_t": todo_events_kafka::dead_letters::topic_for("t"),
            "consumer_offset_reset": consumer.get("auto.offset.reset"),
        });
        let path = dir.join("code.json");
        std::fs::write(&path, serde_json::to_string_pretty(&code).unwrap()).unwrap();
        // The binaries' own statements, once for every check.
        run_check("facts", &path);
        path
    })
}

fn check(what: &str) {
    // Without the test virtualenv (no python3-venv): skipped with a message, failed under CI.
    if todo_events_testkit::require::python().is_none() {
        return;
    }
    let out = run_check(what, facts());
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

fn run_check(what: &str, facts: &Path) -> std::process::Output {
    let python = todo_events_testkit::python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/system/manifests/check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(what)
        .env("TODO_EVENTS_CODE_FACTS", facts)
        .output()
        .unwrap_or_else(|e| panic!("{} could not run: {e}", python.display()));
    if what == "facts" {
        assert!(
            out.status.success(),
            "check.py facts failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
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
/// Knative probes, NetworkPolicies, PodDisruptionBudgets, the functions' authentication and
/// listen address, Kafka security, histogram buckets) catches a mutated copy that breaks it,
/// and the documented plaintext Kafka, applied everywhere, passes.
#[test]
fn the_validators_reject_unknown_fields_wrong_types_and_unknown_kinds() {
    check("negative");
}

/// Topics, consumer groups, ports, health paths, variables, subcommands and flags in the
/// manifests are the code's; sinks, targets and references exist; required settings are set.
/// The KafkaSources deliver unordered with keda/'s retry schedule, the Knative readiness probes
/// keep Knative's start-up probing, the NetworkPolicies admit what really calls the functions
/// (and only Prometheus in keda/), the keda/ consumers have PodDisruptionBudgets, and the
/// scheduler's runs overlap by the start margin within activeDeadlineSeconds. Each KafkaSource's
/// audience and service account are what its function's OIDC settings accept, only the
/// functions that check tokens mount one, and everything that talks to Kafka agrees on TLS,
/// SASL and its own identity.
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
