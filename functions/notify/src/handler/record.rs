//! Step 5, record: what each attempted delivery came to is written, and the delivery ends.
//!
//! What was sent or failed for good is stored in one statement. A transient failure gives
//! its claim back instead: an e-mail's takeable from the relay's `Retry-After` (else at once)
//! and the event comes again; a webhook's or push's at its own retry time, or it is given up
//! after `CHANNEL_RETRY_ATTEMPTS` ([`super::retry`]); the batch's claims are given back in
//! one statement, before the outcomes are stored. A subscription that is gone is recorded
//! failed and, after the outcomes, its endpoint deactivated (the batch's in one statement).
//! Each write is fenced by the claim's token: a claim taken over meanwhile is not answered as
//! recorded ([`taken_over`]).

use super::delivery::{Attempted, End, Ended};
use super::retry::Releasing;
use super::Notify;
use crate::channels::SendError;
use std::time::Duration as StdDuration;
use todo_events_domain::time::now;
use todo_events_domain::DeliveryId;
use todo_events_host::Failure;
use todo_events_store::notify::{Finished, Held, Route};
use todo_events_store::StoreError;

/// Pauses between attempts to record outcomes while the database is away (doubling).
const RECORD_RETRY_FIRST: StdDuration = StdDuration::from_millis(100);
const RECORD_RETRY_MAX: StdDuration = StdDuration::from_secs(2);

/// The texts a delivery's record borrows: where it went, its message id, and why it was
/// given up (if it was).
struct Texts {
    recipient: String,
    message_id: String,
    given_up: Option<String>,
}

/// What is written for an attempted delivery.
enum Recording<'a> {
    /// Its outcome is stored.
    Finish(Finishing<'a>),
    /// It failed transiently and is not given up: its claim is given back
    /// ([`Notify::releasing`]).
    Release {
        reason: &'a str,
        retry_after: Option<StdDuration>,
    },
}

/// An outcome to store: the claim and the row's new state, the delivery's end once stored,
/// and why a gone subscription is gone (its endpoint is deactivated then).
struct Finishing<'a> {
    held: Held,
    finished: Finished<'a>,
    end: End,
    gone: Option<&'a str>,
}

