//! recur's tests, one binary (as *Zero To Production*'s `tests/api/main.rs`): each module was
//! a test binary of its own. One binary links once, and its tests run side by side (libtest
//! runs as many at once as there are cores). `common` is what the recurrence tests share: the
//! reference answers and how to compare them.

mod batch;
mod common;
mod differential;
mod hostile;
mod http;
mod occurrences_cli;
mod store_validation;
mod worked_examples;
