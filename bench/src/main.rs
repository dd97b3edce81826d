//! The benchmarks behind `docs/PERFORMANCE.md`.
//!
//! Every figure is measured beside its limit in the same run, on loopback, against the real
//! parts: PostgreSQL (the machine's, on 127.0.0.1:5432), the Tansu Kafka-protocol broker
//! (in-memory storage, so the broker's disk is not what is measured), and the tests' SMTP
//! server. The functions run as their stripped release binaries with their default settings
//! unless a row says otherwise. Load comes from `wrk` and `pgbench`.
//!
//! `bench/run` is the one command (it installs `wrk` when missing); the table is printed and
//! written to `target/bench/results.md`, the raw figures to `target/bench/results.json`.

mod env;
mod history;
mod http;
mod kafka;
mod occurrences;
mod peer;
mod prune;
mod report;
mod scripts;
mod slow;
mod startup;
mod year;

use clap::Parser;
use report::Report;

#[derive(Parser, Debug)]
#[command(about = "Measures todo-events beside its limits (see docs/PERFORMANCE.md)")]
struct Args {
    /// Sections to run (default: all but prune): http, startup, recurrence, scheduler,
    /// lateness, consumer, slow, history, prune.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seconds each load-generator run lasts.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    seconds: u64,
    /// Items the scheduler and consumer benchmarks move.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1_000..=1_000_000))]
    items: u64,
    /// Due items of the history section's scheduler and consumer rows, and its today's
    /// history (the ×100 history is a hundred times as many rows).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1_000..=100_000))]
    history_items: u64,
    /// Finished deliveries the prune section seeds for `todo-events prune` to delete.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1_000..=100_000_000))]
    prune_rows: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    const SECTIONS: [&str; 9] = [
        "http",
        "startup",
        "recurrence",
        "scheduler",
        "lateness",
        "consumer",
        "slow",
        "history",
        "prune",
    ];
    for s in &args.only {
        anyhow::ensure!(
            SECTIONS.contains(&s.as_str()),
            "unknown section {s:?}; one of {}",
            SECTIONS.join(", ")
        );
    }
    // `prune` seeds 10 M rows: only when asked for.
    let wanted = |s: &str| (args.only.is_empty() && s != "prune") || args.only.iter().any(|o| o == s);
    let env = env::Env::prepare().await?;
    let mut report = Report::new(&env);
    if wanted("http") {
        http::measure(&env, &mut report, args.seconds).await?;
    }
    if wanted("startup") {
        startup::measure(&env, &mut report).await?;
    }
    if wanted("recurrence") {
        occurrences::measure(&env, &mut report)?;
    }
    if wanted("scheduler") {
        kafka::scheduler(&env, &mut report, args.items).await?;
    }
    if wanted("lateness") {
        kafka::lateness(&env, &mut report, kafka::DueTimes::WholeSecond).await?;
        kafka::lateness(&env, &mut report, kafka::DueTimes::AcrossTheSecond).await?;
    }
    if wanted("consumer") {
        kafka::consumers(&env, &mut report, args.items).await?;
    }
    if wanted("slow") {
        slow::measure(&env, &mut report).await?;
    }
    if wanted("history") {
        history::measure(&env, &mut report, args.seconds, args.history_items).await?;
    }
    if wanted("prune") {
        prune::measure(
            &env,
            &mut report,
            args.seconds,
            args.history_items,
            args.prune_rows,
        )
        .await?;
    }
    report.finish(&env)?;
    Ok(())
}
