//! `todo-events doctor`: checks that an installation has what `knative/` and `keda/` take for
//! granted, and prints one line per finding, each missing piece with the command that fixes
//! it. Every prerequisite checked here fails far from its cause when it is missing: the
//! manifests apply, the pods start, and then nothing scales, nothing is delivered, or the
//! database refuses connections only under load.
//!
//! - **Cluster** ([`cluster`]): the CRDs the manifests use, serving the versions they use (a
//!   missing CRD or an old release fails `kubectl apply` part-way); for `knative/`, the two
//!   feature flags of Knative Eventing the KafkaSources depend on (KEDA autoscaling of the
//!   sources, and the sender identity the functions verify), both off by default and set by a
//!   patch, not by our manifests.
//! - **Kafka** ([`kafka`]): the four topics with enough partitions (a partition has one
//!   consumer per group, so fewer partitions than consumers leaves consumers idle), and a
//!   committed offset on every partition for each function's group (KEDA counts a partition
//!   without one as lag, so the consumers never scale to zero); `--commit-missing-offsets`
//!   commits them.
//! - **Database** ([`database`]): PostgreSQL's `max_connections` against what the functions
//!   open at full scale (past it, new pods fail to connect exactly when the load is highest),
//!   and whether this build's migrations are applied (the functions do not migrate).
//!
//! Each check is read → decide → print: reading (kubectl, the brokers, the database) is kept
//! apart, the decisions are pure functions over what was read (unit-tested against
//! `tests/fixtures/doctor/`), and [`Finding`]'s `Display` is the output format.

mod cluster;
mod database;
mod kafka;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

pub use cluster::Shape;

/// Partitions each topic needs: the most consumers one group runs on it, keda/'s
/// ScaledObject `maxReplicaCount` (6; knative/'s KafkaSource `max-scale` is at most that).
/// Kafka gives a partition to one consumer of a group at a time.
pub const DEFAULT_PARTITIONS: u32 = 6;

/// The flags of `todo-events doctor`.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Which deployment to check for: knative (knative/: Knative Services fed by
    /// KafkaSources) or keda (keda/: consumer Deployments scaled by KEDA)
    #[arg(long, value_enum)]
    pub shape: Shape,
    /// Read the cluster's objects from FILE (`-`: standard input) instead of running kubectl:
    /// what `kubectl get crd … -o json` (and, for knative, `kubectl -n knative-eventing get
    /// configmap config-kafka-features config-features -o json`) prints, one object or a List.
    /// Repeatable: the objects of every FILE count
    #[arg(long, value_name = "FILE")]
    pub cluster_json: Vec<String>,
    /// The kubectl to run when --cluster-json is not given
    #[arg(long, value_name = "PATH", default_value = "kubectl")]
    pub kubectl: PathBuf,
    /// Do not check the cluster (e.g. run inside it, without kubectl)
    #[arg(long, conflicts_with = "cluster_json")]
    pub skip_cluster: bool,
    /// Partitions each topic needs at least: default 6, the manifests' most consumers per
    /// topic (keda/ ScaledObject maxReplicaCount, knative/ KafkaSource max-scale at most); a partition
    /// is read by one consumer of a group at a time, so consumers beyond the partitions idle.
    /// Raise it together with those two
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARTITIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// notify's consumer group (on the reminders topic)
    #[arg(long, value_name = "GROUP", default_value = "todo-events-notify")]
    pub group_notify: String,
    /// recur's consumer group (on the task-events topic)
    #[arg(long, value_name = "GROUP", default_value = "todo-events-recur")]
    pub group_recur: String,
    /// Fix: for each group with no consumer in it, commit every partition that has no
    /// committed offset at the partition's log start offset (nothing still on the topic is
    /// skipped); partitions with a committed offset are never touched
    #[arg(long)]
    pub commit_missing_offsets: bool,
    /// PostgreSQL connections needed at least: default 120, what knative/ opens at full
    /// scale, (notify max-scale 10 + recur max-scale 10) × DATABASE_MAX_CONNECTIONS 5 + 2
    /// overlapping scheduler runs × 5 = 110, plus 10 for the migration Job, PostgreSQL's
    /// reserved superuser connections and an operator's psql. keda/ needs (6 + 6 + 2) × 5 + 10
    /// = 80
    #[arg(long, value_name = "N", default_value_t = database::DEFAULT_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The prerequisite is there.
    Ok { what: String },
    /// It is missing: why that matters, and the command that fixes it.
    Missing { what: String, why: String, fix: String },
    /// It was not checked, and why.
    Skipped { what: String, why: String },
}

impl Finding {
    pub fn ok(what: impl Into<String>) -> Self {
        Self::Ok { what: what.into() }
    }

    pub fn missing(what: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Missing {
            what: what.into(),
            why: why.into(),
            fix: fix.into(),
        }
    }

    pub fn skipped(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Skipped {
            what: what.into(),
            why: why.into(),
        }
    }

