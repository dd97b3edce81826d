//! `recur`: with no subcommand, the HTTP function on `PORT`; `recur occurrences` previews a rule;
//! built with the `kafka` feature (as the Dockerfile builds it) also `recur consume` and
//! `recur replay-dead-letters`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use todo_events_host::startup::exit_status;
#[cfg(feature = "kafka")]
use todo_events_kafka::cli::FunctionCommand;

/// Creates task instances for `dev.todo.recurring-task.due` events, once, and advances the
/// recurring task to its next occurrence.
#[derive(Parser)]
#[command(version, about)]
#[cfg_attr(
    not(feature = "kafka"),
    command(
        after_help = "Built without the `kafka` feature: no `consume` or `replay-dead-letters` \
                          (cargo build --release --features kafka -p recur)"
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    #[cfg(feature = "kafka")]
    #[command(flatten)]
    Function(FunctionCommand),
    /// Lists the next occurrences of a rule, one per line (RFC 3339 UTC).
    Occurrences {
        /// RFC 5545 RRULE, e.g. FREQ=MONTHLY;BYDAY=-1FR
        #[arg(long)]
        rule: String,
        /// Local date-time in --tz, without offset: 2026-01-31T09:00[:00]
        #[arg(long)]
        dtstart: String,
        /// IANA time zone, e.g. Europe/Berlin
        #[arg(long)]
        tz: String,
        /// List occurrences strictly after this RFC 3339 instant (default now)
        #[arg(long)]
        after: Option<String>,
        /// List from the first occurrence (DTSTART included) instead of after now
        #[arg(long, conflicts_with = "after")]
        from_start: bool,
        /// How many occurrences to list
        #[arg(long)]
        count: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Occurrences {
            rule,
            dtstart,
            tz,
            after,
            from_start,
            count,
        }) => match recur::preview::occurrences(&rule, &dtstart, &tz, after.as_deref(), from_start, count) {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("recur occurrences: {e}");
                ExitCode::from(2)
            }
        },
        #[cfg(feature = "kafka")]
        Some(Command::Function(command)) => {
            let _telemetry = todo_events_host::telemetry::init("recur");
            let result = todo_events_kafka::cli::run_kafka_subcommand(command, build).await;
            exit_status("recur", result)
        }
        None => {
            let _telemetry = todo_events_host::telemetry::init("recur");
            exit_status(
                "recur",
                todo_events_host::function_binary::serve_http(build).await,
            )
        }
    }
}

fn build(store: todo_events_store::Store) -> anyhow::Result<recur::Recur> {
    let clock_skew = todo_events_host::config::clock_skew_tolerance()?;
    Ok(recur::Recur::new(store).with_clock_skew(clock_skew))
}
