//! notify's statements on PostgreSQL. A batch is one statement over bound arrays
//! (`UNNEST`), so a hundred events cost about what one does; each step of a batch is one
//! round trip (see `crate::notify`).

use crate::error::StoreError;
use crate::notify::read::{self, Current, FoundRaw, TakenOver};
use crate::notify::{Claim, Claimed, Finished, Found, Held, NewClaim, Release};
use crate::rows::{typed, DeliveryRaw, DeliveryRow};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

/// The reminders the batch's events name (`$1`) with their task and user, and the user's
/// active endpoints as a JSON array when the reminder names a channel beside e-mail (or
/// `default`: its user's preferred channels, joined with the other preferences); and,
/// for a reminder moved since its event (the event's time `$2` is not its own), whether a
/// delivery at the event's time was sent (one statement; one index probe per moved one).
pub const REMINDER_CONTEXTS: &str =
    "SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, \
     t.title AS task_title, t.description AS task_description, t.status AS task_status, \
     t.due_at AS task_due_at, u.email, u.display_name, u.timezone, r.channels, \
     r.urgent, r.deferred_until, p.quiet_start, p.quiet_end, p.quiet_days, p.locale, \
     p.channels AS preferred_channels, \
     CASE WHEN r.channels <> 'email' THEN \
       (SELECT COALESCE(json_agg(json_build_object('id', e.id, 'channel', e.channel, \
          'target', e.target, 'format', e.format, 'secret', e.secret, 'p256dh', e.p256dh, \
          'auth', e.auth) ORDER BY e.id), '[]')::text \
        FROM channel_endpoints e WHERE e.user_id = r.user_id AND e.active) \
     END AS endpoints, \
     CASE WHEN r.remind_at <> v.at THEN EXISTS (SELECT 1 FROM deliveries d \
       WHERE d.reminder_id = r.id AND d.remind_at = v.at AND d.status = 'sent') \
     ELSE FALSE END AS sent_at_event_time \
     FROM UNNEST($1::bigint[], $2::timestamptz[]) AS v(id, at) \
     JOIN reminders r ON r.id = v.id JOIN tasks t ON t.id = r.task_id \
     JOIN users u ON u.id = r.user_id LEFT JOIN user_preferences p ON p.user_id = r.user_id";

/// The contexts of the reminders `asked` names, each with its event's time (`None`: no
/// event asks, the flag is `false`), in one statement.
pub(crate) async fn reminder_contexts(
    pool: &PgPool,
    asked: &[(ReminderId, Option<DateTime<Utc>>)],
) -> Result<Vec<Found>, StoreError> {
    let rows: Vec<FoundRaw> = sqlx::query_as(REMINDER_CONTEXTS)
        .bind(asked.iter().map(|(id, _)| id.get()).collect::<Vec<_>>())
        .bind(asked.iter().map(|(_, at)| *at).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Found::from).collect())
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

/// Binds `claims` as the five arrays both claim statements take first (`$1`..`$5`: reminder,
/// time, channel, endpoint, event id).
fn bind_claims<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    claims: &[NewClaim<'q>],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
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
}

