//! CloudEvent decoding and problem details, without a web framework.
//!
//! The host (`todo-events-host`) and the Kafka consumer (`todo-events-kafka`) accept events
//! through [`decode`]; every rejection, there and in the host, is a [`Problem`]. They live in a
//! crate of their own so that the fuzz targets (`fuzz/`) build exactly the code they test: the
//! decoding runs on attacker-controlled bytes, and fuzzing it must not wait for a sanitized
//! build of actix-web and sqlx. The host turns on the `actix` feature, which answers a
//! `Problem` as an actix-web error.

pub mod decode;
pub mod problem;

pub use problem::{Challenge, Problem};
