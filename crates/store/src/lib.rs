//! The todo database, on PostgreSQL (production) or SQLite (the embedded default), with one
//! behaviour on both: the same tables, the same claims, the same once-only effects.
//!
//! Each backend has its own module, `postgres/` and `sqlite/`, where every statement is
//! written once for that backend as plain code; where the dialects differ (row locks,
//! arrays, set-based batches against row loops) each says it in its own SQL. [`Store`] is
//! the one place that picks the backend: each of its methods matches on the pool and calls
//! the backend's function. The conformance suite (`tests/conformance.rs`) runs every
//! statement on both backends and expects the same results.
//!
//! The modules depend one way. Beneath: what both backends take and give, with no call into
//! either ([`rows`], [`notify`], [`recur`], [`scheduler`], [`seed`], the options and the
//! error). Above them the backends, which import only those. On top the [`Store`]'s methods
//! (`store/`, one module per concern), which import both and pick a backend. This file keeps
//! the module list, the [`Store`] itself and the re-exports that give every type its path.
//!
//! Rows come out typed ([`rows`]): ids, states, statuses, the catch-up policy, reminder
//! offsets and the parsed rule. A stored value that does not parse is a [`Malformed`] error
//! naming its row.

pub mod agenda;
mod error;
pub mod history;
pub mod notify;
mod options;
mod postgres;
pub mod recur;
pub mod rows;
pub mod scheduler;
pub mod sealed;
pub mod seed;
mod sqlite;
pub mod status;
mod store;

/// The PostgreSQL statements of the functions' hot paths, exactly as they are sent. The
/// benchmarks build their pgbench scripts from these (bench/src/scripts.rs), so each limit
/// they report is measured on the same SQL the function runs, with the same round trips.
pub mod statements {
    pub use crate::postgres::notify::{CLAIM_NEW_DELIVERIES, FINISH_DELIVERIES, REMINDER_CONTEXTS};
    pub use crate::postgres::recur::{INSTANTIATE, RECURRING_STATE};
}

pub use error::StoreError;
pub use options::StoreOptions;
pub use rows::*;

use sqlx::{PgPool, SqlitePool};

/// A handle on the database; cheap to clone (pools are shared). Its methods are in `store/`,
/// one module per concern.
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}
