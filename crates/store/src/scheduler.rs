//! The scheduler's side of the database: batch claims with a lease, and marking published.
//!
//! A claim moves due rows to "being published by `owner` until `lease end`" in one
//! statement. On PostgreSQL the candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so
//! concurrent schedulers take disjoint batches without waiting on each other; on SQLite the
//! statement is atomic because there is one writer. Rows are marked published only by the
//! owner of the claim and only after the sink acknowledged them; if the scheduler dies
//! first, the lease runs out and the rows are claimed (and published, same ids) again.
//!
//! The statements are in `postgres/scheduler.rs` and `sqlite/scheduler.rs`, and the
//! [`crate::Store`] methods that pick one in `store/scheduler.rs`; this module holds what a
//! claim asks for and calls no backend, so the backends import it without a circle.

use chrono::{DateTime, Duration, Utc};

pub use crate::rows::{ClaimedOccurrence, ClaimedReminder};

/// Publishes of one item at most, the first included: an item whose effect never happens
/// (a reminder of a task done meanwhile, which notify skips) is not republished forever.
pub const PUBLISH_LIMIT: i32 = 4;

/// What a claim asks for.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// Who claims (`SCHEDULER_OWNER`): only the owner marks its claims published.
    pub owner: &'a str,
    pub now: DateTime<Utc>,
    /// How long the claim is held.
    pub lease: Duration,
    /// At most this many rows.
    pub limit: i64,
    /// Items published this long ago without effect are claimed again (fewer than
    /// [`PUBLISH_LIMIT`] times); `None`: never.
    pub republish_after: Option<Duration>,
}

impl<'a> ClaimRequest<'a> {
    /// What `owner` asks for at `now`: at most `limit` rows for `lease`, and again those
    /// published `republish_after` ago without effect.
    pub fn new(
        owner: &'a str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        republish_after: Option<Duration>,
    ) -> Self {
        Self {
            owner,
            now,
            lease,
            limit,
            republish_after,
        }
    }

    pub(crate) fn lease_until(&self) -> DateTime<Utc> {
        self.now + self.lease
    }

    /// Items published before this instant without effect are claimed again; none when
    /// republishing is off.
    pub(crate) fn republish_before(&self) -> DateTime<Utc> {
        self.republish_after
            .map_or(DateTime::<Utc>::UNIX_EPOCH, |after| self.now - after)
    }
}
