//! How to reach the database. Its own module because both backends read it to open their
//! pool, beneath the [`crate::Store`] that picks one.

use std::time::Duration as StdDuration;

/// How to reach the database. `Debug` hides the password.
#[derive(Clone)]
pub struct StoreOptions {
    /// `postgres://…` or `sqlite://…` (a path; the file is created when missing).
    pub url: String,
    /// PostgreSQL pool size. SQLite always uses one connection: it has a single writer, and
    /// one connection turns writer contention into a queue instead of `SQLITE_BUSY` errors.
    pub max_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: StdDuration,
    /// PostgreSQL: plan each statement once per connection (`plan_cache_mode =
    /// force_generic_plan`) instead of at every execution. The functions' statements take
    /// their rows by key from bound arrays (`UNNEST($1::bigint[])`), so one plan fits every
    /// call, yet PostgreSQL's default keeps re-planning them (the generic plan's row estimate
    /// for an array looks costlier than a fresh plan for the values at hand), and planning
    /// cost more than executing (docs/PERFORMANCE.md, "What the figures say, and what was
    /// done about them", item 9). Off for the scheduler, whose claims filter by time ranges
    /// where a plan for the actual values can matter.
    pub generic_plans: bool,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &todo_events_domain::redact::passwords(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("generic_plans", &self.generic_plans)
            .finish()
    }
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: StdDuration::from_secs(3),
            generic_plans: false,
        }
    }
}

#[cfg(test)]
mod tests {
    /// The text redaction itself is tested where it lives (`todo_events_domain::redact`).
    #[test]
    fn debug_hides_the_password() {
        let opts = super::StoreOptions::new("postgres://app:s3cret@db/todo");
        assert!(!format!("{opts:?}").contains("s3cret"));
    }
}
