//! notify's statements on PostgreSQL. A batch is one statement over bound arrays
//! (`UNNEST`), so a hundred events cost about what one does.

use crate::notify::{read, Claim, Claimed, Finished, Held, NewClaim, CURRENT, INSERT_CLAIM, TAKE_OVER};
use crate::rows::{typed, DeliveryRaw, ReminderContextRaw};
use crate::{DeliveryRow, Malformed, ReminderContext, StoreError};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

/// The reminders of a batch with their task and user, and the user's active endpoints as a
/// JSON array when the reminder names a channel beside e-mail (one statement).
pub const REMINDER_CONTEXTS: &str =
    "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
     t.title AS task_title, t.description AS task_description, t.status AS task_status, \
     t.due_at AS task_due_at, u.email, u.display_name, u.timezone, r.channels, \
     CASE WHEN r.channels <> 'email' THEN \
       (SELECT COALESCE(json_agg(json_build_object('id', e.id, 'channel', e.channel, \
          'target', e.target, 'format', e.format, 'secret', e.secret, 'p256dh', e.p256dh, \
          'auth', e.auth) ORDER BY e.id), '[]')::text \
        FROM channel_endpoints e WHERE e.user_id = r.user_id AND e.active) \
     END AS endpoints \
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
     (reminder_id, remind_at, channel, endpoint_id, event_id, status, attempts, claimed_at, \
      lease_until, first_claimed_at) \
     SELECT r, a, c, p, e, 'sending', 1, $6, $7, $6 \
     FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::bigint[], $5::text[]) \
       AS v(r, a, c, p, e) \
     ON CONFLICT (reminder_id, remind_at, channel, endpoint_id) DO NOTHING \
     RETURNING reminder_id, channel, endpoint_id, id";

/// Claims the deliveries nobody has claimed yet, in one statement.
pub(crate) async fn claim_new_deliveries(
    pool: &PgPool,
    claims: &[NewClaim<'_>],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = sqlx::query_as(CLAIM_NEW_DELIVERIES)
        .bind(claims.iter().map(|c| c.reminder_id.get()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.remind_at).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|c| c.route.channel.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(claims.iter().map(|c| c.route.endpoint_id()).collect::<Vec<_>>())
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

/// Records outcomes of the claims still held (`attempts` = the claim's fencing token) and
/// moves the reminders whose occurrence has no delivery left `sending` to `sent` (some
/// delivery was sent) or `failed` (one statement); returns the ids recorded. Its subqueries
/// see the deliveries as they were before it, hence `NOT IN (done)` and `o.sent`.
pub const FINISH_DELIVERIES: &str =
    "WITH done AS (UPDATE deliveries d SET status = v.s, recipient = v.rcpt, \
         message_id = v.mid, detail = v.det, completed_at = $6 \
       FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $7::int[]) \
         AS v(id, s, rcpt, mid, det, token) \
       WHERE d.id = v.id AND d.status = 'sending' AND d.attempts = v.token \
       RETURNING d.id, d.reminder_id, d.remind_at, v.s), \
     occurrence AS (SELECT reminder_id, remind_at, bool_or(s = 'sent') AS sent \
       FROM done GROUP BY reminder_id, remind_at), \
     settled AS (UPDATE reminders r SET state = CASE WHEN o.sent OR EXISTS (SELECT 1 FROM deliveries d \
         WHERE d.reminder_id = o.reminder_id AND d.remind_at = o.remind_at \
         AND d.status = 'sent') THEN 'sent' ELSE 'failed' END, \
       lease_owner = NULL, lease_until = NULL, updated_at = $6 \
     FROM occurrence o WHERE r.id = o.reminder_id AND r.remind_at = o.remind_at \
       AND r.state <> 'cancelled' \
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.reminder_id = o.reminder_id \
         AND d.remind_at = o.remind_at AND d.status = 'sending' \
         AND d.id NOT IN (SELECT id FROM done)) \
     RETURNING r.id) \
     SELECT id FROM done";

/// Records outcomes and moves their reminders on (see [`FINISH_DELIVERIES`]): one
/// statement, so atomic without a transaction of its own. Returns the deliveries recorded
/// (a claim taken over since is not).
pub(crate) async fn finish_deliveries(
    pool: &PgPool,
    done: &[(Held, Finished<'_>)],
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryId>, StoreError> {
    let (mut ids, mut statuses, mut recipients, mut message_ids, mut details, mut tokens) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (held, outcome) in done {
        let (status, recipient, message_id, detail) = outcome.columns();
        ids.push(held.delivery_id.get());
        tokens.push(held.attempt);
        statuses.push(status.as_str());
        recipients.push(recipient);
        message_ids.push(message_id);
        details.push(detail);
    }
    let recorded: Vec<(i64,)> = sqlx::query_as(FINISH_DELIVERIES)
        .bind(ids)
        .bind(statuses)
        .bind(recipients)
        .bind(message_ids)
        .bind(details)
        .bind(now)
        .bind(tokens)
        .fetch_all(pool)
        .await?;
    Ok(recorded
        .into_iter()
        .filter_map(|(id,)| DeliveryId::new(id))
        .collect())
}

/// Moves one reminder occurrence whose deliveries are all finished to `sent` / `failed`.
pub(crate) async fn settle_reminder(
    pool: &PgPool,
    reminder: ReminderId,
    remind_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(crate::notify::SETTLE_REMINDER)
        .bind(reminder.get())
        .bind(remind_at)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn release_delivery(
    pool: &PgPool,
    held: Held,
    reason: &str,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let released = sqlx::query(crate::notify::RELEASE_DELIVERY)
        .bind(held.delivery_id.get())
        .bind(until)
        .bind(reason)
        .bind(held.attempt)
        .execute(pool)
        .await?;
    Ok(released.rows_affected() == 1)
}

pub(crate) async fn deactivate_endpoint(
    pool: &PgPool,
    id: EndpointId,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE channel_endpoints SET active = FALSE, deactivated_at = $2, \
         detail = $3 WHERE id = $1 AND active";
    sqlx::query(SQL)
        .bind(id.get())
        .bind(now)
        .bind(detail)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn deliveries_of(
    pool: &PgPool,
    reminder_id: ReminderId,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows: Vec<DeliveryRaw> = sqlx::query_as(crate::notify::DELIVERIES_OF)
        .bind(reminder_id.get())
        .fetch_all(pool)
        .await?;
    Ok(typed(rows)?)
}
