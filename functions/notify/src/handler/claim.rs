//! Step 3, claim: each planned delivery is claimed by this call, or ends here.
//!
//! A claim is the delivery's row (`sending`, with a lease) taken before anything is sent, so
//! that two deliveries of one event (a redelivery while the first is still sending, two
//! consumers after a rebalance) never both send. New claims are taken in one statement, and
//! the deliveries claimed before are looked at together in another: a lease that ran out is
//! taken over, one that is finished answers duplicate, and those that another delivery holds
//! are waited for briefly, looked at again together (one statement per look) until they are
//! free, finished, or the wait is over. A webhook or push whose claim was given back until a
//! later retry time is not this event's to wait for (it is retried on its own schedule); an
//! e-mail's is (the relay is everyone's: the event is answered "unavailable" and comes
//! again).

use super::delivery::{Claimed, End, Ended, Planned};
use super::Notify;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::time::Duration as StdDuration;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::{DeliveryId, ReminderId};
use todo_events_host::Failure;
use todo_events_store::notify::{Claim, Held, NewClaim, Route};
use todo_events_store::{Channel, DeliveryStatus};
use tokio::time::Instant;

/// How long a delivery waits for a concurrent delivery of the same event to finish before
/// answering "in progress" (which Knative and the consumer retry).
const WAIT_FOR_OTHER: StdDuration = StdDuration::from_secs(5);
/// The pause between two looks at the claims another delivery holds.
const LOOK_AGAIN: StdDuration = StdDuration::from_millis(100);

/// A planned delivery with its place in the batch and what its claim came to.
type Looked<'c> = (usize, Planned<'c>, Result<Claim, Failure>);

