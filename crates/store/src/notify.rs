//! notify's side of the database: the reminder context and the delivery claims.
//!
//! A reminder occurrence is delivered once per [`Route`]: e-mail to the user's address, and
//! each active endpoint of the user on every other channel the reminder names. Each delivery
//! is claimed (a `sending` row, unique on reminder + remind_at + channel + endpoint) before
//! anything is sent and finished (`sent` / `failed`) after. A claim carries a lease: if the
//! process dies mid-send, a later delivery of the same event takes the claim over once the
//! lease has run out. That is the one window in which a second copy can go out.
//!
//! Claims are fenced: each claim of a row carries its `attempts` value (a take-over
//! increments it) as a token, and finishing or releasing a claim succeeds only while that
//! token still holds the row (`AND attempts = $token`). A claimer whose lease ran out while
//! it was sending can therefore neither release the claim of the one that took over (which
//! would let a third copy go out) nor record its own outcome over theirs; it learns so from
//! what the statement changed.
//!
//! A claim given back after a transient failure (`release`) is a delivery waiting for its
//! retry: `sending`, `detail` set to why, takeable from `lease_until`. The scheduler's
//! retry pass publishes the reminder's event again once that time has come
//! (`scheduler.rs`), so a user's failing endpoint is retried on its own schedule.
//!
//! The reminder itself moves to `sent` (some delivery was sent) or `failed` (all failed for
//! good) once no delivery of its occurrence is `sending` any more, so a channel that is
//! retried keeps the reminder `published` (and the scheduler's republish armed) without
//! holding back or repeating the channels that are done.
//!
//! Each step of a batch is one statement whatever the batch holds (PostgreSQL: over bound
//! arrays; SQLite, in-process, loops in one transaction): the read (with, for a moved
//! reminder, whether the event's own time was sent), the new claims, the claims made before,
//! the releases, the outcomes, the deactivations, the settling.
//!
//! The statements are in `postgres/notify.rs` and `sqlite/notify.rs`, and the
//! [`crate::Store`] methods that pick one in `store/notify.rs`; this module holds what both
//! take and give, and calls no backend, so the backends import it without a circle.

use crate::rows::{Channel, DeliveryStatus, Malformed, ReminderContext};
use chrono::{DateTime, Utc};
use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

/// Where one delivery of a reminder goes: e-mail (no endpoint), or one endpoint of the
/// user's on a channel beside e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub channel: Channel,
    pub endpoint: Option<EndpointId>,
}

impl Route {
    pub const EMAIL: Route = Route {
        channel: Channel::Email,
        endpoint: None,
    };

    /// `deliveries.endpoint_id`: 0 for e-mail.
    pub(crate) fn endpoint_id(self) -> i64 {
        self.endpoint.map_or(0, EndpointId::get)
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.endpoint {
            None => write!(f, "{}", self.channel),
            Some(id) => write!(f, "{} endpoint {id}", self.channel),
        }
    }
}

/// The result of trying to claim a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim and must send, then finish or release it. `attempt` is
    /// the claim's fencing token (see [`Held`]); `since`: when the delivery was first
    /// claimed (its retries are counted from there).
    Claimed {
        delivery_id: DeliveryId,
        attempt: i32,
        since: DateTime<Utc>,
    },
    /// Someone else holds a claim (until `lease_until`: a claim released after a transient
    /// failure is held until the receiver's `Retry-After`), or the delivery is finished.
    Taken {
        status: DeliveryStatus,
        detail: Option<String>,
        lease_until: DateTime<Utc>,
    },
}

/// A claim this caller holds: the delivery and the claim's fencing token (the row's
/// `attempts` when it was claimed). Finishing or releasing it changes the row only while
/// no take-over has incremented `attempts` since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Held {
    pub delivery_id: DeliveryId,
    pub attempt: i32,
}

/// How a claimed delivery ended.
#[derive(Debug, Clone)]
pub enum Finished<'a> {
    Sent { recipient: &'a str, message_id: &'a str },
    Failed { recipient: &'a str, detail: &'a str },
}

impl Finished<'_> {
    /// The columns a finished delivery writes: status, recipient, message id, detail.
    pub(crate) fn columns(&self) -> (DeliveryStatus, &str, Option<&str>, Option<&str>) {
        match *self {
            Finished::Sent {
                recipient,
                message_id,
            } => (DeliveryStatus::Sent, recipient, Some(message_id), None),
            Finished::Failed { recipient, detail } => (DeliveryStatus::Failed, recipient, None, Some(detail)),
        }
    }
}

/// A delivery to claim: the reminder occurrence, where it goes, and the event that asks.
#[derive(Debug, Clone, Copy)]
pub struct NewClaim<'a> {
    pub reminder_id: ReminderId,
    pub remind_at: DateTime<Utc>,
    pub route: Route,
    pub event_id: &'a str,
}

