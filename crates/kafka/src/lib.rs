//! The Kafka event path (CloudEvents Kafka protocol binding, binary mode).
//!
//! - [`config`] — broker connection settings shared by producer and consumers.
//! - [`producer`] — an idempotent, `acks=all` producer of CloudEvents keyed by user id.
//! - [`consumer`] — the functions' direct consumer mode (the `keda/` deployment): one consumer
//!   group per function, per-partition order, offsets stored only after the effect is
//!   recorded, retries with backoff, dead letters to `<topic>.dlq`.
//! - [`dead_letters`] — dead-letter records and their replay after a fix.
//! - [`admin`] — topic creation and consumer-lag inspection (tests, operators).
//! - [`cli`] — the command line the function binaries share: HTTP (default), `consume`,
//!   `replay-dead-letters`.

pub mod admin;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod producer;

pub use config::KafkaConfig;
pub use producer::EventProducer;
