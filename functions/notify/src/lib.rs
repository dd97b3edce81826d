//! notify: receives `dev.todo.reminder.due` and sends the reminder e-mail, once.
//!
//! - [`handler`] — the logic (look the recipient up, skip what is no longer relevant, claim the
//!   delivery, send, record the outcome).
//! - [`mail`] — the message (text + HTML templates in the recipient's time zone) and the mailers
//!   (`smtp`, `file`, `stdout`); see `docs/EMAIL.md`.
//! - [`config`] — settings from the environment.
//! - [`channels`] — the channels beside e-mail: webhooks (Standard Webhooks signatures), Web
//!   Push (RFC 8291 encryption, RFC 8292 VAPID) and the guard on user-given targets. Not yet
//!   wired into the handler (issue "channels": endpoints table, claims per endpoint, config).

pub mod channels;
pub mod config;
pub mod handler;
pub mod mail;

pub use config::NotifyConfig;
pub use handler::Notify;
