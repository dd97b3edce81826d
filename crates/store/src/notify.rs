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
//! The statements are in `postgres/notify.rs` and `sqlite/notify.rs`; this module holds what
//! both take and give.

use crate::{Channel, DeliveryStatus};
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

/// Rows of the claim statements, typed (both backends return the same shapes).
pub(crate) mod read {
    use super::{Claim, Claimed, Route};
    use crate::rows::{id, parse};
    use crate::Malformed;
    use chrono::{DateTime, Utc};
    use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

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
    pub(crate) fn claim((delivery, attempt, since): (i64, i32, DateTime<Utc>)) -> Result<Claim, Malformed> {
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
        (status, detail, lease_until): (String, Option<String>, DateTime<Utc>),
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

/// Moves a reminder occurrence with no delivery left `sending` to `sent` (some delivery
/// was sent) or `failed`: SQLite's last step of finishing, and on both backends the repair
/// when a redelivery finds every delivery finished but the reminder not (two deliveries of
/// one occurrence finished at once on PostgreSQL, each before seeing the other's commit).
/// Same text on both backends.
pub(crate) const SETTLE_REMINDER: &str = "UPDATE reminders SET state = CASE WHEN EXISTS \
       (SELECT 1 FROM deliveries d WHERE d.reminder_id = $1 AND d.remind_at = $2 \
        AND d.status = 'sent') THEN 'sent' ELSE 'failed' END, \
     lease_owner = NULL, lease_until = NULL, updated_at = $3 \
     WHERE id = $1 AND remind_at = $2 AND state <> 'cancelled' \
     AND EXISTS (SELECT 1 FROM deliveries d WHERE d.reminder_id = $1 AND d.remind_at = $2) \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.reminder_id = $1 \
       AND d.remind_at = $2 AND d.status = 'sending')";

/// Gives a claim back after a transient failure: takeable from `until` (its retry time),
/// only by the claim that holds the row (`attempts = $4`, the fencing token). Same text on
/// both backends.
pub(crate) const RELEASE_DELIVERY: &str = "UPDATE deliveries SET lease_until = $2, detail = $3 \
     WHERE id = $1 AND status = 'sending' AND attempts = $4";

/// A claim's first claim time and take-over, shared by both backends: a new claim, and the
/// take-over of one whose lease ran out (or that was released), incrementing the fencing
/// token. `first_claimed_at` is kept from the first claim (`claimed_at` for rows older than
/// migration 0005).
pub(crate) const INSERT_CLAIM: &str = "INSERT INTO deliveries \
     (reminder_id, remind_at, channel, endpoint_id, event_id, status, attempts, claimed_at, \
      lease_until, first_claimed_at) \
     VALUES ($1, $2, $3, $4, $5, 'sending', 1, $6, $7, $6) \
     ON CONFLICT (reminder_id, remind_at, channel, endpoint_id) DO NOTHING \
     RETURNING id, attempts, first_claimed_at";
pub(crate) const TAKE_OVER: &str = "UPDATE deliveries SET attempts = attempts + 1, event_id = $5, \
     claimed_at = $6, lease_until = $7, detail = NULL, \
     first_claimed_at = COALESCE(first_claimed_at, claimed_at) \
     WHERE reminder_id = $1 AND remind_at = $2 AND channel = $3 AND endpoint_id = $4 \
     AND status = 'sending' AND lease_until <= $6 RETURNING id, attempts, first_claimed_at";
pub(crate) const CURRENT: &str = "SELECT status, detail, lease_until FROM deliveries \
     WHERE reminder_id = $1 AND remind_at = $2 AND channel = $3 AND endpoint_id = $4";

/// Every delivery of a reminder (operators, tests). Same text on both backends.
pub(crate) const DELIVERIES_OF: &str = "SELECT id, reminder_id, remind_at, channel, endpoint_id, \
     event_id, status, attempts, recipient, message_id, detail FROM deliveries \
     WHERE reminder_id = $1 ORDER BY id";
