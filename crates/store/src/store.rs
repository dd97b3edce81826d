//! The [`Store`](crate::Store)'s methods, one module per concern, each an `impl Store` block
//! that picks the backend's function and does nothing a backend should (only what both
//! share: skipping empty batches, sorting claims, checking a rule before it is written).
//!
//! These sit on top: they import the backends (`postgres/`, `sqlite/`) and the shared
//! modules (`rows`, `notify`, `recur`, `scheduler`, `seed`, `options`, `error`), and nothing
//! imports them (a method needs no import). The backends import only the shared modules, and
//! the shared modules import no backend and no method here, so each module's dependencies
//! point one way: shared ← backends ← these.

/// `$body` with `$pool` bound to the store's pool, whichever backend it is: for a method
/// whose statements (or whose backend's statements, picked before) run the same way on both.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::Store::Postgres($pool) => $body,
            $crate::Store::Sqlite($pool) => $body,
        }
    };
}

mod agenda;
mod history;
mod notify;
mod open;
mod recur;
mod scheduler;
mod sealed;
mod seed;
mod status;
