//! notify: receives `dev.todo.reminder.due` and delivers the reminder on each channel it
//! names (e-mail, webhooks, Web Push), each delivery once.
//!
//! - [`handler`] — the logic, as its steps (look the recipient up, skip what is no longer
//!   relevant, claim each delivery, send, record the outcomes, answer).
//! - `plan` — which deliveries a reminder asks for (pure).
//! - [`mail`] — the message (text + HTML templates in the recipient's time zone) and the mailers
//!   (`smtp`, `file`, `stdout`); see `docs/EMAIL.md`.
//! - [`i18n`] — messages in the user's language: Fluent texts, ICU4X dates and times.
//! - [`config`] — settings from the environment.
//! - [`channels`] — the channels beside e-mail: webhooks (Standard Webhooks signatures), Web
//!   Push (RFC 8291 encryption, RFC 8292 VAPID) and the guard on user-given targets; see
//!   `docs/CHANNELS.md`.

mod agenda;
pub mod channels;
pub mod config;
pub mod event;
pub mod handler;
pub(crate) mod hide;
pub mod i18n;
pub mod mail;
pub(crate) mod plan;
pub(crate) mod resting;

pub use config::NotifyConfig;
pub use handler::Notify;
