//! Test support shared by the integration tests of every crate: a fresh database on each
//! backend, a function served on a random port, fixtures and CloudEvents requests, the shared
//! bad-input table ([`bad_requests`] for requests, [`bad_stored`] for stored data, both read
//! from `data/bad_requests.json`).
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test gets a database of its own, dropped when the test is done. When PostgreSQL is
//! unreachable the PostgreSQL half of a test is skipped with a message, except under
//! `CI=true`, where it fails ([`require`] has every such need).
//!
//! One module per concern, each item re-exported here so that tests write
//! `todo_events_testkit::reminder` whatever module holds it: [`db`] (databases), [`app`] (a
//! function in process and what is posted to it), [`fixtures`] (rows and their events),
//! [`process`] (the binaries out of process), [`venv`] (the Python of the peers),
//! [`reference`] (what the differential tests share); and the
//! peers and tables by name ([`smtp`], [`webhook`], [`kafka`], [`oidc`], [`slow`],
//! [`bad_requests`], [`bad_stored`], [`hostile`]).

pub mod app;
pub mod bad_requests;
pub mod bad_stored;
pub mod db;
pub mod fixtures;
pub mod hostile;
pub mod kafka;
pub mod oidc;
mod peer;
pub mod process;
pub mod reference;
pub mod require;
pub mod slow;
pub mod smtp;
pub mod venv;
pub mod webhook;

pub use app::{assert_unavailable, metric, reply, spawn, spawn_with, TestApp};
pub use bad_requests::{assert_bad_cases_rejected, bad_cases, BadCase, BAD_CASES};
pub use db::{backends, postgres, sqlite, unreachable_store, TestDb, UNREACHABLE_STORE_TEXT};
pub use fixtures::{
    at, recurring, reminder, reminder_with_webhook, user, webhook_endpoint, RecurringFixture, ReminderFixture,
};
pub use process::{binary, kafka_binary, machine_busy_seconds, output_lines, signal, Signal};
pub use venv::python;
