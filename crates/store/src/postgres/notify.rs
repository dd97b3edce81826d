//! notify's statements on PostgreSQL. A batch is one statement over bound arrays
//! (`UNNEST`), so a hundred events cost about what one does.

use crate::notify::{read, Claim, Finished, NewClaim};
use crate::rows::{typed, DeliveryRaw, ReminderContextRaw};
use crate::{DeliveryRow, Malformed, ReminderContext, StoreError};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use todo_events_domain::{DeliveryId, ReminderId};

/// The reminders of a batch with their task and user (one statement).
pub const REMINDER_CONTEXTS: &str =
    "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
     t.title AS task_title, t.description AS task_description, t.status AS task_status, \
     t.due_at AS task_due_at, u.email, u.display_name, u.timezone \
     FROM reminders r JOIN tasks t ON t.id = r.task_id JOIN users u ON u.id = r.user_id \
     WHERE r.id = ANY($1)";

pub(crate) async fn reminder_contexts(
    pool: &PgPool,
    ids: &[ReminderId],
) -> Result<Vec<Result<ReminderContext, Malformed>>, StoreError> {
    let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    let rows: Vec<ReminderContextRaw> = sqlx::query_as(REMINDER_CONTEXTS)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(ReminderContext::try_from).collect())
}

/// Claims the deliveries nobody has claimed yet (one statement).
pub const CLAIM_NEW_DELIVERIES: &str = "INSERT INTO deliveries \
     (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) \
     SELECT r, a, 'email', e, 'sending', 1, $4, $5 \
     FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) AS v(r, a, e) \
     ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING RETURNING reminder_id, id";

/// Claims the deliveries nobody has claimed yet, in one statement.
pub(crate) async fn claim_new_deliveries(
    pool: &PgPool,
    claims: &[NewClaim<'_>],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(ReminderId, DeliveryId)>, StoreError> {
    let rows = sqlx::query_as(CLAIM_NEW_DELIVERIES)
        .bind(claims.iter().map(|c| c.reminder_id.get()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.remind_at).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.event_id).collect::<Vec<_>>())
        .bind(now)
        .bind(until)
        .fetch_all(pool)
        .await?;
    Ok(read::claimed(rows)?)
}

/// Claims one delivery: a new claim, else the take-over of a claim whose lease ran out (or
/// that was released), else what holds it.
pub(crate) async fn claim_delivery(
    pool: &PgPool,
    claim: &NewClaim<'_>,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    const INSERT: &str = "INSERT INTO deliveries \
         (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) \
         VALUES ($1, $2, 'email', $3, 'sending', 1, $4, $5) \
         ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING RETURNING id, attempts";
    const TAKE_OVER: &str = "UPDATE deliveries SET attempts = attempts + 1, event_id = $3, \
         claimed_at = $4, lease_until = $5 \
         WHERE reminder_id = $1 AND remind_at = $2 AND channel = 'email' \
         AND status = 'sending' AND lease_until <= $4 RETURNING id, attempts";
    const CURRENT: &str = "SELECT status, detail FROM deliveries \
         WHERE reminder_id = $1 AND remind_at = $2 AND channel = 'email'";
    for sql in [INSERT, TAKE_OVER] {
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

/// Records outcomes and moves their reminders on (one statement).
pub const FINISH_DELIVERIES: &str =
    "WITH done AS (UPDATE deliveries d SET status = v.s, recipient = v.rcpt, \
         message_id = v.mid, detail = v.det, completed_at = $6 \
       FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) \
         AS v(id, s, rcpt, mid, det) \
       WHERE d.id = v.id AND d.status = 'sending' \
       RETURNING d.reminder_id, d.remind_at, v.s) \
     UPDATE reminders r SET state = done.s, lease_owner = NULL, lease_until = NULL, \
       updated_at = $6 \
     FROM done WHERE r.id = done.reminder_id AND r.remind_at = done.remind_at \
       AND r.state <> 'cancelled'";

/// Records outcomes and moves their reminders to `sent` / `failed`: one statement, so
/// atomic without a transaction of its own.
pub(crate) async fn finish_deliveries(
    pool: &PgPool,
    done: &[(DeliveryId, Finished<'_>)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (mut ids, mut statuses, mut recipients, mut message_ids, mut details) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, outcome) in done {
        let (status, recipient, message_id, detail) = outcome.columns();
        ids.push(id.get());
        statuses.push(status.as_str());
        recipients.push(recipient);
        message_ids.push(message_id);
        details.push(detail);
    }
    sqlx::query(FINISH_DELIVERIES)
        .bind(ids)
        .bind(statuses)
        .bind(recipients)
        .bind(message_ids)
        .bind(details)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn release_delivery(
    pool: &PgPool,
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
    pool: &PgPool,
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
