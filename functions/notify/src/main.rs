//! `notify`: with no subcommand, the HTTP function on `PORT`; built with the `kafka` feature
//! (as the Dockerfile builds it) also `notify consume`, the direct Kafka consumer, and
//! `notify replay-dead-letters`.

use clap::Parser;
use std::process::ExitCode;
use todo_events_host::startup::exit_status;
#[cfg(feature = "kafka")]
use todo_events_kafka::cli::FunctionCommand;

/// Sends reminder e-mails for `dev.todo.reminder.due` events, once.
#[derive(Parser)]
#[command(version, about)]
#[cfg_attr(
    not(feature = "kafka"),
    command(
        after_help = "Built without the `kafka` feature: no `consume` or `replay-dead-letters` \
                          (cargo build --release --features kafka -p notify)"
    )
)]
struct Cli {
    #[cfg(feature = "kafka")]
    #[command(subcommand)]
    command: Option<FunctionCommand>,
}

fn build(store: todo_events_store::Store) -> anyhow::Result<notify::Notify> {
    let config = notify::NotifyConfig::from_env()?;
    Ok(notify::Notify::new(store, config).map_err(todo_events_host::config::ConfigError)?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = todo_events_host::telemetry::init("notify");
    let cli = Cli::parse();
    #[cfg(feature = "kafka")]
    if let Some(command) = cli.command {
        return exit_status(
            "notify",
            todo_events_kafka::cli::run_kafka_subcommand(command, build).await,
        );
    }
    #[cfg(not(feature = "kafka"))]
    let Cli {} = cli;
    exit_status(
        "notify",
        todo_events_host::function_binary::serve_http(build).await,
    )
}
