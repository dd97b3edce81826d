//! notify's side of the database: the reminder context and the delivery claim.
//!
//! A delivery is claimed (a `sending` row, unique on reminder + remind_at + channel) before
//! anything is sent and finished (`sent` / `failed`) after. A claim carries a lease: if the
//! process dies mid-send, a later delivery of the same event takes the claim over once the
//! lease has run out. That is the one window in which a second e-mail can go out.

use crate::{on_pool, DeliveryRow, ReminderContext, Store, StoreError};
use chrono::{DateTime, Duration, Utc};

/// The result of trying to claim a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim and must send, then finish or release it.
    Claimed { delivery_id: i64, attempt: i32 },
    /// Someone else holds a live claim, or the delivery is already finished.
    Taken { status: String, detail: Option<String> },
}

/// How a claimed delivery ended.
#[derive(Debug, Clone)]
pub enum Finished<'a> {
    Sent { recipient: &'a str, message_id: &'a str },
    Failed { recipient: &'a str, detail: &'a str },
}

impl Store {
    pub async fn reminder_context(&self, reminder_id: i64) -> Result<Option<ReminderContext>, StoreError> {
        const SQL: &str = "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
             t.title AS task_title, t.description AS task_description, t.status AS task_status, \
             t.due_at AS task_due_at, u.email, u.display_name, u.timezone \
             FROM reminders r JOIN tasks t ON t.id = r.task_id JOIN users u ON u.id = r.user_id \
             WHERE r.id = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).bind(reminder_id).fetch_optional(pool).await?))
    }

    /// Claims the e-mail delivery of `reminder_id` at `remind_at` for `lease`.
    pub async fn claim_delivery(
        &self,
        reminder_id: i64,
        remind_at: DateTime<Utc>,
        event_id: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        const INSERT: &str = "INSERT INTO deliveries \
             (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) \
             VALUES ($1, $2, 'email', $3, 'sending', 1, $4, $5) \
             ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING RETURNING id, attempts";
        // Take over a claim whose holder vanished (lease over) or released it after a
        // transient failure.
        const TAKE_OVER: &str = "UPDATE deliveries SET attempts = attempts + 1, event_id = $3, \
             claimed_at = $4, lease_until = $5 \
             WHERE reminder_id = $1 AND remind_at = $2 AND channel = 'email' \
             AND status = 'sending' AND lease_until <= $4 RETURNING id, attempts";
        const CURRENT: &str = "SELECT status, detail FROM deliveries \
             WHERE reminder_id = $1 AND remind_at = $2 AND channel = 'email'";
        let until = now + lease;
        on_pool!(self, pool => {
            let inserted: Option<(i64, i32)> = sqlx::query_as(INSERT)
                .bind(reminder_id).bind(remind_at).bind(event_id).bind(now).bind(until)
                .fetch_optional(pool).await?;
            if let Some((delivery_id, attempt)) = inserted {
                return Ok(Claim::Claimed { delivery_id, attempt });
            }
            let taken: Option<(i64, i32)> = sqlx::query_as(TAKE_OVER)
                .bind(reminder_id).bind(remind_at).bind(event_id).bind(now).bind(until)
                .fetch_optional(pool).await?;
            if let Some((delivery_id, attempt)) = taken {
                return Ok(Claim::Claimed { delivery_id, attempt });
            }
            let (status, detail): (String, Option<String>) = sqlx::query_as(CURRENT)
                .bind(reminder_id).bind(remind_at)
                .fetch_one(pool).await?;
            Ok(Claim::Taken { status, detail })
        })
    }

    /// Records the outcome of a claimed delivery and moves the reminder to `sent` / `failed`,
    /// in one transaction.
    pub async fn finish_delivery(
        &self,
        delivery_id: i64,
        outcome: Finished<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const DELIVERY: &str = "UPDATE deliveries SET status = $2, recipient = $3, message_id = $4, \
             detail = $5, completed_at = $6 WHERE id = $1 AND status = 'sending' \
             RETURNING reminder_id, remind_at";
        const REMINDER: &str = "UPDATE reminders SET state = $3, lease_owner = NULL, lease_until = NULL, \
             updated_at = $4 WHERE id = $1 AND remind_at = $2 AND state <> 'cancelled'";
        let (status, recipient, message_id, detail) = match outcome {
            Finished::Sent {
                recipient,
                message_id,
            } => ("sent", recipient, Some(message_id), None),
            Finished::Failed { recipient, detail } => ("failed", recipient, None, Some(detail)),
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: Option<(i64, DateTime<Utc>)> = sqlx::query_as(DELIVERY)
                .bind(delivery_id).bind(status).bind(recipient).bind(message_id).bind(detail).bind(now)
                .fetch_optional(&mut *tx).await?;
            if let Some((reminder_id, remind_at)) = row {
                sqlx::query(REMINDER).bind(reminder_id).bind(remind_at).bind(status).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Gives a claim back after a transient failure, so the next delivery attempt can take
    /// it at once; the reason is kept for operators.
    pub async fn release_delivery(
        &self,
        delivery_id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE deliveries SET lease_until = $2, detail = $3 \
             WHERE id = $1 AND status = 'sending'";
        on_pool!(self, pool => {
            sqlx::query(SQL).bind(delivery_id).bind(now).bind(reason).execute(pool).await?;
        });
        Ok(())
    }

    /// All delivery records of a reminder (for operators and tests).
    pub async fn deliveries_of(&self, reminder_id: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        const SQL: &str = "SELECT id, reminder_id, remind_at, event_id, status, attempts, recipient, \
             message_id, detail FROM deliveries WHERE reminder_id = $1 ORDER BY id";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).bind(reminder_id).fetch_all(pool).await?))
    }
}
