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

/// A delivery to claim: the reminder occurrence and the event that asks for it.
#[derive(Debug, Clone, Copy)]
pub struct NewClaim<'a> {
    pub reminder_id: i64,
    pub remind_at: DateTime<Utc>,
    pub event_id: &'a str,
}

const CONTEXTS_PG: &str = "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
     t.title AS task_title, t.description AS task_description, t.status AS task_status, \
     t.due_at AS task_due_at, u.email, u.display_name, u.timezone \
     FROM reminders r JOIN tasks t ON t.id = r.task_id JOIN users u ON u.id = r.user_id \
     WHERE r.id = ANY($1)";
const CONTEXTS_SQLITE: &str = "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
     t.title AS task_title, t.description AS task_description, t.status AS task_status, \
     t.due_at AS task_due_at, u.email, u.display_name, u.timezone \
     FROM reminders r JOIN tasks t ON t.id = r.task_id JOIN users u ON u.id = r.user_id \
     WHERE r.id IN (SELECT value FROM json_each($1))";
const INSERT_CLAIM: &str = "INSERT INTO deliveries \
     (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) \
     VALUES ($1, $2, 'email', $3, 'sending', 1, $4, $5) \
     ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING RETURNING id, attempts";
const FINISH_DELIVERY: &str = "UPDATE deliveries SET status = $2, recipient = $3, message_id = $4, \
     detail = $5, completed_at = $6 WHERE id = $1 AND status = 'sending' \
     RETURNING reminder_id, remind_at";
const FINISH_REMINDER: &str = "UPDATE reminders SET state = $3, lease_owner = NULL, lease_until = NULL, \
     updated_at = $4 WHERE id = $1 AND remind_at = $2 AND state <> 'cancelled'";

impl Store {
    pub async fn reminder_context(&self, reminder_id: i64) -> Result<Option<ReminderContext>, StoreError> {
        Ok(self.reminder_contexts(&[reminder_id]).await?.pop())
    }

    /// The contexts of the reminders among `ids`, in one statement (reminders that do not
    /// exist are absent).
    pub async fn reminder_contexts(&self, ids: &[i64]) -> Result<Vec<ReminderContext>, StoreError> {
        Ok(match self {
            Store::Postgres(pool) => sqlx::query_as(CONTEXTS_PG).bind(ids).fetch_all(pool).await?,
            Store::Sqlite(pool) => {
                sqlx::query_as(CONTEXTS_SQLITE)
                    .bind(serde_json::to_string(ids).expect("integers serialize"))
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// Claims the deliveries that nobody has claimed yet, in one statement; returns the
    /// claimed ones as (reminder id, delivery id). A delivery claimed before (live, expired
    /// or finished) is left to [`Store::claim_delivery`], which knows about leases.
    pub async fn claim_new_deliveries(
        &self,
        claims: &[NewClaim<'_>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let until = now + lease;
        Ok(match self {
            Store::Postgres(pool) => {
                sqlx::query_as(
                    "INSERT INTO deliveries \
                     (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) \
                     SELECT r, a, 'email', e, 'sending', 1, $4, $5 \
                     FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) AS v(r, a, e) \
                     ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING RETURNING reminder_id, id",
                )
                .bind(claims.iter().map(|c| c.reminder_id).collect::<Vec<_>>())
                .bind(claims.iter().map(|c| c.remind_at).collect::<Vec<_>>())
                .bind(claims.iter().map(|c| c.event_id).collect::<Vec<_>>())
                .bind(now)
                .bind(until)
                .fetch_all(pool)
                .await?
            }
            Store::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let mut claimed = Vec::new();
                for c in claims {
                    let row: Option<(i64, i32)> = sqlx::query_as(INSERT_CLAIM)
                        .bind(c.reminder_id)
                        .bind(c.remind_at)
                        .bind(c.event_id)
                        .bind(now)
                        .bind(until)
                        .fetch_optional(&mut *tx)
                        .await?;
                    claimed.extend(row.map(|(id, _)| (c.reminder_id, id)));
                }
                tx.commit().await?;
                claimed
            }
        })
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
            let inserted: Option<(i64, i32)> = sqlx::query_as(INSERT_CLAIM)
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
        self.finish_deliveries(&[(delivery_id, outcome)], now).await
    }

    /// [`Store::finish_delivery`] for many deliveries in one transaction.
    pub async fn finish_deliveries(
        &self,
        done: &[(i64, Finished<'_>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let parts = |outcome: &Finished<'_>| match *outcome {
            Finished::Sent {
                recipient,
                message_id,
            } => ("sent", recipient.to_owned(), Some(message_id.to_owned()), None),
            Finished::Failed { recipient, detail } => {
                ("failed", recipient.to_owned(), None, Some(detail.to_owned()))
            }
        };
        if done.is_empty() {
            return Ok(());
        }
        match self {
            Store::Postgres(pool) => {
                let (mut ids, mut statuses, mut recipients, mut message_ids, mut details) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for (id, outcome) in done {
                    let (status, recipient, message_id, detail) = parts(outcome);
                    ids.push(*id);
                    statuses.push(status);
                    recipients.push(recipient);
                    message_ids.push(message_id);
                    details.push(detail);
                }
                // One statement, so atomic without a transaction of its own.
                sqlx::query(
                    "WITH done AS (UPDATE deliveries d SET status = v.s, recipient = v.rcpt, \
                         message_id = v.mid, detail = v.det, completed_at = $6 \
                       FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                         AS v(id, s, rcpt, mid, det) \
                       WHERE d.id = v.id AND d.status = 'sending' \
                       RETURNING d.reminder_id, d.remind_at, v.s) \
                     UPDATE reminders r SET state = done.s, lease_owner = NULL, lease_until = NULL, \
                       updated_at = $6 \
                     FROM done WHERE r.id = done.reminder_id AND r.remind_at = done.remind_at \
                       AND r.state <> 'cancelled'",
                )
                .bind(&ids)
                .bind(&statuses)
                .bind(&recipients)
                .bind(&message_ids)
                .bind(&details)
                .bind(now)
                .execute(pool)
                .await?;
            }
            Store::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for (id, outcome) in done {
                    let (status, recipient, message_id, detail) = parts(outcome);
                    let row: Option<(i64, DateTime<Utc>)> = sqlx::query_as(FINISH_DELIVERY)
                        .bind(id)
                        .bind(status)
                        .bind(&recipient)
                        .bind(&message_id)
                        .bind(&detail)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some((reminder_id, remind_at)) = row {
                        sqlx::query(FINISH_REMINDER)
                            .bind(reminder_id)
                            .bind(remind_at)
                            .bind(status)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
            }
        }
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
