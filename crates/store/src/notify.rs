//! notify's side of the database: the reminder context and the delivery claim.
//!
//! A delivery is claimed (a `sending` row, unique on reminder + remind_at + channel) before
//! anything is sent and finished (`sent` / `failed`) after. A claim carries a lease: if the
//! process dies mid-send, a later delivery of the same event takes the claim over once the
//! lease has run out. That is the one window in which a second e-mail can go out.
//!
//! The statements are in `postgres/notify.rs` and `sqlite/notify.rs`; this module holds what
//! both take and give.

use crate::DeliveryStatus;
use chrono::{DateTime, Utc};
use todo_events_domain::{DeliveryId, ReminderId};

/// The result of trying to claim a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim and must send, then finish or release it.
    Claimed { delivery_id: DeliveryId, attempt: i32 },
    /// Someone else holds a live claim, or the delivery is already finished.
    Taken {
        status: DeliveryStatus,
        detail: Option<String>,
    },
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

/// A delivery to claim: the reminder occurrence and the event that asks for it.
#[derive(Debug, Clone, Copy)]
pub struct NewClaim<'a> {
    pub reminder_id: ReminderId,
    pub remind_at: DateTime<Utc>,
    pub event_id: &'a str,
}

/// Rows of the claim statements, typed (both backends return the same shapes).
pub(crate) mod read {
    use super::Claim;
    use crate::rows::{id, parse};
    use crate::Malformed;
    use todo_events_domain::{DeliveryId, ReminderId};

    /// `(reminder_id, id)` of newly claimed deliveries.
    pub(crate) fn claimed(rows: Vec<(i64, i64)>) -> Result<Vec<(ReminderId, DeliveryId)>, Malformed> {
        rows.into_iter()
            .map(|(reminder, delivery)| {
                Ok((
                    id("deliveries", delivery, "reminder_id", reminder, ReminderId::new)?,
                    id("deliveries", delivery, "id", delivery, DeliveryId::new)?,
                ))
            })
            .collect()
    }

    /// `(id, attempts)` of a claim taken.
    pub(crate) fn claim((delivery, attempt): (i64, i32)) -> Result<Claim, Malformed> {
        Ok(Claim::Claimed {
            delivery_id: id("deliveries", delivery, "id", delivery, DeliveryId::new)?,
            attempt,
        })
    }

    /// `(status, detail)` of a claim somebody else holds, or a finished delivery.
    pub(crate) fn taken(
        reminder: ReminderId,
        (status, detail): (String, Option<String>),
    ) -> Result<Claim, Malformed> {
        Ok(Claim::Taken {
            status: parse(
                "deliveries",
                reminder.get(),
                "status (of reminder's delivery)",
                &status,
            )?,
            detail,
        })
    }
}
