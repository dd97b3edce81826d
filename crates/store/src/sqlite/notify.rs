//! notify's statements on SQLite. The database is in-process, so a batch costs no round
//! trips: its rows are written one by one in one transaction, and the read takes the
//! events as one JSON array (`json_each`), like the other functions' reads.

use crate::error::StoreError;
use crate::notify::read::{self, FoundRaw};
use crate::notify::{Claim, Claimed, Finished, Found, Held, NewClaim, Release, DELIVERIES_OF};
use crate::rows::{typed, DeliveryRaw, DeliveryRow};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::SqlitePool;
use std::collections::BTreeSet;
use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

/// The reminders the batch's events name with their task and user, and the user's active
/// endpoints as a JSON array when the reminder names a channel beside e-mail; and, for a
/// reminder moved since its event (the event's time is not its own), whether a delivery at
/// the event's time was sent (one statement). `$1`: `[[id, time], ...]`, each time as sqlx
/// writes a bound instant ([`stored`]), so that it compares as the stored text does.
const REMINDER_CONTEXTS: &str = "WITH v(id, at) AS (SELECT json_extract(value, '$[0]'), \
       json_extract(value, '$[1]') FROM json_each($1)) \
     SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
     t.title AS task_title, t.description AS task_description, t.status AS task_status, \
     t.due_at AS task_due_at, u.email, u.display_name, u.timezone, r.channels, \
     r.urgent, r.deferred_until, p.quiet_start, p.quiet_end, p.quiet_days, p.locale, \
     p.channels AS preferred_channels, \
     CASE WHEN r.channels <> 'email' THEN \
       (SELECT json_group_array(json_object('id', e.id, 'channel', e.channel, \
          'target', e.target, 'format', e.format, 'secret', e.secret, 'p256dh', e.p256dh, \
          'auth', e.auth)) \
        FROM (SELECT * FROM channel_endpoints WHERE user_id = r.user_id AND active = 1 \
              ORDER BY id) e) \
     END AS endpoints, \
     CASE WHEN r.remind_at <> v.at THEN EXISTS (SELECT 1 FROM deliveries d \
       WHERE d.reminder_id = r.id AND d.remind_at = v.at AND d.status = 'sent') \
     ELSE 0 END AS sent_at_event_time \
     FROM v JOIN reminders r ON r.id = v.id JOIN tasks t ON t.id = r.task_id \
     JOIN users u ON u.id = r.user_id LEFT JOIN user_preferences p ON p.user_id = r.user_id";

/// An instant as sqlx binds it on SQLite (RFC 3339, `+00:00`, the fraction only as long as
/// needed), the form every stored time has.
fn stored(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// The contexts of the reminders `asked` names, each with its event's time (`None`: no
/// event asks, the flag is `false`), in one statement.
pub(crate) async fn reminder_contexts(
    pool: &SqlitePool,
    asked: &[(ReminderId, Option<DateTime<Utc>>)],
) -> Result<Vec<Found>, StoreError> {
    let events: Vec<(i64, Option<String>)> =
        asked.iter().map(|(id, at)| (id.get(), at.map(stored))).collect();
    let rows: Vec<FoundRaw> = sqlx::query_as(REMINDER_CONTEXTS)
        .bind(serde_json::to_string(&events).expect("ids and texts serialize"))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Found::from).collect())
}

/// Moves a reminder occurrence with no delivery left `sending` to `sent` (some delivery
/// was sent) or `failed`: the last step of finishing, and the repair when a redelivery finds
/// every delivery finished but the reminder not (PostgreSQL's is `SETTLE_REMINDERS`).
const SETTLE_REMINDER: &str = "UPDATE reminders SET state = CASE WHEN EXISTS \
       (SELECT 1 FROM deliveries d WHERE d.reminder_id = $1 AND d.remind_at = $2 \
        AND d.status = 'sent') THEN 'sent' ELSE 'failed' END, \
     lease_owner = NULL, lease_until = NULL, updated_at = $3 \
     WHERE id = $1 AND remind_at = $2 AND state <> 'cancelled' \
     AND EXISTS (SELECT 1 FROM deliveries d WHERE d.reminder_id = $1 AND d.remind_at = $2) \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.reminder_id = $1 \
       AND d.remind_at = $2 AND d.status = 'sending')";

/// Gives a claim back after a transient failure: takeable from `until` (its retry time),
/// only by the claim that holds the row (`attempts = $4`, the fencing token).
const RELEASE_DELIVERY: &str = "UPDATE deliveries SET lease_until = $2, detail = $3 \
     WHERE id = $1 AND status = 'sending' AND attempts = $4";

/// A claim: a new one; the take-over of one whose lease ran out (or that was released),
/// incrementing the fencing token, `first_claimed_at` kept from the first claim
/// (`claimed_at` for rows older than migration 0005); else the row as found.
const INSERT_CLAIM: &str = "INSERT INTO deliveries \
     (reminder_id, remind_at, channel, endpoint_id, event_id, status, attempts, claimed_at, \
      lease_until, first_claimed_at) \
     VALUES ($1, $2, $3, $4, $5, 'sending', 1, $6, $7, $6) \
     ON CONFLICT (reminder_id, remind_at, channel, endpoint_id) DO NOTHING \
     RETURNING id, attempts, first_claimed_at";