/// A newly claimed delivery: which reminder and route, and its row.
pub type Claimed = ((ReminderId, Route), DeliveryId);

/// A reminder as a batch's read found it for the event that names it
/// ([`crate::Store::reminder_contexts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The reminder with its task, recipient and endpoints, or why its row cannot be read.
    pub context: Result<ReminderContext, Malformed>,
    /// The event names another time than the reminder's (it was moved since) and a delivery
    /// at the event's time was `sent`: the event is a duplicate. `false` when not moved.
    pub sent_at_event_time: bool,
}

/// A claim given back after a transient failure: takeable again from `until` (its retry
/// time), `reason` kept for operators. Only the claim that holds the row releases it (fenced
/// by its token, see [`Held`]).
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    pub held: Held,
    pub reason: &'a str,
    pub until: DateTime<Utc>,
}

/// Rows of the read and claim statements, typed (both backends return the same shapes).
pub(crate) mod read {
    use super::{Claim, Claimed, Found, NewClaim, Route};
    use crate::error::StoreError;
    use crate::rows::{id, parse, Malformed, ReminderContext, ReminderContextRaw};
    use chrono::{DateTime, Utc};
    use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

    /// A row of the contexts read: the reminder's columns, and whether the event's time was
    /// sent (see [`Found`]).
    #[derive(sqlx_macros::FromRow)]
    pub(crate) struct FoundRaw {
        #[sqlx(flatten)]
        context: ReminderContextRaw,
        sent_at_event_time: bool,
    }

    impl From<FoundRaw> for Found {
        fn from(raw: FoundRaw) -> Self {
            Found {
                context: ReminderContext::try_from(raw.context),
                sent_at_event_time: raw.sent_at_event_time,
            }
        }
    }

    /// A claim taken over: `(id, attempts, first_claimed_at)`.
    pub(crate) type TakenOver = (i64, i32, DateTime<Utc>);
    /// A claim as found: `(status, detail, lease_until)`.
    pub(crate) type Current = (String, Option<String>, DateTime<Utc>);

    /// What delivery `c`, claimed before, came to: taken over by this call, else as found
    /// (held by another claim, given back until later, or finished); neither means its row
    /// is gone (its reminder was deleted meanwhile).
    pub(crate) fn held(
        c: &NewClaim<'_>,
        taken_over: Option<TakenOver>,
        current: Option<Current>,
    ) -> Result<Claim, StoreError> {
        match (taken_over, current) {
            (Some(row), _) => Ok(claim(row)?),
            (None, Some(row)) => Ok(taken(c.reminder_id, row)?),
            (None, None) => Err(StoreError::Other(format!(
                "the {} of reminder {} has no delivery to claim (deleted?)",
                c.route, c.reminder_id
            ))),
        }
    }

    /// `(reminder_id, channel, endpoint_id, id)` of newly claimed deliveries.
    pub(crate) fn claimed(rows: Vec<(i64, String, i64, i64)>) -> Result<Vec<Claimed>, Malformed> {
        const T: &str = "deliveries";
        rows.into_iter()
            .map(|(reminder, channel, endpoint, delivery)| {
                let route = Route {
                    channel: parse(T, delivery, "channel", &channel)?,
                    endpoint: EndpointId::new(endpoint),
                };
                Ok((
                    (id(T, delivery, "reminder_id", reminder, ReminderId::new)?, route),
                    id(T, delivery, "id", delivery, DeliveryId::new)?,
                ))
            })
            .collect()
    }

    /// `(id, attempts, first_claimed_at)` of a claim taken.
    pub(crate) fn claim((delivery, attempt, since): TakenOver) -> Result<Claim, Malformed> {
        Ok(Claim::Claimed {
            delivery_id: id("deliveries", delivery, "id", delivery, DeliveryId::new)?,
            attempt,
            since,
        })
    }

    /// `(status, detail, lease_until)` of a claim somebody else holds, or a finished
    /// delivery.
    pub(crate) fn taken(
        reminder: ReminderId,
        (status, detail, lease_until): Current,
    ) -> Result<Claim, Malformed> {
        Ok(Claim::Taken {
            status: parse(
                "deliveries",
                reminder.get(),
                "status (of reminder's delivery)",
                &status,
            )?,
            detail,
            lease_until,
        })
    }
}

/// Every delivery of a reminder (operators, tests). Same text on both backends.
pub(crate) const DELIVERIES_OF: &str = "SELECT id, reminder_id, remind_at, channel, endpoint_id, \
     event_id, status, attempts, recipient, message_id, detail FROM deliveries \
     WHERE reminder_id = $1 ORDER BY id";
