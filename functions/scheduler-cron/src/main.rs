//! `scheduler-cron`: one pass by default; `--for D --every E` keeps polling for D (the
//! CronJob mode); `--loop --every E` runs until stopped.

use clap::Parser;
use scheduler_cron::publish::{AnyPublisher, KafkaPublisher};
use std::process::ExitCode;
use todo_events_domain::HumanDuration;
use todo_events_host::config::ConfigError;
use todo_events_host::startup::{exit_status, CommonSettings};
use todo_events_host::Shutdown;

/// Publishes one CloudEvent per due reminder and recurring-task occurrence.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Keep polling for this long (e.g. 55s), then exit: the CronJob mode
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "run_loop")]
    run_for: Option<HumanDuration>,
    /// Poll until stopped (SIGTERM / Ctrl-C)
    #[arg(long = "loop")]
    run_loop: bool,
    /// Time between polls with --for or --loop (e.g. 1s)
    #[arg(long, value_name = "DURATION")]
    every: Option<HumanDuration>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = todo_events_host::telemetry::init("scheduler-cron");
    let cli = Cli::parse();
    if (cli.run_for.is_some() || cli.run_loop) && cli.every.is_none() {
        eprintln!("scheduler-cron: --for and --loop need --every DURATION (e.g. --every 1s)");
        return ExitCode::from(2);
    }
    if cli.every.is_some() && cli.run_for.is_none() && !cli.run_loop {
        eprintln!("scheduler-cron: --every needs --for DURATION or --loop");
        return ExitCode::from(2);
    }
    if cli.every.is_some_and(|e| e.0.is_zero()) {
        eprintln!("scheduler-cron: --every must be longer than 0s");
        return ExitCode::from(2);
    }
    exit_status("scheduler-cron", run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let common = CommonSettings::from_env()?;
    let config = scheduler_cron::SchedulerConfig::from_env()?;
    let store = common.open_store().await?;
    // Kafka when KAFKA_BROKERS is set, HTTP sinks otherwise; never both.
    let publisher = match todo_events_kafka::KafkaConfig::from_env_if_set()? {
        Some(kafka) => {
            if config.sink_reminders.is_some() || config.sink_task_events.is_some() {
                return Err(ConfigError(
                    "set either KAFKA_BROKERS or SINK_REMINDERS/SINK_TASK_EVENTS/K_SINK, not both".into(),
                )
                .into());
            }
            AnyPublisher::Kafka(Box::new(
                KafkaPublisher::new(kafka).map_err(|e| anyhow::anyhow!(e))?,
            ))
        }
        None => {
            if config.sink_reminders.is_none() && config.sink_task_events.is_none() {
                return Err(ConfigError(
                    "nowhere to publish: set KAFKA_BROKERS, or SINK_REMINDERS and SINK_TASK_EVENTS (or K_SINK)".into(),
                )
                .into());
            }
            AnyPublisher::Http(scheduler_cron::HttpPublisher::new(
                config.sink_reminders.clone(),
                config.sink_task_events.clone(),
                config.sink_timeout.0,
            ))
        }
    };
    let scheduler = scheduler_cron::Scheduler::new(store, publisher, config);
    let mode = match (cli.run_for, cli.run_loop, cli.every) {
        (Some(d), _, Some(every)) => scheduler_cron::pass::Mode::For {
            duration: d.0,
            every: every.0,
        },
        (None, true, Some(every)) => scheduler_cron::pass::Mode::Loop { every: every.0 },
        _ => scheduler_cron::pass::Mode::Once,
    };
    scheduler.poll(mode, Shutdown::on_signals()).await
}
