//! notify's statements on SQLite. The database is in-process, so a batch costs no round
//! trips: its rows are written one by one in one transaction.

use crate::notify::{
    read, Claim, Claimed, Finished, Held, NewClaim, CURRENT, DELIVERIES_OF, INSERT_CLAIM, RELEASE_DELIVERY,
    SETTLE_REMINDER, TAKE_OVER,
};
use crate::rows::{typed, DeliveryRaw, ReminderContextRaw};
use crate::{DeliveryRow, Malformed, ReminderContext, StoreError};
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use std::collections::BTreeSet;
use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

/// The reminders of a batch with their task and user, and the user's active endpoints as a
/// JSON array when the reminder names a channel beside e-mail (one statement).
pub(crate) async fn reminder_contexts(
    pool: &SqlitePool,
    ids: &[ReminderId],
) -> Result<Vec<Result<ReminderContext, Malformed>>, StoreError> {
    const SQL: &str = "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
         t.title AS task_title, t.description AS task_description, t.status AS task_status, \
         t.due_at AS task_due_at, u.email, u.display_name, u.timezone, r.channels, \
         CASE WHEN r.channels <> 'email' THEN \
           (SELECT json_group_array(json_object('id', e.id, 'channel', e.channel, \
              'target', e.target, 'format', e.format, 'secret', e.secret, 'p256dh', e.p256dh, \
              'auth', e.auth)) \
            FROM (SELECT * FROM channel_endpoints WHERE user_id = r.user_id AND active = 1 \
                  ORDER BY id) e) \
         END AS endpoints \
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
) -> Result<Vec<Claimed>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut claimed = Vec::new();
    for c in claims {
        let row: Option<(i64, i32, DateTime<Utc>)> = sqlx::query_as(INSERT_CLAIM)
            .bind(c.reminder_id.get())
            .bind(c.remind_at)
            .bind(c.route.channel.as_str())
            .bind(c.route.endpoint_id())
            .bind(c.event_id)
            .bind(now)
            .bind(until)
            .fetch_optional(&mut *tx)
            .await?;
        claimed.extend(row.map(|(id, _, _)| {
            (
                c.reminder_id.get(),
                c.route.channel.as_str().to_owned(),
                c.route.endpoint_id(),
                id,
            )
        }));
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
    for sql in [INSERT_CLAIM, TAKE_OVER] {
        let claimed: Option<(i64, i32, DateTime<Utc>)> = sqlx::query_as(sql)
            .bind(claim.reminder_id.get())
            .bind(claim.remind_at)
            .bind(claim.route.channel.as_str())
            .bind(claim.route.endpoint_id())
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
        .bind(claim.route.channel.as_str())
        .bind(claim.route.endpoint_id())
        .fetch_one(pool)
        .await?;
    Ok(read::taken(claim.reminder_id, current)?)
}

/// Records the outcomes of the claims still held (`attempts` = the claim's fencing token),
/// then moves each reminder occurrence with no delivery left `sending` to `sent` / `failed`,
/// in one transaction (which sees its own writes). Returns the deliveries recorded.
pub(crate) async fn finish_deliveries(
    pool: &SqlitePool,
    done: &[(Held, Finished<'_>)],
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryId>, StoreError> {
    const DELIVERY: &str = "UPDATE deliveries SET status = $2, recipient = $3, message_id = $4, \
         detail = $5, completed_at = $6 WHERE id = $1 AND status = 'sending' AND attempts = $7 \
         RETURNING reminder_id, remind_at";
    let mut tx = pool.begin().await?;
    let mut occurrences = BTreeSet::new();
    let mut recorded = Vec::with_capacity(done.len());
    for (held, outcome) in done {
        let (status, recipient, message_id, detail) = outcome.columns();
        let finished: Option<(i64, DateTime<Utc>)> = sqlx::query_as(DELIVERY)
            .bind(held.delivery_id.get())
            .bind(status.as_str())
            .bind(recipient)
            .bind(message_id)
            .bind(detail)
            .bind(now)
            .bind(held.attempt)
            .fetch_optional(&mut *tx)
            .await?;
        if finished.is_some() {
            recorded.push(held.delivery_id);
        }
        occurrences.extend(finished);
    }
    for (reminder_id, remind_at) in occurrences {
        sqlx::query(SETTLE_REMINDER)
            .bind(reminder_id)
            .bind(remind_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

/// Moves one reminder occurrence whose deliveries are all finished to `sent` / `failed`.
pub(crate) async fn settle_reminder(
    pool: &SqlitePool,
    reminder: ReminderId,
    remind_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(SETTLE_REMINDER)
        .bind(reminder.get())
        .bind(remind_at)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn release_delivery(
    pool: &SqlitePool,
    held: Held,
    reason: &str,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let released = sqlx::query(RELEASE_DELIVERY)
        .bind(held.delivery_id.get())
        .bind(until)
        .bind(reason)
        .bind(held.attempt)
        .execute(pool)
        .await?;
    Ok(released.rows_affected() == 1)
}

pub(crate) async fn deactivate_endpoint(
    pool: &SqlitePool,
    id: EndpointId,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE channel_endpoints SET active = 0, deactivated_at = $2, \
         detail = $3 WHERE id = $1 AND active = 1";
    sqlx::query(SQL)
        .bind(id.get())
        .bind(now)
        .bind(detail)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn deliveries_of(
    pool: &SqlitePool,
    reminder_id: ReminderId,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows: Vec<DeliveryRaw> = sqlx::query_as(DELIVERIES_OF)
        .bind(reminder_id.get())
        .fetch_all(pool)
        .await?;
    Ok(typed(rows)?)
}
