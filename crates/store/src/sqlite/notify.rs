//! notify's statements on SQLite. The database is in-process, so a batch costs no round
//! trips: its rows are written one by one in one transaction.

use crate::notify::{read, Claim, Finished, NewClaim};
use crate::rows::{typed, DeliveryRaw, ReminderContextRaw};
use crate::{DeliveryRow, Malformed, ReminderContext, StoreError};
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use todo_events_domain::{DeliveryId, ReminderId};

const INSERT_CLAIM: &str = "INSERT INTO deliveries \
     (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) \
     VALUES ($1, $2, 'email', $3, 'sending', 1, $4, $5) \
     ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING RETURNING id, attempts";

pub(crate) async fn reminder_contexts(
    pool: &SqlitePool,
    ids: &[ReminderId],
) -> Result<Vec<Result<ReminderContext, Malformed>>, StoreError> {
    const SQL: &str = "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
         t.title AS task_title, t.description AS task_description, t.status AS task_status, \
         t.due_at AS task_due_at, u.email, u.display_name, u.timezone \
         FROM reminders r JOIN tasks t ON t.id = r.task_id JOIN users u ON u.id = r.user_id \
         WHERE r.id IN (SELECT value FROM json_each($1))";
    let rows: Vec<ReminderContextRaw> = sqlx::query_as(SQL)
        .bind(super::json_ids(ids.iter().map(|id| id.get())))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(ReminderContext::try_from).collect())
}

/// Claims the deliveries nobody has claimed yet, in one transaction.
pub(crate) async fn claim_new_deliveries(
    pool: &SqlitePool,
    claims: &[NewClaim<'_>],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(ReminderId, DeliveryId)>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut claimed = Vec::new();
    for c in claims {
        let row: Option<(i64, i32)> = sqlx::query_as(INSERT_CLAIM)
            .bind(c.reminder_id.get())
            .bind(c.remind_at)
            .bind(c.event_id)
            .bind(now)
            .bind(until)
            .fetch_optional(&mut *tx)
            .await?;
        claimed.extend(row.map(|(id, _)| (c.reminder_id.get(), id)));
    }
    tx.commit().await?;
    Ok(read::claimed(claimed)?)
}

/// Claims one delivery: a new claim, else the take-over of a claim whose lease ran out (or
/// that was released), else what holds it.
pub(crate) async fn claim_delivery(
    pool: &SqlitePool,
    claim: &NewClaim<'_>,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    const TAKE_OVER: &str = "UPDATE deliveries SET attempts = attempts + 1, event_id = $3, \
         claimed_at = $4, lease_until = $5 \
         WHERE reminder_id = $1 AND remind_at = $2 AND channel = 'email' \
         AND status = 'sending' AND lease_until <= $4 RETURNING id, attempts";
    const CURRENT: &str = "SELECT status, detail FROM deliveries \
         WHERE reminder_id = $1 AND remind_at = $2 AND channel = 'email'";
    for sql in [INSERT_CLAIM, TAKE_OVER] {
        let claimed: Option<(i64, i32)> = sqlx::query_as(sql)
            .bind(claim.reminder_id.get())
            .bind(claim.remind_at)
            .bind(claim.event_id)
            .bind(now)
            .bind(until)
            .fetch_optional(pool)
            .await?;
        if let Some(claimed) = claimed {
            return Ok(read::claim(claimed)?);
        }
    }
    let current = sqlx::query_as(CURRENT)
        .bind(claim.reminder_id.get())
        .bind(claim.remind_at)
        .fetch_one(pool)
        .await?;
    Ok(read::taken(claim.reminder_id, current)?)
}

/// Records outcomes and moves their reminders to `sent` / `failed`, in one transaction.
pub(crate) async fn finish_deliveries(
    pool: &SqlitePool,
    done: &[(DeliveryId, Finished<'_>)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const DELIVERY: &str = "UPDATE deliveries SET status = $2, recipient = $3, message_id = $4, \
         detail = $5, completed_at = $6 WHERE id = $1 AND status = 'sending' \
         RETURNING reminder_id, remind_at";
    const REMINDER: &str = "UPDATE reminders SET state = $3, lease_owner = NULL, \
         lease_until = NULL, updated_at = $4 \
         WHERE id = $1 AND remind_at = $2 AND state <> 'cancelled'";
    let mut tx = pool.begin().await?;
    for (id, outcome) in done {
        let (status, recipient, message_id, detail) = outcome.columns();
        let finished: Option<(i64, DateTime<Utc>)> = sqlx::query_as(DELIVERY)
            .bind(id.get())
            .bind(status.as_str())
            .bind(recipient)
            .bind(message_id)
            .bind(detail)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((reminder_id, remind_at)) = finished {
            sqlx::query(REMINDER)
                .bind(reminder_id)
                .bind(remind_at)
                .bind(status.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn release_delivery(
    pool: &SqlitePool,
    id: DeliveryId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE deliveries SET lease_until = $2, detail = $3 \
         WHERE id = $1 AND status = 'sending'";
    sqlx::query(SQL)
        .bind(id.get())
        .bind(now)
        .bind(reason)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn deliveries_of(
    pool: &SqlitePool,
    reminder_id: ReminderId,
) -> Result<Vec<DeliveryRow>, StoreError> {
    const SQL: &str = "SELECT id, reminder_id, remind_at, event_id, status, attempts, recipient, \
         message_id, detail FROM deliveries WHERE reminder_id = $1 ORDER BY id";
    let rows: Vec<DeliveryRaw> = sqlx::query_as(SQL)
        .bind(reminder_id.get())
        .fetch_all(pool)
        .await?;
    Ok(typed(rows)?)
}
