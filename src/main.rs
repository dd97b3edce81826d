//! `todo-events`: the local front door. The whole system in one process on embedded
//! defaults (`demo`, `up`), the database chores (`migrate`, `seed`), and the check of an
//! installation's prerequisites (`doctor`).

mod doctor;
mod stack;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use todo_events_domain::HumanDuration;
use todo_events_host::config::var_or;
use todo_events_host::startup::{exit_status, DEFAULT_DATABASE_URL};
use todo_events_store::seed::Bulk;
use todo_events_store::{Store, StoreOptions};

#[derive(Parser)]
#[command(version, about = "Event-driven reminders and recurring tasks for a todo app")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole system in one process with demo data: SQLite ./todo-events.db, mail in ./outbox/
    Demo,
    /// The same stack without demo data, on DATABASE_URL (default the SQLite file)
    Up,
    /// Apply the migrations to DATABASE_URL and exit
    Migrate,
    /// Bulk synthetic data for trials and benchmarks
    Seed {
        /// Number of users
        #[arg(long, default_value_t = 1)]
        users: usize,
        /// Number of reminders (each on its own task)
        #[arg(long, default_value_t = 0)]
        reminders: usize,
        /// Number of recurring tasks (daily)
        #[arg(long, default_value_t = 0)]
        recurring: usize,
        /// Make everything due this long from now (default: due now), e.g. 30s, 5m
        #[arg(long, value_name = "DURATION")]
        due_in: Option<HumanDuration>,
    },
    /// Check an installation's prerequisites (cluster, Kafka, database): one line per
    /// finding, each missing one with the command that fixes it; exit 1 if any is missing
    Doctor(doctor::DoctorArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = todo_events_host::telemetry::init("todo-events");
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => exit_status("todo-events", Err(e)),
    }
}

async fn open_store() -> anyhow::Result<Store> {
    let url: String = var_or("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?;
    let store = Store::open(&StoreOptions::new(url))
        .map_err(|e| todo_events_host::config::ConfigError(e.to_string()))?;
    store.migrate().await?;
    Ok(store)
}

/// The command's exit status: success, or `doctor`'s 1 when something is missing (an error
/// becomes one line and its status in `main`).
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Migrate => {
            open_store().await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed {
            users,
            reminders,
            recurring,
            due_in,
        } => {
            let store = open_store().await?;
            // Whole seconds: the recurring tasks' DTSTART is written to the second, and their
            // first occurrence must be exactly it.
            let due = chrono::SubsecRound::trunc_subsecs(
                todo_events_domain::time::now() + due_in.map(|d| d.to_chrono()).unwrap_or_default(),
                0,
            );
            let dtstart = due.format("%Y-%m-%dT%H:%M:%S").to_string();
            let (u, r, c) = store
                .seed_bulk(&Bulk {
                    users,
                    reminders,
                    recurring,
                    due_at: due,
                    recurring_rule: "FREQ=DAILY",
                    recurring_dtstart: &dtstart,
                })
                .await?;
            println!(
                "seeded {u} user(s), {r} reminder(s) and {c} daily recurring task(s), due at {}",
                todo_events_domain::time::rfc3339(due)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Up => {
            let opts = stack::StackOptions::from_env()?;
            stack::StackOptions::warn_not_honoured();
            stack::serve_all(opts, false).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Demo => stack::serve_all(stack::StackOptions::demo(), true)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Doctor(args) => doctor::run(args).await,
    }
}
