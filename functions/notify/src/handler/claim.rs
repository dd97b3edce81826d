//! Step 3, claim: each planned delivery is claimed by this call, or ends here.
//!
//! A claim is the delivery's row (`sending`, with a lease) taken before anything is sent, so
//! that two deliveries of one event (a redelivery while the first is still sending, two
//! consumers after a rebalance) never both send. New claims are taken in one statement; a
//! delivery claimed before is looked at on its own: another delivery that holds it is waited
//! for briefly, a lease that ran out is taken over, and one that is finished answers
//! duplicate. A webhook or push whose claim was given back until a later retry time is not
//! this event's to wait for (it is retried on its own schedule); an e-mail's is (the relay is
//! everyone's: the event is answered "unavailable" and comes again).

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

/// How long a delivery waits for a concurrent delivery of the same event to finish before
/// answering "in progress" (which Knative and the consumer retry).
const WAIT_FOR_OTHER: StdDuration = StdDuration::from_secs(5);

impl Notify {
    /// Step 3: claims the `planned` deliveries, new claims in one statement, the others one
    /// by one ([`Notify::claim_held`]): the deliveries this call holds, and the ends of
    /// those whose claim is not ours ([`claimed`]).
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
        for delivery in planned {
            let claim = match fresh.get(&(delivery.ctx.reminder_id, delivery.route)) {
                Some(&delivery_id) => Ok(Claim::Claimed {
                    delivery_id,
                    attempt: 1,
                    since: claimed_at,
                }),
                None => self.claim_held(&delivery.new_claim()).await,
            };
            match claimed(delivery, claim) {
                Ok(claimed) => holding.push(claimed),
                Err(end) => ended.push(end),
            }
        }
        (holding, ended)
    }

    /// A delivery claimed before: waits briefly while another delivery of the same event
    /// holds it, takes it over once its lease ran out, or reports how it ended. A claim
    /// given back after a transient failure with a later retry time is not waited for
    /// ([`given_back`]).
    async fn claim_held(&self, claim: &NewClaim<'_>) -> Result<Claim, Failure> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let found = self.store.claim_delivery(claim, now(), self.lease()).await?;
            match found {
                Claim::Taken {
                    status: DeliveryStatus::Sending,
                    detail: Some(reason),
                    lease_until,
                } if lease_until - now() > Duration::from_std(WAIT_FOR_OTHER).unwrap_or_default() => {
                    return given_back(claim, reason, lease_until);
                }
                Claim::Taken {
                    status: DeliveryStatus::Sending,
                    ..
                } if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(StdDuration::from_millis(100)).await;
                }
                Claim::Taken {
                    status: DeliveryStatus::Sending,
                    ..
                } => {
                    return Err(Failure::InProgress(format!(
                        "reminder {} is being delivered by another request",
                        claim.reminder_id
                    )))
                }
                other => return Ok(other),
            }
        }
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
