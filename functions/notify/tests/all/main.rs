//! notify's tests, one binary (as *Zero To Production*'s `tests/api/main.rs`): each module was
//! a test binary of its own. One binary links once, and its tests run side by side (libtest
//! runs as many at once as there are cores) where they mostly wait: for an SMTP server, a
//! webhook receiver, a timeout. `smtp` captures the logs of every test here to search them for
//! the SMTP password (its `capture_logs`); nothing else installs a subscriber.

mod bad_stored;
mod batch;
/// What the channel tests share: notify's app with its channel settings, outcomes and mails
/// (`app`), and a notice to send (`notice`).
mod channels {
    pub mod app;
    pub mod notice;
}
mod claims;
mod deliveries;
mod hostile;
mod http;
mod quiet_hours;
mod reset;
mod retention;
mod round_trips;
mod sealed;
mod settings;
mod slow_clients;
mod smtp;
mod webhook;
mod webpush;
