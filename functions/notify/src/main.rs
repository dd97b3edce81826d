//! `notify`: with no subcommand, the HTTP function on `PORT`; `notify vapid-keys` prints a
//! new Web Push key pair; built with the `kafka` feature (as the Dockerfile builds it) also
//! `notify consume`, the direct Kafka consumer, and `notify replay-dead-letters`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use todo_events_host::startup::exit_status;
#[cfg(feature = "kafka")]
use todo_events_kafka::cli::FunctionCommand;

/// Delivers reminders for `dev.todo.reminder.due` events (e-mail, webhooks, Web Push), each
/// delivery once.
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new VAPID key pair for Web Push: VAPID_PRIVATE_KEY for notify's Secret, and the
    /// public key the frontend passes to pushManager.subscribe as applicationServerKey
    VapidKeys,
    #[cfg(feature = "kafka")]
    #[command(flatten)]
    Kafka(FunctionCommand),
}

fn build(store: todo_events_store::Store) -> anyhow::Result<notify::Notify> {
    let config = notify::NotifyConfig::from_env()?;
    Ok(notify::Notify::new(store, config).map_err(todo_events_host::config::ConfigError)?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::VapidKeys) => {
            let (private, public) = notify::channels::webpush::Vapid::generate();
            println!("VAPID_PRIVATE_KEY={private}");
            println!("VAPID_PUBLIC_KEY={public}");
            return ExitCode::SUCCESS;
        }
        #[cfg(feature = "kafka")]
        Some(Command::Kafka(command)) => {
            let _telemetry = todo_events_host::telemetry::init("notify");
            return exit_status(
                "notify",
                todo_events_kafka::cli::run_kafka_subcommand(command, build).await,
            );
        }
        None => {}
    }
    let _telemetry = todo_events_host::telemetry::init("notify");
    exit_status(
        "notify",
        todo_events_host::function_binary::serve_http(build).await,
    )
}
