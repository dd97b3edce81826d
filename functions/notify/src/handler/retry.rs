//! A delivery that failed transiently: given back until it is tried again, or given up.
//!
//! E-mail goes through the operator's relay, shared by every user: its transient failure
//! is the event's (`503`, retried; the claim takeable again from the relay's `Retry-After`,
//! else at once). A user's own webhook or push endpoint is not allowed to hold the event up:
//! its transient failure gives the claim back until its own retry time
//! (`CHANNEL_RETRY_FIRST` doubling per attempt, at least the receiver's `Retry-After`, at
//! most [`CHANNEL_RETRY_CAP`]: [`retry_wait`]) and the event is answered `2xx` with the other
//! deliveries done; the scheduler's retry pass publishes the event again at that time, and
//! after `CHANNEL_RETRY_ATTEMPTS` attempts the delivery is given up (`failed`, with why:
//! [`Notify::gives_up`]). A batch's claims are given back together, in one statement
//! ([`Notify::release`]).

use super::delivery::{Attempted, Claimed, End, Ended};
use super::record::taken_over;
use super::Notify;
use crate::config::CHANNEL_RETRY_CAP;
use chrono::Duration;
use std::time::Duration as StdDuration;
use todo_events_domain::time::now;
use todo_events_domain::HumanDuration;
use todo_events_host::Failure;
use todo_events_store::notify::Release;
use todo_events_store::Channel;

/// A transiently failed claim to give back ([`Notify::release`]), and how its delivery ends
/// once it is.
pub(super) struct Releasing<'a> {
    pub release: Release<'a>,
    pub end: End,
}

impl Notify {
    /// Why a webhook or push delivery that failed transiently is given up now (its last
    /// attempt allowed), or `None`: retried (or an e-mail, whose event is retried).
    pub(super) fn gives_up(&self, c: &Claimed<'_>, reason: &str) -> Option<String> {
        if c.delivery.route.channel == Channel::Email || c.held.attempt < self.config.channels.retry_attempts
        {
            return None;
        }
        let over = (now() - c.since).to_std().unwrap_or_default();
        let over = StdDuration::from_secs(over.as_secs());
        Some(format!(
            "gave up after {} attempts over {}: {reason}",
            c.held.attempt,
            HumanDuration(over)
        ))
    }

    /// How a transiently failed claim is given back, and how its delivery ends once it is:
    /// an e-mail's event is retried (the relay is everyone's); a webhook or push is retried
    /// on its own schedule, the event not held up.
    pub(super) fn releasing<'a>(
        &self,
        a: &Attempted<'_>,
        reason: &'a str,
        retry_after: Option<StdDuration>,
    ) -> Releasing<'a> {
        let held = a.claimed.held;
        let route = a.claimed.delivery.route;
        let (wait, end) = match route.channel {
            Channel::Email => (
                retry_after.unwrap_or_default(),
                Ended::Retry(Failure::unavailable(reason.to_owned())),
            ),
            _ => {
                let wait = retry_wait(self.config.channels.retry_first, held.attempt, retry_after);
                let said = format!(
                    "{route}: {reason} (attempt {} of {}; retried in {})",
                    held.attempt,
                    self.config.channels.retry_attempts,
                    HumanDuration(wait)
                );
                (wait, Ended::Scheduled(said))
            }
        };
        let until = now() + Duration::from_std(wait).unwrap_or_default();
        Releasing {
            release: Release { held, reason, until },
            end: a.ended(end),
        }
    }

    /// Gives the claims back, in one statement: each delivery's end, or, where its claim
    /// was taken over meanwhile, that ([`taken_over`]); a retry for each when the statement
    /// failed (the claims run out with their lease; until then the events must come again).
    pub(super) async fn release(&self, releasing: Vec<Releasing<'_>>) -> Vec<End> {
        let releases: Vec<Release<'_>> = releasing.iter().map(|r| r.release).collect();
        let released = self
            .store
            .release_deliveries(&releases)
            .await
            .map_err(|e| (e.to_string(), Failure::from(e)));
        let ended = |Releasing { release, end }: Releasing<'_>| {
            let held = release.held;
            let ended = match &released {
                Ok(ids) if ids.contains(&held.delivery_id) => return end,
                Ok(_) => taken_over(end.route, held, "its release", end.ended.word()),
                Err((e, failure)) => {
                    tracing::warn!("could not release delivery {}: {e}", held.delivery_id);
                    Ended::Retry(failure.clone())
                }
            };
            End { ended, ..end }
        };
        releasing.into_iter().map(ended).collect()
    }
}

/// The wait before the next attempt of a webhook or push delivery whose attempt `attempt`
/// failed transiently (pure): `first` (`CHANNEL_RETRY_FIRST`) doubled per attempt, at most
/// [`CHANNEL_RETRY_CAP`], and never before the receiver's `Retry-After`.
pub(super) fn retry_wait(first: StdDuration, attempt: i32, retry_after: Option<StdDuration>) -> StdDuration {
    let doublings = (attempt.clamp(1, 21) - 1) as u32;
    let backoff = first.saturating_mul(1u32 << doublings).min(CHANNEL_RETRY_CAP);
    backoff.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_endpoint_waits_longer_each_attempt_never_before_retry_after_at_most_an_hour() {
        let s = StdDuration::from_secs;
        let waits: Vec<u64> = (1..=9).map(|a| retry_wait(s(30), a, None).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(
            retry_wait(s(30), 1, Some(s(300))),
            s(300),
            "Retry-After is longer"
        );
        assert_eq!(retry_wait(s(30), 3, Some(s(7))), s(120), "the backoff is longer");
        assert_eq!(retry_wait(s(30), i32::MAX, None), s(3600), "capped, no overflow");
        assert_eq!(retry_wait(s(30), 0, None), s(30));
    }
}
