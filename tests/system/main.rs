//! The whole system as a user runs it, in one test binary: the daily agenda (`agenda`), the
//! command line (`cli`), the installation check `todo-events doctor` (`doctor`), a user erased on request
//! (`history`), the
//! scheduler's HTTP sinks (`http_sinks`) and the channels' retries (`channel_retries`), the
//! manifests checked against the code (`manifests`), what keeps users from turning reminders
//! off (`reminders_kept`), secrets at rest (`sealed`), secrets kept out of every output (`secrets`), the Kafka path end to
//! end with the short rehearsal of the manifests (`kafka`), and last the timing comparisons
//! that need the machine to themselves (`timing`).
//!
//! One binary, as in *Zero To Production*'s `tests/api/main.rs`: its tests run side by side
//! (four at once: `.cargo/config.toml`), and most of them wait (for brokers,
//! leases, retries and cron minutes: the Kafka tests and the rehearsal used 11-15 % of two
//! cores, measured), so one after another in six binaries they were the longest part of CI
//! (issue 27, item 7). `kafka::turns` keeps at most two brokers and stacks on the machine at
//! once and gives the timing comparisons the machine alone. libtest starts tests in the order
//! of their names, which is why the rehearsal (`kafka::cluster`, four minutes) starts before
//! the end-to-end tests and `timing` comes last.

mod agenda;
mod channel_retries;
mod cli;
mod doctor;
mod history;
mod http_sinks;
mod kafka;
mod manifests;
mod reminders_kept;
mod sealed;
mod secrets;
#[cfg(feature = "kafka")]
mod timing;