impl Notify {
    /// Step 5: the claims given back ([`Notify::release`]), then the outcomes stored
    /// ([`Notify::finish`]); the deliveries' ends.
    pub(super) async fn record(
        &self,
        attempted: Vec<Attempted<'_>>,
        claims_expire: tokio::time::Instant,
    ) -> Vec<End> {
        let texts: Vec<Texts> = attempted.iter().map(|a| self.texts(a)).collect();
        let (mut releasing, mut finishing): (Vec<Releasing<'_>>, _) = (Vec::new(), Vec::new());
        for (a, texts) in attempted.iter().zip(&texts) {
            match recording(a, texts) {
                Recording::Finish(outcome) => finishing.push(outcome),
                Recording::Release { reason, retry_after } => {
                    releasing.push(self.releasing(a, reason, retry_after))
                }
            }
        }
        let mut ended = self.release(releasing).await;
        ended.extend(self.finish(finishing, claims_expire).await);
        ended
    }

    /// The texts `a`'s record borrows.
    fn texts(&self, a: &Attempted<'_>) -> Texts {
        let given_up = match &a.sent {
            Err(SendError::Transient { reason, .. }) => self.gives_up(&a.claimed, reason),
            _ => None,
        };
        let delivery = &a.claimed.delivery;
        Texts {
            recipient: delivery.recipient(),
            message_id: delivery.message_id(),
            given_up,
        }
    }

    /// Stores the outcomes in one statement ([`Notify::store_outcomes`]), then deactivates
    /// the endpoints of subscriptions that are gone: the deliveries' ends, a retry for each
    /// when the outcomes could not be stored.
    async fn finish(&self, finishing: Vec<Finishing<'_>>, claims_expire: tokio::time::Instant) -> Vec<End> {
        let outcomes: Vec<(Held, Finished<'_>)> =
            finishing.iter().map(|f| (f.held, f.finished.clone())).collect();
        let kept = match self.store_outcomes(&outcomes, claims_expire).await {
            Ok(kept) => kept,
            Err(e) => {
                let failure = Failure::from(e);
                let retry = |f: Finishing<'_>| End {
                    ended: Ended::Retry(failure.clone()),
                    ..f.end
                };
                return finishing.into_iter().map(retry).collect();
            }
        };
        let (mut ended, mut gone) = (Vec::with_capacity(finishing.len()), Vec::new());
        for Finishing {
            held, end, gone: why, ..
        } in finishing
        {
            gone.extend(why.map(|why| (end.route, why)));
            ended.push(match kept.contains(&held.delivery_id) {
                true => end,
                false => End {
                    ended: taken_over(end.route, held, "its outcome", end.ended.word()),
                    ..end
                },
            });
        }
        self.deactivate(gone).await;
        ended
    }

    /// Deactivates the endpoints of subscriptions that are gone, in one statement.
    async fn deactivate(&self, gone: Vec<(Route, &str)>) {
        let gone: Vec<_> = gone
            .into_iter()
            .filter_map(|(route, detail)| Some((route, route.endpoint?, detail)))
            .collect();
        for (route, endpoint, detail) in &gone {
            tracing::info!(endpoint_id = endpoint.get(), "deactivating {route}: {detail}");
        }
        let endpoints: Vec<_> = gone
            .iter()
            .map(|&(_, endpoint, detail)| (endpoint, detail))
            .collect();
        if let Err(e) = self.store.deactivate_endpoints(&endpoints, now()).await {
            for (route, ..) in &gone {
                tracing::warn!("could not deactivate {route}: {e}");
            }
        }
    }

    /// Stores the outcomes of deliveries that were made. Until they are stored, a
    /// redelivery would make them again once their claims' lease has run out; so a
    /// database that is briefly away (a restart, a dropped connection) is waited out while
    /// the claims are still ours.
    async fn store_outcomes(
        &self,
        finished: &[(Held, Finished<'_>)],
        claims_expire: tokio::time::Instant,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let mut pause = RECORD_RETRY_FIRST;
        loop {
            match self.store.finish_deliveries(finished, now()).await {
                Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < claims_expire => {
                    tracing::warn!(
                        "the outcome of {} deliveries is not recorded yet, retrying in {pause:?}: {e}",
                        finished.len()
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
                other => return other,
            }
        }
    }
}

/// What is written for attempted delivery `a` (pure): its outcome (sent, failed for good,
/// gone), or its claim given back after a transient failure that is not given up.
fn recording<'a>(a: &'a Attempted<'_>, texts: &'a Texts) -> Recording<'a> {
    let (recipient, message_id) = (texts.recipient.as_str(), texts.message_id.as_str());
    let (finished, ended, gone) = match (&a.sent, &texts.given_up) {
        (Ok(place), _) => (
            Finished::Sent {
                recipient,
                message_id,
            },
            Ended::Sent {
                message_id: message_id.to_owned(),
                place: place.clone(),
            },
            None,
        ),
        (Err(SendError::Permanent(detail)), _) | (Err(SendError::Transient { .. }), Some(detail)) => (
            Finished::Failed { recipient, detail },
            Ended::Failed(detail.clone()),
            None,
        ),
        (Err(SendError::Gone(detail)), _) => (
            Finished::Failed { recipient, detail },
            Ended::Gone(format!("{detail} (the endpoint was deactivated)")),
            Some(detail.as_str()),
        ),
        (Err(SendError::Transient { reason, retry_after }), None) => {
            return Recording::Release {
                reason,
                retry_after: *retry_after,
            }
        }
    };
    let (held, end) = (a.claimed.held, a.ended(ended));
    Recording::Finish(Finishing {
        held,
        finished,
        end,
        gone,
    })
}

/// A delivery whose claim was taken over by another delivery while this one was sending
/// (its lease ran out): `what` (its outcome, its release) changed nothing, and the outcome
/// is the other claimer's to record. Logged; the event comes again and then finds how the
/// delivery ended.
pub(super) fn taken_over(route: Route, held: Held, what: &str, would_be: &str) -> Ended {
    tracing::warn!(
        delivery_id = held.delivery_id.get(),
        attempt = held.attempt,
        "the claim on the {route} was taken over while it was sending (its lease ran out): \
         {what} ({would_be}) was not recorded"
    );
    Ended::Retry(Failure::InProgress(format!(
        "the {route} was taken over by another delivery; its outcome is recorded by that one"
    )))
}
