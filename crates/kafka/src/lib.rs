//! The Kafka event path (CloudEvents Kafka protocol binding, binary mode).
//!
//! - [`config`] — broker connection settings shared by producer and consumers.
//! - [`producer`] — an idempotent, `acks=all` producer of CloudEvents keyed by user id.
//! - [`consumer`] — the functions' direct consumer mode (the `keda/` deployment): one consumer
//!   group per function, per-partition order, offsets stored only after the effect is
//!   recorded, retries with backoff, dead letters to `<topic>.dlq`.
//! - [`dead_letters`] — dead-letter records and their replay after a fix.
//! - [`admin`] — topic creation and consumer-lag inspection (tests, operators).
//! - [`cli`] — the Kafka subcommands of the function binaries: `consume`,
//!   `replay-dead-letters` (their HTTP default is `todo_events_host::function_binary`).
//!
//! All of it is the crate's `kafka` feature: without it the crate is empty and links no
//! librdkafka, whose build needs cmake, pkg-config and OpenSSL headers. `cargo test
//! --workspace` builds every member of the workspace, this one too, and on a bare machine it
//! must build (README, "What the tests need").
#![cfg(feature = "kafka")]

pub mod admin;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod producer;

pub use config::KafkaConfig;
pub use producer::EventProducer;