const TAKE_OVER: &str = "UPDATE deliveries SET attempts = attempts + 1, event_id = $5, \
     claimed_at = $6, lease_until = $7, detail = NULL, \
     first_claimed_at = COALESCE(first_claimed_at, claimed_at) \
     WHERE reminder_id = $1 AND remind_at = $2 AND channel = $3 AND endpoint_id = $4 \
     AND status = 'sending' AND lease_until <= $6 RETURNING id, attempts, first_claimed_at";
const CURRENT: &str = "SELECT status, detail, lease_until FROM deliveries \
     WHERE reminder_id = $1 AND remind_at = $2 AND channel = $3 AND endpoint_id = $4";

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

/// Claims deliveries claimed before, in one transaction: each takes over a lease that ran
/// out (or a release whose time has come), else reads the row as it is. In order.
pub(crate) async fn claim_deliveries(
    pool: &SqlitePool,
    claims: &[NewClaim<'_>],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Claim>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut answers = Vec::with_capacity(claims.len());
    for c in claims {
        let taken_over = sqlx::query_as(TAKE_OVER)
            .bind(c.reminder_id.get())
            .bind(c.remind_at)
            .bind(c.route.channel.as_str())
            .bind(c.route.endpoint_id())
            .bind(c.event_id)
            .bind(now)
            .bind(until)
            .fetch_optional(&mut *tx)
            .await?;
        let current = match taken_over {
            Some(_) => None,
            None => {
                sqlx::query_as(CURRENT)
                    .bind(c.reminder_id.get())
                    .bind(c.remind_at)
                    .bind(c.route.channel.as_str())
                    .bind(c.route.endpoint_id())
                    .fetch_optional(&mut *tx)
                    .await?
            }
        };
        answers.push(read::held(c, taken_over, current));
    }
    tx.commit().await?;
    answers.into_iter().collect()
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

/// Moves the occurrences with no delivery left `sending` to `sent` / `failed`
/// ([`SETTLE_REMINDER`]), in one transaction; returns the reminders moved.
pub(crate) async fn settle_reminders(
    pool: &SqlitePool,
    occurrences: &[(ReminderId, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<ReminderId>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut settled = Vec::new();
    for &(reminder, remind_at) in occurrences {
        let done = sqlx::query(SETTLE_REMINDER)
            .bind(reminder.get())
            .bind(remind_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            settled.push(reminder);
        }
    }
    tx.commit().await?;
    Ok(settled)
}

/// Gives the claims back that still hold their rows ([`RELEASE_DELIVERY`]), in one
/// transaction; returns the deliveries released.
pub(crate) async fn release_deliveries(
    pool: &SqlitePool,
    releases: &[Release<'_>],
) -> Result<Vec<DeliveryId>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut released = Vec::new();
    for r in releases {
        let done = sqlx::query(RELEASE_DELIVERY)
            .bind(r.held.delivery_id.get())
            .bind(r.until)
            .bind(r.reason)
            .bind(r.held.attempt)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            released.push(r.held.delivery_id);
        }
    }
    tx.commit().await?;
    Ok(released)
}

/// Deactivates the endpoints that are still active, each with its reason, in one
/// transaction (an endpoint named twice keeps the first).
pub(crate) async fn deactivate_endpoints(
    pool: &SqlitePool,
    gone: &[(EndpointId, &str)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE channel_endpoints SET active = 0, deactivated_at = $2, \
         detail = $3 WHERE id = $1 AND active = 1";
    let mut tx = pool.begin().await?;
    for (id, detail) in gone {
        sqlx::query(SQL)
            .bind(id.get())
            .bind(now)
            .bind(*detail)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
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

/// Puts reminders off to the end of their users' quiet hours, once per `remind_at`
/// (PostgreSQL's `DEFER_REMINDERS` says why each condition).
const DEFER_REMINDERS: &str = "WITH v(id, at, until) AS (SELECT json_extract(value, '$[0]'), \
       json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each($1)) \
     UPDATE reminders SET deferred_until = (SELECT until FROM v WHERE v.id = reminders.id), \
       state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = $2 \
     WHERE deferred_until IS NULL AND state IN ('pending', 'publishing', 'published') \
       AND EXISTS (SELECT 1 FROM v WHERE v.id = reminders.id AND v.at = reminders.remind_at) \
     RETURNING id";

pub(crate) async fn defer_reminders(
    pool: &SqlitePool,
    deferrals: &[(ReminderId, DateTime<Utc>, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<ReminderId>, StoreError> {
    let rows: Vec<(i64, String, String)> = deferrals
        .iter()
        .map(|(id, at, until)| (id.get(), stored(*at), stored(*until)))
        .collect();
    let deferred: Vec<(i64,)> = sqlx::query_as(DEFER_REMINDERS)
        .bind(serde_json::to_string(&rows).expect("ids and texts serialize"))
        .bind(now)
        .fetch_all(pool)
        .await?;
    Ok(deferred
        .into_iter()
        .filter_map(|(id,)| ReminderId::new(id))
        .collect())
}
