//! The start of a function binary (`notify`, `recur`) as an HTTP function: its settings and
//! store from the environment, then the function served on `PORT` until SIGTERM / Ctrl-C.
//!
//! This is the whole of a function binary built without the `kafka` feature, and why it lives
//! here rather than beside the Kafka subcommands (`todo_events_kafka::cli`): the HTTP path of
//! the demo and of the Knative Services must not link librdkafka, whose build needs cmake and
//! OpenSSL headers that a bare machine lacks. The Kafka subcommands start from the same
//! [`settings`], so a function reads its environment the same way whichever path runs.

use crate::startup::{serve_on_port, CommonSettings};
use crate::Function;
use todo_events_store::Store;

/// The settings of a function binary: [`CommonSettings`] from the environment, with the store opened
/// the way functions use it.
pub fn settings() -> anyhow::Result<CommonSettings> {
    let mut common = CommonSettings::from_env()?;
    // The functions' statements are keyed lookups: plan them once (see StoreOptions).
    common.database.generic_plans = true;
    Ok(common)
}

/// Serves the function that `build` makes from the store over HTTP on `PORT`, until SIGTERM
/// or Ctrl-C.
pub async fn serve_http<F: Function>(build: impl FnOnce(Store) -> anyhow::Result<F>) -> anyhow::Result<()> {
    let common = settings()?;
    let function = build(common.open_store().await?)?;
    function.check_at_start().await?;
    serve_on_port(function, &common).await
}