/// Claims the deliveries nobody has claimed yet, in one statement.
pub(crate) async fn claim_new_deliveries(
    pool: &PgPool,
    claims: &[NewClaim<'_>],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = bind_claims(sqlx::query_as(CLAIM_NEW_DELIVERIES), claims)
        .bind(now)
        .bind(until)
        .fetch_all(pool)
        .await?;
    Ok(read::claimed(rows)?)
}

/// Takes over the deliveries claimed before whose lease ran out (or that were released
/// and whose retry time has come), incrementing the fencing token, and reads each other
/// one as it is (one statement). Its subqueries see the rows as they were before it: a row
/// taken over is answered from `taken`, the others from `deliveries`. In the claims' order.
const CLAIM_DELIVERIES: &str =
    "WITH asked AS (SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], \
         $4::bigint[], $5::text[]) WITH ORDINALITY AS v(r, a, c, p, e, n)), \
     taken AS (UPDATE deliveries d SET attempts = d.attempts + 1, event_id = v.e, \
         claimed_at = $6, lease_until = $7, detail = NULL, \
         first_claimed_at = COALESCE(d.first_claimed_at, d.claimed_at) \
       FROM asked v WHERE d.reminder_id = v.r AND d.remind_at = v.a AND d.channel = v.c \
         AND d.endpoint_id = v.p AND d.status = 'sending' AND d.lease_until <= $6 \
       RETURNING v.n, d.id, d.attempts, d.first_claimed_at) \
     SELECT t.id, t.attempts, t.first_claimed_at, d.status, d.detail, d.lease_until \
     FROM asked v LEFT JOIN taken t ON t.n = v.n \
     LEFT JOIN deliveries d ON d.reminder_id = v.r AND d.remind_at = v.a \
       AND d.channel = v.c AND d.endpoint_id = v.p \
     ORDER BY v.n";

/// A row of [`CLAIM_DELIVERIES`]: the take-over's columns, then the row as found.
type ClaimRow = (
    Option<i64>,
    Option<i32>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// Claims deliveries claimed before ([`CLAIM_DELIVERIES`]): one answer per claim, in order.
pub(crate) async fn claim_deliveries(
    pool: &PgPool,
    claims: &[NewClaim<'_>],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Claim>, StoreError> {
    let rows: Vec<ClaimRow> = bind_claims(sqlx::query_as(CLAIM_DELIVERIES), claims)
        .bind(now)
        .bind(until)
        .fetch_all(pool)
        .await?;
    claims
        .iter()
        .zip(rows)
        .map(|(c, (id, attempts, since, status, detail, lease_until))| {
            let taken_over: Option<TakenOver> = id.zip(attempts).zip(since).map(|((i, a), s)| (i, a, s));
            let current: Option<Current> = status.zip(lease_until).map(|(s, l)| (s, detail, l));
            read::held(c, taken_over, current)
        })
        .collect()
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

/// Moves the reminder occurrences with no delivery left `sending` (and at least one) to
/// `sent` (some delivery was sent) or `failed`, unless cancelled (one statement; the
/// batched form of SQLite's `SETTLE_REMINDER`). Returns the reminders moved.
const SETTLE_REMINDERS: &str = "UPDATE reminders r SET state = CASE WHEN EXISTS \
       (SELECT 1 FROM deliveries d WHERE d.reminder_id = v.id AND d.remind_at = v.at \
        AND d.status = 'sent') THEN 'sent' ELSE 'failed' END, \
     lease_owner = NULL, lease_until = NULL, updated_at = $3 \
     FROM UNNEST($1::bigint[], $2::timestamptz[]) AS v(id, at) \
     WHERE r.id = v.id AND r.remind_at = v.at AND r.state <> 'cancelled' \
     AND EXISTS (SELECT 1 FROM deliveries d WHERE d.reminder_id = v.id AND d.remind_at = v.at) \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.reminder_id = v.id \
       AND d.remind_at = v.at AND d.status = 'sending') \
     RETURNING r.id";

pub(crate) async fn settle_reminders(
    pool: &PgPool,
    occurrences: &[(ReminderId, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<ReminderId>, StoreError> {
    let settled: Vec<(i64,)> = sqlx::query_as(SETTLE_REMINDERS)
        .bind(occurrences.iter().map(|(id, _)| id.get()).collect::<Vec<_>>())
        .bind(occurrences.iter().map(|(_, at)| *at).collect::<Vec<_>>())
        .bind(now)
        .fetch_all(pool)
        .await?;
    Ok(settled
        .into_iter()
        .filter_map(|(id,)| ReminderId::new(id))
        .collect())
}

/// Gives claims back, each takeable from its own time with its reason kept, only where the
/// claim still holds the row (`attempts` = its token). Returns the deliveries released.
const RELEASE_DELIVERIES: &str = "UPDATE deliveries d SET lease_until = v.until, detail = v.reason \
     FROM UNNEST($1::bigint[], $2::int[], $3::timestamptz[], $4::text[]) AS v(id, token, until, reason) \
     WHERE d.id = v.id AND d.status = 'sending' AND d.attempts = v.token \
     RETURNING d.id";

pub(crate) async fn release_deliveries(
    pool: &PgPool,
    releases: &[Release<'_>],
) -> Result<Vec<DeliveryId>, StoreError> {
    let released: Vec<(i64,)> = sqlx::query_as(RELEASE_DELIVERIES)
        .bind(
            releases
                .iter()
                .map(|r| r.held.delivery_id.get())
                .collect::<Vec<_>>(),
        )
        .bind(releases.iter().map(|r| r.held.attempt).collect::<Vec<_>>())
        .bind(releases.iter().map(|r| r.until).collect::<Vec<_>>())
        .bind(releases.iter().map(|r| r.reason).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    Ok(released
        .into_iter()
        .filter_map(|(id,)| DeliveryId::new(id))
        .collect())
}

/// Deactivates the active endpoints among `$1`, each with its reason (the first given for
/// an endpoint named twice, as one after the other would leave it).
const DEACTIVATE_ENDPOINTS: &str = "UPDATE channel_endpoints e SET active = FALSE, \
     deactivated_at = $3, detail = v.det \
     FROM (SELECT DISTINCT ON (id) id, det \
       FROM UNNEST($1::bigint[], $2::text[]) WITH ORDINALITY AS u(id, det, n) ORDER BY id, n) v \
     WHERE e.id = v.id AND e.active";

pub(crate) async fn deactivate_endpoints(
    pool: &PgPool,
    gone: &[(EndpointId, &str)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(DEACTIVATE_ENDPOINTS)
        .bind(gone.iter().map(|(id, _)| id.get()).collect::<Vec<_>>())
        .bind(gone.iter().map(|(_, detail)| *detail).collect::<Vec<_>>())
        .bind(now)
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

/// Puts reminders off to the end of their users' quiet hours, once per `remind_at`: each
/// only while it still has the event's time and no deferral. Pending again, it is the
/// scheduler's to publish from then (its due index is on `COALESCE(deferred_until,
/// remind_at)`); a scheduler still holding it (`publishing`) finds its lease gone and leaves
/// it. Returns the reminders deferred.
const DEFER_REMINDERS: &str = "UPDATE reminders r SET deferred_until = v.until, state = 'pending', \
     lease_owner = NULL, lease_until = NULL, updated_at = $4 \
     FROM UNNEST($1::bigint[], $2::timestamptz[], $3::timestamptz[]) AS v(id, at, until) \
     WHERE r.id = v.id AND r.remind_at = v.at AND r.deferred_until IS NULL \
       AND r.state IN ('pending', 'publishing', 'published') \
     RETURNING r.id";

pub(crate) async fn defer_reminders(
    pool: &PgPool,
    deferrals: &[(ReminderId, DateTime<Utc>, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<ReminderId>, StoreError> {
    let deferred: Vec<(i64,)> = sqlx::query_as(DEFER_REMINDERS)
        .bind(deferrals.iter().map(|(id, _, _)| id.get()).collect::<Vec<_>>())
        .bind(deferrals.iter().map(|(_, at, _)| *at).collect::<Vec<_>>())
        .bind(deferrals.iter().map(|(_, _, until)| *until).collect::<Vec<_>>())
        .bind(now)
        .fetch_all(pool)
        .await?;
    Ok(deferred
        .into_iter()
        .filter_map(|(id,)| ReminderId::new(id))
        .collect())
}