impl Notify {
    /// Step 3: claims the `planned` deliveries, new claims in one statement, those claimed
    /// before in another ([`Notify::claim_held`]): the deliveries this call holds, and the
    /// ends of those whose claim is not ours ([`claimed`]), in the planned order.
    pub(super) async fn claim<'c>(&self, planned: Vec<Planned<'c>>) -> (Vec<Claimed<'c>>, Vec<End>) {
        let new: Vec<NewClaim<'c>> = planned.iter().map(Planned::new_claim).collect();
        let claimed_at = now();
        let fresh: HashMap<(ReminderId, Route), DeliveryId> = match self
            .store
            .claim_new_deliveries(&new, claimed_at, self.lease())
            .await
        {
            Ok(fresh) => fresh.into_iter().collect(),
            Err(e) => {
                let failure = Failure::from(e);
                let ended = planned.iter().map(|p| p.ended(Ended::Retry(failure.clone())));
                return (Vec::new(), ended.collect());
            }
        };
        let (mut holding, mut ended) = (Vec::with_capacity(planned.len()), Vec::new());
        for (_, delivery, claim) in self.with_claims(planned, &fresh, claimed_at).await {
            match claimed(delivery, claim) {
                Ok(claimed) => holding.push(claimed),
                Err(end) => ended.push(end),
            }
        }
        (holding, ended)
    }

    /// Each planned delivery with its claim, in the planned order: claimed now (`fresh`, at
    /// `claimed_at`), else as the deliveries claimed before came to ([`Notify::claim_held`]).
    async fn with_claims<'c>(
        &self,
        planned: Vec<Planned<'c>>,
        fresh: &HashMap<(ReminderId, Route), DeliveryId>,
        claimed_at: DateTime<Utc>,
    ) -> Vec<Looked<'c>> {
        let (mut looked, mut before) = (Vec::with_capacity(planned.len()), Vec::new());
        for (i, delivery) in planned.into_iter().enumerate() {
            match fresh.get(&(delivery.ctx.reminder_id, delivery.route)) {
                Some(&delivery_id) => looked.push((
                    i,
                    delivery,
                    Ok(Claim::Claimed {
                        delivery_id,
                        attempt: 1,
                        since: claimed_at,
                    }),
                )),
                None => before.push((i, delivery)),
            }
        }
        let claims: Vec<NewClaim<'c>> = before.iter().map(|(_, d)| d.new_claim()).collect();
        let found = self.claim_held(&claims).await;
        looked.extend(before.into_iter().zip(found).map(|((i, d), claim)| (i, d, claim)));
        looked.sort_by_key(|(i, ..)| *i);
        looked
    }

    /// Deliveries claimed before, one statement per look: each is taken over once its lease
    /// ran out, or reported as it ended; those another delivery holds are looked at again
    /// after a pause, until [`WAIT_FOR_OTHER`] has passed. A claim given back after a
    /// transient failure with a later retry time is not waited for ([`given_back`]). One
    /// answer per claim, in order.
    async fn claim_held(&self, claims: &[NewClaim<'_>]) -> Vec<Result<Claim, Failure>> {
        let deadline = Instant::now() + WAIT_FOR_OTHER;
        let mut answered = Vec::with_capacity(claims.len());
        let mut waiting: Vec<usize> = (0..claims.len()).collect();
        while !waiting.is_empty() {
            let asked: Vec<NewClaim<'_>> = waiting.iter().map(|&i| claims[i]).collect();
            let found = match self.store.claim_deliveries(&asked, now(), self.lease()).await {
                Ok(found) => found,
                Err(e) => {
                    let failure = Failure::from(e);
                    answered.extend(waiting.into_iter().map(|i| (i, Err(failure.clone()))));
                    break;
                }
            };
            let mut still = Vec::new();
            for (i, found) in waiting.into_iter().zip(found) {
                match looked_at(&claims[i], found, deadline) {
                    Some(answer) => answered.push((i, answer)),
                    None => still.push(i),
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(LOOK_AGAIN).await;
            }
        }
        answered.sort_by_key(|(i, _)| *i);
        answered.into_iter().map(|(_, answer)| answer).collect()
    }
}

/// What one look at `claim`, claimed before, came to: its answer, or `None` while another
/// delivery holds it and the wait is not over (`deadline`).
fn looked_at(claim: &NewClaim<'_>, found: Claim, deadline: Instant) -> Option<Result<Claim, Failure>> {
    match found {
        Claim::Taken {
            status: DeliveryStatus::Sending,
            detail: Some(reason),
            lease_until,
        } if lease_until - now() > Duration::from_std(WAIT_FOR_OTHER).unwrap_or_default() => {
            Some(given_back(claim, reason, lease_until))
        }
        Claim::Taken {
            status: DeliveryStatus::Sending,
            ..
        } if Instant::now() < deadline => None,
        Claim::Taken {
            status: DeliveryStatus::Sending,
            ..
        } => Some(Err(Failure::InProgress(format!(
            "reminder {} is being delivered by another request",
            claim.reminder_id
        )))),
        other => Some(Ok(other)),
    }
}

/// A claim given back after a transient failure, takeable again at `lease_until` (pure): an
/// e-mail's event is answered "unavailable" at once, a webhook's or push's claim is returned
/// as it is (retried on its own schedule).
fn given_back(claim: &NewClaim<'_>, reason: String, lease_until: DateTime<Utc>) -> Result<Claim, Failure> {
    if claim.route.channel != Channel::Email {
        return Ok(Claim::Taken {
            status: DeliveryStatus::Sending,
            detail: Some(reason),
            lease_until,
        });
    }
    Err(Failure::unavailable(format!(
        "the {} of reminder {} waits until {} (the receiver asked): {reason}",
        claim.route,
        claim.reminder_id,
        rfc3339(lease_until)
    )))
}

/// What a claim makes of a delivery (pure): claimed by this call, or its end. A user's
/// endpoint waiting for its retry time is not this event's to wait for (scheduled); a
/// delivery done before or being done by another is a duplicate; a claim that failed, a
/// retry.
fn claimed(delivery: Planned<'_>, claim: Result<Claim, Failure>) -> Result<Claimed<'_>, End> {
    match claim {
        Ok(Claim::Claimed {
            delivery_id,
            attempt,
            since,
        }) => Ok(Claimed {
            delivery,
            held: Held { delivery_id, attempt },
            since,
        }),
        Ok(Claim::Taken {
            status: DeliveryStatus::Sending,
            detail: Some(reason),
            ..
        }) if delivery.route.channel != Channel::Email => {
            let why = format!("{}: {reason} (retried on its own schedule)", delivery.route);
            Err(delivery.ended(Ended::Scheduled(why)))
        }
        Ok(Claim::Taken { status, detail, .. }) => Err(delivery.ended(Ended::Duplicate { status, detail })),
        Err(failure) => Err(delivery.ended(Ended::Retry(failure))),
    }
}
