//! `notify`: with no subcommand, the HTTP function on `PORT`.

use clap::Parser;
use std::process::ExitCode;
use todo_events_host::run::{exit_status, serve_on_port, Common};

/// Sends reminder e-mails for `dev.todo.reminder.due` events, once.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    todo_events_host::telemetry::init();
    let _cli = Cli::parse();
    exit_status("notify", run().await)
}

async fn run() -> anyhow::Result<()> {
    let common = Common::from_env()?;
    let config = notify::NotifyConfig::from_env()?;
    let store = common.open_store().await?;
    let function = notify::Notify::new(store, config).map_err(todo_events_host::config::ConfigError)?;
    serve_on_port(function, &common).await
}
