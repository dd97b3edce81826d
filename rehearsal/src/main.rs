//! The rehearsal of production: `rehearsal/run` brings up knative/ and keda/ as their
//! manifests say (the real binaries, their args and environment, replica limits, the
//! CronJob's schedule and policy, the KafkaSources' ordering and delivery spec, KEDA's
//! polling and thresholds, Knative's concurrency and scale bounds; partitions as
//! docs/DEPLOYMENT.md creates them) against real PostgreSQL, a Kafka-protocol broker and an
//! SMTP relay, plays the cluster's controllers with small stand-ins that follow the upstream
//! sources they name, and measures the scenarios of docs/DEPLOYMENT.md "Rehearsed" where a
//! user would see them: e-mails at the relay (every copy), task instances in the database,
//! records on the dead-letter topic.
//!
//! Test tooling only: nothing here is deployed (tests/system/manifests/check.py).

mod cgroups;
mod cluster_settings;
mod cronjob;
mod deployment;
mod dispatcher;
mod keda;
mod manifests;
mod modelled;
mod placement;
mod pods;
mod scenarios;
mod serving;
mod stack;
mod world;

use clap::Parser;
use std::path::Path;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    about = "Runs knative/ and keda/ as their manifests say, with stand-ins for the cluster's controllers"
)]
pub struct Args {
    /// Installations to rehearse.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [stack::Shape::Knative, stack::Shape::Keda])]
    shape: Vec<stack::Shape>,
    /// The CI size: warm trickle for 70 s (one minute boundary, the poison event) and the
    /// burst at full scale-out; no scale-from-zero scenario.
    #[arg(long)]
    short: bool,
    /// Container start: scheduling, image pull, container creation, before the program runs.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    container_start: Duration,
    /// The relay's time per message (before it answers the end of DATA).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    relay_delay: Duration,
    /// Reminders (and occurrences) due in the same second in the burst scenarios.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    burst: u32,
    /// A `kafka-source-dispatcher` pod's start when one must start first (knative/): its
    /// container's start and the dispatcher's own (a JVM) until it consumes.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    dispatcher_start: Duration,
    /// From a change of a source's placement to the dispatcher pod acting on it (the
    /// contract is a ConfigMap mounted into the pods).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    contract_delay: Duration,
    /// Only the fresh installation (scenario 0): the manifests applied to an empty cluster,
    /// nothing due, until everything is at zero (or shown not to get there).
    #[arg(long, conflicts_with = "short")]
    fresh_only: bool,
    /// A cluster's own settings to rehearse against (`kubectl get -o json` of its
    /// config-autoscaler, config-kafka-features, config-features, config-kafka-source-data-plane
    /// ConfigMaps and kafka-controller Deployment, one List): refused where they differ from
    /// what the stand-ins play. Without it they play "What to install first"'s cluster.
    #[arg(long, value_name = "FILE")]
    cluster_config: Option<String>,
    /// Run the pods without their `limits.cpu` enforced (where this machine cannot make CPU
    /// cgroups); the table says so.
    #[arg(long)]
    no_cpu_limits: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let out = root.join("target/rehearsal");
    std::fs::create_dir_all(&out)?;
    if let Some(file) = &args.cluster_config {
        let differences = cluster_settings::differences(file)?;
        anyhow::ensure!(
            differences.is_empty(),
            "the cluster in {file} is set up differently from what the stand-ins play, so the \
             rehearsal would not measure it:\n  {}",
            differences.join("\n  ")
        );
    }
    let cgroups = if args.no_cpu_limits {
        None
    } else {
        Some(std::sync::Arc::new(cgroups::Cgroups::create().map_err(|e| {
            anyhow::anyhow!(
                "{e:#}: the pods' limits.cpu cannot be enforced on this machine (a CPU cgroup \
                 of our own is needed: root, cgroup v1 or v2 with the cpu controller); \
                 --no-cpu-limits runs without them"
            )
        })?))
    };
    let mut report = scenarios::Report::new(&args, cgroups.as_deref());
    for shape in args.shape.clone() {
        scenarios::rehearse(shape, &root, &out, &args, cgroups.clone(), &mut report).await?;
    }
    let table = report.table();
    println!("{table}");
    std::fs::write(out.join("results.md"), &table)?;
    if report.all_met() {
        println!("PASS");
        Ok(())
    } else {
        anyhow::bail!("targets not met (see the table above and target/rehearsal/*.log)")
    }
}
