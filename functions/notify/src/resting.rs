//! Endpoints resting after a transient failure: not tried again before their retry time.
//!
//! A user's webhook that times out costs the batch it is in up to `WEBHOOK_TIMEOUT` (the
//! batch answers once every delivery has), and in consume mode a partition's batches go one
//! after another, so every later event on the partition waits too: one user's hanging
//! endpoint multiplied its neighbours' p99 lateness, one timeout per batch holding the bad
//! user's reminder (tests/system/kafka/end_to_end.rs; the figures in docs/CHANNELS.md, "A failing
//! endpoint holds up only itself"). So an endpoint that failed transiently rests until the
//! retry time its failed delivery was given: a delivery to it meanwhile is not sent but
//! released until then, like one that failed (the record step of [`crate::handler`]), and the
//! endpoint costs the partition one `WEBHOOK_TIMEOUT` per retry period, not one per batch. A
//! success ends the rest. Per process: each notify learns on its own.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use todo_events_domain::EndpointId;

/// Endpoints at rest, and until when.
#[derive(Default)]
pub(crate) struct Resting {
    until: Mutex<HashMap<EndpointId, DateTime<Utc>>>,
}

impl Resting {
    /// When `endpoint` may be tried again, if it rests at `now`.
    pub fn until(&self, endpoint: EndpointId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.until.lock().expect("not poisoned");
        until.get(&endpoint).copied().filter(|t| *t > now)
    }

    /// `endpoint` failed transiently at `now`: it rests until `until` (the later of two).
    pub fn failed(&self, endpoint: EndpointId, now: DateTime<Utc>, until: DateTime<Utc>) {
        let mut map = self.until.lock().expect("not poisoned");
        // Rests that are over are forgotten, so the map holds only failing endpoints.
        map.retain(|_, t| *t > now);
        let t = map.entry(endpoint).or_insert(until);
        *t = (*t).max(until);
    }

    /// `endpoint` answered: its rest (if any) is over.
    pub fn answered(&self, endpoint: EndpointId) {
        self.until.lock().expect("not poisoned").remove(&endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_rests_until_its_retry_time_and_an_answer_ends_it() {
        let resting = Resting::default();
        let (e, other) = (EndpointId::new(7).unwrap(), EndpointId::new(8).unwrap());
        let t0: DateTime<Utc> = "2026-12-06T09:00:00Z".parse().unwrap();
        let later = |s| t0 + chrono::Duration::seconds(s);
        assert_eq!(resting.until(e, t0), None);
        resting.failed(e, t0, later(30));
        assert_eq!(resting.until(e, later(29)), Some(later(30)));
        assert_eq!(resting.until(e, later(30)), None, "not after its retry time");
        assert_eq!(resting.until(other, later(1)), None, "only the failing endpoint");
        // A shorter rest never shortens a longer one.
        resting.failed(e, later(1), later(10));
        assert_eq!(resting.until(e, later(20)), Some(later(30)));
        resting.answered(e);
        assert_eq!(resting.until(e, later(1)), None);
    }
}
