//! `todo-events`: the local front door. The whole system in one process on embedded
//! defaults (`demo`, `up`), the database chores (`migrate`, `seed`, `prune`, `erase-user`),
//! and the check of an installation's prerequisites (`doctor`).

mod doctor;
mod stack;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use todo_events_domain::time::now;
use todo_events_domain::{HumanDuration, Retention, UserId};
use todo_events_host::config::var_or;
use todo_events_host::startup::{exit_status, DEFAULT_DATABASE_URL};
use todo_events_store::history::{Prune, Pruned};
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
    /// Delete the history older than its retention now, batch after batch until none is
    /// left (what each scheduler pass does a little of; docs/DESIGN.md, "History")
    Prune {
        /// Deliveries finished longer ago go, e.g. 30d, or off [default: HISTORY_RETENTION, else 30d]
        #[arg(long, value_name = "PERIOD", allow_hyphen_values = true)]
        older_than: Option<Retention>,
        /// Status events recorded longer ago go, or off [default: NOTIFICATION_EVENTS_RETENTION, else 30d]
        #[arg(long, value_name = "PERIOD", allow_hyphen_values = true)]
        statuses_older_than: Option<Retention>,
        /// Rows per statement [default: HISTORY_PRUNE_BATCH, else 1000]
        #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch: Option<i64>,
        /// The share of the time spent deleting, in percent: after each batch it pauses for
        /// the rest, so that the functions' latency stays as it was; 100: as fast as the
        /// database goes
        #[arg(long, value_name = "PERCENT", default_value_t = 5, allow_hyphen_values = true,
              value_parser = clap::value_parser!(u32).range(1..=100))]
        duty: u32,
    },
    /// Erase a user on request: cancel their open reminders, stop their recurring tasks,
    /// anonymise their deliveries, delete their endpoints, preferences, agenda deliveries and
    /// status events (docs/DESIGN.md, "Erasing a user"). The todo app deletes its own rows.
    EraseUser {
        /// The user's id (users.id)
        #[arg(value_parser = parse_user_id, allow_hyphen_values = true)]
        user_id: UserId,
        /// How long to wait for sends of theirs in flight to end, to anonymise what they
        /// record (0s: not at all)
        #[arg(
            long,
            value_name = "DURATION",
            default_value = "5m",
            allow_hyphen_values = true
        )]
        wait: HumanDuration,
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
            let keys = todo_events_host::config::secrets_keys()?;
            let store = open_store().await?;
            println!("migrations applied");
            if let Some(key) = keys.sealing_id() {
                let sealed = seal_all(&store, &keys).await?;
                println!(
                    "sealed the secrets of {} endpoint(s) with key {key}{}",
                    sealed.sealed,
                    match sealed.unopened {
                        0 => String::new(),
                        n => format!("; {n} sealed with a key SECRETS_KEYS does not hold (left as they are)"),
                    }
                );
            }
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
        Command::Prune {
            older_than,
            statuses_older_than,
            batch,
            duty,
        } => {
            let p = Prune {
                deliveries_before: retention(older_than, "HISTORY_RETENTION")?.cutoff(now()),
                statuses_before: retention(statuses_older_than, "NOTIFICATION_EVENTS_RETENTION")?
                    .cutoff(now()),
                batch: match batch {
                    Some(b) => b,
                    None => prune_batch()?,
                },
            };
            let store = open_store().await?;
            let started = std::time::Instant::now();
            let mut pruned = Pruned::default();
            loop {
                let took = std::time::Instant::now();
                let batch = store.prune(&p).await?;
                pruned.add(batch);
                if !batch.full(p.batch) {
                    break;
                }
                tokio::time::sleep(took.elapsed() * (100 - duty) / duty).await;
            }
            println!("pruned {pruned} in {:.1} s", started.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Command::EraseUser { user_id, wait } => erase_user(user_id, wait).await,
    }
}

/// Seals every endpoint's secrets stored plain or under an older key (the migration to
/// secrets at rest, and a key rotation's last step).
async fn seal_all(
    store: &Store,
    keys: &todo_events_store::sealed::Keys,
) -> anyhow::Result<todo_events_store::sealed::SealedRows> {
    let (mut done, mut from) = (todo_events_store::sealed::SealedRows::default(), Some(0));
    while let Some(start) = from {
        let (batch, next) = store.seal_endpoints(keys, start, 1_000).await?;
        done.add(batch);
        from = next;
    }
    Ok(done)
}

/// A user id as the command line gives it: a positive integer.
fn parse_user_id(s: &str) -> Result<UserId, String> {
    s.trim()
        .parse::<i64>()
        .ok()
        .and_then(UserId::new)
        .ok_or_else(|| format!("{s:?} is not a user id (a positive integer, users.id)"))
}

/// The flag's retention, else the setting's, else 30 days.
fn retention(flag: Option<Retention>, setting: &str) -> anyhow::Result<Retention> {
    Ok(match flag {
        Some(r) => r,
        None => var_or(setting, scheduler_cron::config::DEFAULT_RETENTION)?,
    })
}

fn prune_batch() -> anyhow::Result<i64> {
    let batch: i64 = var_or("HISTORY_PRUNE_BATCH", scheduler_cron::config::DEFAULT_PRUNE_BATCH)?;
    if !(1..=100_000).contains(&batch) {
        anyhow::bail!(todo_events_host::config::ConfigError(format!(
            "HISTORY_PRUNE_BATCH={batch} must be between 1 and 100000"
        )));
    }
    Ok(batch)
}

/// Erases `user`, then, if a send of theirs was in flight, waits (at most `wait`) until its
/// lease is over and erases again what it recorded.
async fn erase_user(user: UserId, wait: HumanDuration) -> anyhow::Result<ExitCode> {
    let store = open_store().await?;
    let erased = store.erase_user(user, now()).await?;
    println!("erased user {user}: {erased}");
    if let Some(until) = erased.in_flight_until {
        let left = (until - now()).to_std().unwrap_or_default() + std::time::Duration::from_secs(1);
        if left > wait.0 {
            println!(
                "a send to them is in flight until {}: run erase-user again after it to anonymise what it records",
                todo_events_domain::time::rfc3339(until)
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "a send to them is in flight until {}; waiting to anonymise what it records",
            todo_events_domain::time::rfc3339(until)
        );
        tokio::time::sleep(left).await;
        let again = store.erase_user(user, now()).await?;
        println!("erased user {user} again: {again}");
    }
    Ok(ExitCode::SUCCESS)
}
