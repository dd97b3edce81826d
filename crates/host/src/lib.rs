//! The function host: everything the three functions share around their handler logic.
//!
//! A function is a [`Function`]: it names the one event type it accepts and turns a parsed
//! event into a [`Reply`] or a [`Failure`]. The host does the rest the same way for every
//! function: CloudEvents decoding (binary, structured, the seed system's Dapr envelope),
//! RFC 9457 problems, reply events, health, Prometheus metrics, load shedding, graceful
//! shutdown, configuration from the environment and logging.

pub mod auth;
pub mod config;
pub mod function;
pub mod function_binary;
pub mod group_commit;
pub mod metrics;
pub mod oidc;
pub mod reply;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod trim;

pub use auth::Auth;
pub use function::{Answers, Event, EventData, Failure, Function, Outcome, Reply, Slots};
pub use group_commit::GroupCommit;
pub use server::{serve, serve_health, serve_host, Host, HostOptions};
pub use shutdown::Shutdown;
pub use todo_events_decode::problem::Problem;
/// CloudEvent decoding and problem details live in their own crate (`todo-events-decode`,
/// which the fuzz targets build alone); they keep their paths here.
pub use todo_events_decode::{decode, problem};