    pub fn is_problem(&self) -> bool {
        matches!(self, Self::Missing { .. })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok { what } => write!(f, "ok   {what}"),
            Self::Missing { what, why, fix } => {
                write!(f, "MISSING {what}: {}. Fix: {fix}", why.trim_end_matches('.'))
            }
            Self::Skipped { what, why } => write!(f, "skipped {what}: {why}"),
        }
    }
}

/// An error and its causes on one line, each cause once: sqlx and rdkafka repeat their
/// source's message in their own.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !line.ends_with(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

/// The findings so far, printed as they come.
#[derive(Debug, Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn print(&mut self, findings: Vec<Finding>) {
        for finding in findings {
            self.problems += usize::from(finding.is_problem());
            println!("{finding}");
        }
    }

    fn summary(&self) -> String {
        format!("doctor: {} problem(s)", self.problems)
    }
}

/// Runs every check, prints the report, and exits 1 when anything required is missing.
pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report::default();
    let cluster_args = args.clone();
    report.print(tokio::task::spawn_blocking(move || cluster::check(&cluster_args)).await?);
    let kafka_args = args.clone();
    report.print(tokio::task::spawn_blocking(move || kafka::check(&kafka_args)).await?);
    report.print(database::check(args.shape, args.connections).await);
    println!("{}", report.summary());
    Ok(if report.problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The manifests as YAML values, for the tests that check the doctor's numbers and lists
/// against them.
#[cfg(test)]
pub(crate) mod manifests {
    use serde::Deserialize;
    use std::path::{Path, PathBuf};

    pub fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Every document of one YAML file.
    pub fn documents(path: &Path) -> Vec<serde_norway::Value> {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_norway::Deserializer::from_str(&text)
            .map(|d| {
                serde_norway::Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            })
            .filter(|v| !v.is_null())
            .collect()
    }

    /// The documents of `dir/file` (e.g. `knative/notify.yaml`) whose `kind` is `kind`.
    pub fn of_kind(file: &str, kind: &str) -> Vec<serde_norway::Value> {
        documents(&root().join(file))
            .into_iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    }

    /// A string or number in the YAML at `path` (keys), as a number.
    pub fn number(doc: &serde_norway::Value, path: &[&str]) -> u32 {
        let mut v = doc;
        for key in path {
            v = &v[*key];
        }
        match v {
            serde_norway::Value::Number(n) => n.as_u64().expect("a whole number") as u32,
            serde_norway::Value::String(s) => s.parse().unwrap_or_else(|e| panic!("{path:?}: {s:?}: {e}")),
            other => panic!("{path:?} is {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_findings_print_in_the_report_format() {
        let cases = [
            (Finding::ok("topic reminders"), "ok   topic reminders"),
            (
                Finding::missing(
                    "topic reminders",
                    "it does not exist.",
                    "kafka-topics.sh --create",
                ),
                "MISSING topic reminders: it does not exist. Fix: kafka-topics.sh --create",
            ),
            (
                Finding::skipped("cluster", "--skip-cluster"),
                "skipped cluster: --skip-cluster",
            ),
        ];
        for (finding, line) in &cases {
            assert_eq!(finding.to_string(), *line);
        }
        assert_eq!(cases.len(), 3);
    }

    #[test]
    fn doctor_errors_say_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = anyhow::Error::new(io).context("error communicating with database: Connection refused");
        let e = e.context("connecting");
        assert_eq!(
            one_line(&e),
            "connecting: error communicating with database: Connection refused"
        );
    }

    #[test]
    fn doctor_summary_counts_only_missing_findings() {
        let mut report = Report::default();
        report.print(vec![
            Finding::ok("a"),
            Finding::skipped("b", "c"),
            Finding::missing("d", "e", "f"),
        ]);
        assert_eq!(report.summary(), "doctor: 1 problem(s)");
    }

    /// The default partitions are the manifests' most consumers per topic, in both shapes.
    #[test]
    fn doctor_default_partitions_are_the_manifests_max_consumers() {
        let sources = manifests::of_kind("knative/kafka-sources.yaml", "KafkaSource");
        let scaled = manifests::of_kind("keda/scaledobjects.yaml", "ScaledObject");
        assert_eq!((sources.len(), scaled.len()), (2, 2));
        for source in &sources {
            let max = manifests::number(
                source,
                &[
                    "metadata",
                    "annotations",
                    "autoscaling.eventing.knative.dev/max-scale",
                ],
            );
            // One consumer per source and dispatcher pod (knative/kafka-sources.yaml): at most
            // the partitions.
            assert!(
                (1..=DEFAULT_PARTITIONS).contains(&max),
                "{:?}",
                source["metadata"]["name"]
            );
        }
        for object in &scaled {
            let max = manifests::number(object, &["spec", "maxReplicaCount"]);
            assert_eq!(max, DEFAULT_PARTITIONS, "{:?}", object["metadata"]["name"]);
        }
    }
}
