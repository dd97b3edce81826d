//! The Kafka subcommands every function binary built with the `kafka` feature has: `consume`
//! consumes the function's topic directly (health and metrics stay on `PORT`);
//! `replay-dead-letters` moves dead letters back onto the topic after a fix. Without a
//! subcommand a function binary serves HTTP, which needs no Kafka and starts from
//! `todo_events_host::function_binary` (so a binary without the feature does not link
//! librdkafka).

use crate::config::KafkaConfig;
use crate::consumer::{self, ConsumerOptions};
use crate::dead_letters;
use std::sync::Arc;
use todo_events_host::function_binary::settings;
use todo_events_host::{serve_health, Function, Host, Shutdown};
use todo_events_store::Store;

/// Subcommands shared by `notify` and `recur`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FunctionCommand {
    /// Consume the function's Kafka topic directly (group KAFKA_GROUP, default the function's name)
    Consume,
    /// Move dead letters from <topic>.dlq back onto <topic> (run after fixing their cause)
    ReplayDeadLetters {
        /// Replay at most this many
        #[arg(long)]
        limit: Option<usize>,
        /// Only list them (source and reason), replay nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs the Kafka subcommand `command` of the function that `build` makes from the store.
pub async fn run_kafka_subcommand<F: Function>(
    command: FunctionCommand,
    build: impl FnOnce(Store) -> anyhow::Result<F>,
) -> anyhow::Result<()> {
    let common = settings()?;
    match command {
        FunctionCommand::Consume => {
            let kafka = KafkaConfig::from_env()?;
            let function = build(common.open_store().await?)?;
            function.check_at_start().await?;
            let host = Host::new(Arc::new(function));
            let shutdown = Shutdown::on_signals();
            let listener = common.listener()?;
            let options = ConsumerOptions {
                topic: kafka.topic_for(F::ACCEPTS).to_owned(),
                group: kafka.group.clone().unwrap_or_else(|| F::NAME.to_owned()),
                kafka,
            };
            let http = serve_health(host.clone(), listener, common.host.clone(), shutdown.clone());
            let background = host.clone();
            let consume = consumer::consume(host, options, shutdown.clone());
            let (http, consumed) = tokio::join!(http, async {
                let r = consume.await;
                // The consumer ending (error or shutdown) ends the process.
                shutdown.trigger();
                r
            });
            // What the last batches left going on alone (notify's slow webhooks) ends and is
            // recorded before the process does.
            let finishing = background.function().finish_background();
            if tokio::time::timeout(common.host.shutdown_timeout, finishing)
                .await
                .is_err()
            {
                tracing::warn!(
                    function = F::NAME,
                    "shutdown timeout: background work left unfinished"
                );
            }
            consumed?;
            http?;
            Ok(())
        }
        FunctionCommand::ReplayDeadLetters { limit, dry_run } => {
            let kafka = KafkaConfig::from_env()?;
            let topic = kafka.topic_for(F::ACCEPTS).to_owned();
            let group = kafka.group.clone().unwrap_or_else(|| F::NAME.to_owned());
            let report =
                dead_letters::replay(&kafka, &topic, &group, limit.unwrap_or(usize::MAX), dry_run).await?;
            let verb = if dry_run { "listed" } else { "replayed" };
            println!(
                "{verb} {} dead letter(s) from {}",
                report.replayed,
                dead_letters::topic_for(&topic)
            );
            Ok(())
        }
    }
}
