//! `notify`: with no subcommand, the HTTP function on `PORT`; `notify consume`, the direct
//! Kafka consumer; `notify replay-dead-letters`.

use clap::Parser;
use std::process::ExitCode;
use todo_events_host::startup::exit_status;
use todo_events_kafka::cli::FunctionCommand;

/// Sends reminder e-mails for `dev.todo.reminder.due` events, once.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<FunctionCommand>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = todo_events_host::telemetry::init("notify");
    let cli = Cli::parse();
    let result = todo_events_kafka::cli::run(cli.command, |store| {
        let config = notify::NotifyConfig::from_env()?;
        Ok(notify::Notify::new(store, config).map_err(todo_events_host::config::ConfigError)?)
    })
    .await;
    exit_status("notify", result)
}
