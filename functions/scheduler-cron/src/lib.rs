//! scheduler-cron: finds due reminders and recurring-task occurrences, claims them, publishes
//! one CloudEvent each and marks them published once the sink acknowledged them.
//!
//! - [`pass`] — one claim → publish → mark cycle (the logic): one loop for both kinds of
//!   item, what differs between them in `kind.rs`.
//! - [`catch_up`] — the missed-occurrence policy, decided without writing.
//! - `agenda.rs` — the users' daily agendas, the third kind of due item (decided without
//!   writing, like the catch-up).
//! - `poll.rs` — when passes run ([`pass::Mode`]).
//! - [`publish`] — where events go: HTTP sinks (the local stack, Knative `K_SINK`) or, with the
//!   `kafka` feature, Kafka topics (`KAFKA_BROKERS`), never both.
//! - [`config`] — its settings.

mod agenda;
pub mod catch_up;
pub mod config;
mod kind;
pub mod pass;
mod poll;
pub mod publish;
mod status;

pub use config::SchedulerConfig;
pub use pass::{PassReport, Scheduler};
pub use publish::{HttpPublisher, Publisher};
