//! `scheduler-cron`: one pass by default; `--for D --every E` keeps polling for D (the
//! CronJob mode); `--loop --every E` runs until stopped. It publishes to the HTTP sinks, or to
//! Kafka when `KAFKA_BROKERS` is set and it was built with the `kafka` feature (as the
//! Dockerfile builds it); without the feature `KAFKA_BROKERS` stops it at start-up, rather
//! than publishing somewhere else than configured.

use clap::Parser;
use scheduler_cron::publish::AnyPublisher;
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
    let publisher = publisher(&config)?;
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

/// Kafka when KAFKA_BROKERS is set, HTTP sinks otherwise; never both.
fn publisher(config: &scheduler_cron::SchedulerConfig) -> anyhow::Result<AnyPublisher> {
    match kafka_settings()? {
        #[cfg(feature = "kafka")]
        Some(kafka) => {
            if config.sink_reminders.is_some() || config.sink_task_events.is_some() {
                return Err(ConfigError(
                    "set either KAFKA_BROKERS or SINK_REMINDERS/SINK_TASK_EVENTS/K_SINK, not both".into(),
                )
                .into());
            }
            if config.sink_notifications.is_some() {
                return Err(ConfigError(
                    "SINK_NOTIFICATIONS is for HTTP sinks; with KAFKA_BROKERS the status events go to \
                     KAFKA_TOPIC_NOTIFICATIONS"
                        .into(),
                )
                .into());
            }
            Ok(AnyPublisher::Kafka(Box::new(
                scheduler_cron::publish::KafkaPublisher::new(kafka).map_err(|e| anyhow::anyhow!(e))?,
            )))
        }
        None => {
            if config.sink_reminders.is_none() && config.sink_task_events.is_none() {
                return Err(ConfigError(
                    "nowhere to publish: set KAFKA_BROKERS, or SINK_REMINDERS and SINK_TASK_EVENTS (or K_SINK)".into(),
                )
                .into());
            }
            if config.notification_events && config.sink_notifications.is_none() {
                return Err(ConfigError(
                    "NOTIFICATION_EVENTS=on needs SINK_NOTIFICATIONS (or KAFKA_BROKERS)".into(),
                )
                .into());
            }
            Ok(AnyPublisher::Http(
                scheduler_cron::HttpPublisher::new(
                    config.sink_reminders.clone(),
                    config.sink_task_events.clone(),
                    config.sink_timeout.0,
                )
                .with_notifications(config.sink_notifications.clone())
                .with_token(config.sink_token.clone()),
            ))
        }
    }
}

/// The Kafka settings when `KAFKA_BROKERS` is set.
#[cfg(feature = "kafka")]
fn kafka_settings() -> Result<Option<todo_events_kafka::KafkaConfig>, ConfigError> {
    todo_events_kafka::KafkaConfig::from_env_if_set()
}

/// Without the `kafka` feature there is no Kafka sink: `KAFKA_BROKERS` is a configuration
/// error naming the build that has one.
#[cfg(not(feature = "kafka"))]
fn kafka_settings() -> Result<Option<std::convert::Infallible>, ConfigError> {
    match std::env::var_os("KAFKA_BROKERS") {
        Some(_) => Err(ConfigError(
            "KAFKA_BROKERS is set, but this scheduler-cron was built without the `kafka` feature \
             (cargo build --release --features kafka -p scheduler-cron)"
                .into(),
        )),
        None => Ok(None),
    }
}
