//! The daily agenda's statements on PostgreSQL (`crate::agenda` says what they are for). Each
//! batch is one statement over bound arrays.

use crate::agenda::{
    AgendaAsked, AgendaClaim, AgendaContext, AgendaContextRaw, AgendaFinished, AgendaHeld, AgendaNext,
    ClaimedAgenda, ClaimedAgendaRaw,
};
use crate::error::StoreError;
use crate::rows::Malformed;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Claims the users whose next agenda is due or not yet computed, and whose claim, if any,
/// ran out (`$1` owner, `$2` lease end, `$3` now, `$4` limit).
const CLAIM: &str = "UPDATE user_preferences p SET agenda_lease_owner = $1, agenda_lease_until = $2 \
     FROM users u WHERE u.id = p.user_id AND p.user_id IN (SELECT user_id FROM user_preferences \
       WHERE agenda_at IS NOT NULL AND (agenda_next_at IS NULL OR agenda_next_at <= $3) \
         AND (agenda_lease_until IS NULL OR agenda_lease_until <= $3) \
       ORDER BY agenda_next_at NULLS FIRST LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING p.user_id, u.timezone, p.agenda_at, p.quiet_start, p.quiet_end, p.quiet_days, \
       p.agenda_next_date AS next_date, p.agenda_next_at AS next_at";

pub(crate) async fn claim(
    pool: &PgPool,
    owner: &str,
    (now, until): (DateTime<Utc>, DateTime<Utc>),
    limit: i64,
) -> Result<Vec<Result<ClaimedAgenda, Malformed>>, StoreError> {
    let rows: Vec<ClaimedAgendaRaw> = sqlx::query_as(CLAIM)
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(ClaimedAgenda::try_from).collect())
}

/// Sets the users' next agendas and gives their claims back, where `$1` still holds them.
const SCHEDULE: &str = "UPDATE user_preferences p SET agenda_next_date = v.d, agenda_next_at = v.t, \
     agenda_lease_owner = NULL, agenda_lease_until = NULL \
     FROM UNNEST($2::bigint[], $3::date[], $4::timestamptz[]) AS v(u, d, t) \
     WHERE p.user_id = v.u AND p.agenda_lease_owner = $1";

pub(crate) async fn schedule(pool: &PgPool, owner: &str, next: &[AgendaNext]) -> Result<u64, StoreError> {
    let done = sqlx::query(SCHEDULE)
        .bind(owner)
        .bind(next.iter().map(|n| n.user_id.get()).collect::<Vec<_>>())
        .bind(next.iter().map(|n| n.date).collect::<Vec<_>>())
        .bind(next.iter().map(|n| n.at).collect::<Vec<_>>())
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// The users the batch's agendas name, with their preferences, active endpoints, the open
/// tasks due before the latest end of each day (`$4` at most, earliest first; and how many in
/// all; and the due times between its earliest and latest end) and that date's agenda
/// deliveries.
const CONTEXTS: &str = "SELECT u.id AS user_id, v.d AS agenda_date, u.email, u.display_name, \
     u.timezone, p.agenda_at, p.quiet_start, p.quiet_end, p.quiet_days, p.locale, \
     p.channels AS preferred_channels, \
     (SELECT json_agg(json_build_object('id', e.id, 'channel', e.channel, 'target', e.target, \
        'format', e.format, 'secret', e.secret, 'p256dh', e.p256dh, 'auth', e.auth) \
        ORDER BY e.id)::text \
      FROM channel_endpoints e WHERE e.user_id = u.id AND e.active) AS endpoints, \
     (SELECT json_agg(json_build_object('id', t.id, 'title', t.title, 'status', t.status, \
        'due_at', t.due_at) ORDER BY t.due_at, t.id)::text \
      FROM (SELECT id, title, status, due_at FROM tasks WHERE user_id = u.id \
        AND status IN ('todo', 'in_progress') AND due_at < v.e ORDER BY due_at, id LIMIT $4) t) \
      AS tasks, \
     (SELECT count(*) FROM tasks WHERE user_id = u.id AND status IN ('todo', 'in_progress') \
        AND due_at < v.e) AS due_count, \
     (SELECT json_agg(due_at)::text FROM tasks WHERE user_id = u.id \
        AND status IN ('todo', 'in_progress') AND due_at >= v.f AND due_at < v.e) AS edge, \
     (SELECT json_agg(json_build_object('id', d.id, 'channel', d.channel, \
        'endpoint_id', d.endpoint_id, 'status', d.status, 'claimed_at', d.claimed_at, \
        'lease_until', d.lease_until))::text \
      FROM agenda_deliveries d WHERE d.user_id = u.id AND d.agenda_date = v.d) AS deliveries \
     FROM UNNEST($1::bigint[], $2::date[], $3::timestamptz[], $5::timestamptz[]) AS v(u, d, e, f) \
     JOIN users u ON u.id = v.u LEFT JOIN user_preferences p ON p.user_id = u.id";

pub(crate) async fn contexts(
    pool: &PgPool,
    asked: &[AgendaAsked],
    tasks: i64,
) -> Result<Vec<Result<AgendaContext, Malformed>>, StoreError> {
    let rows: Vec<AgendaContextRaw> = sqlx::query_as(CONTEXTS)
        .bind(asked.iter().map(|a| a.user_id.get()).collect::<Vec<_>>())
        .bind(asked.iter().map(|a| a.date).collect::<Vec<_>>())
        .bind(asked.iter().map(|a| a.latest_end).collect::<Vec<_>>())
        .bind(tasks)
        .bind(asked.iter().map(|a| a.earliest_end).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(AgendaContext::try_from).collect())
}

/// Claims the deliveries nobody holds: new ones, and those whose claim ran out (`$8` now,
/// `$9` lease end). A delivery done before or held by another is not returned.
const CLAIM_DELIVERIES: &str = "INSERT INTO agenda_deliveries (user_id, agenda_date, channel, \
       endpoint_id, event_id, status, tasks, recipient, claimed_at, lease_until) \
     SELECT u, d, c, p, e, 'sending', n, r, $8, $9 \
     FROM UNNEST($1::bigint[], $2::date[], $3::text[], $4::bigint[], $5::text[], $6::int[], \
       $7::text[]) AS v(u, d, c, p, e, n, r) \
     ON CONFLICT (user_id, agenda_date, channel, endpoint_id) DO UPDATE \
       SET event_id = EXCLUDED.event_id, tasks = EXCLUDED.tasks, recipient = EXCLUDED.recipient, \
         claimed_at = EXCLUDED.claimed_at, lease_until = EXCLUDED.lease_until \
       WHERE agenda_deliveries.status = 'sending' AND agenda_deliveries.lease_until <= $8 \
     RETURNING id, user_id, channel, endpoint_id, claimed_at";

pub(crate) async fn claim_deliveries(
    pool: &PgPool,
    claims: &[AgendaClaim],
    (now, until): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<AgendaHeld>, StoreError> {
    Ok(sqlx::query_as(CLAIM_DELIVERIES)
        .bind(claims.iter().map(|c| c.user_id.get()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.date).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.channel.as_str()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.endpoint_id).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.event_id.as_str()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.tasks).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.recipient.as_str()).collect::<Vec<_>>())
        .bind(now)
        .bind(until)
        .fetch_all(pool)
        .await?)
}

/// Records the deliveries' ends where the claim is still the one held (fenced by
/// `claimed_at`).
const FINISH: &str = "UPDATE agenda_deliveries a SET status = v.s, message_id = v.m, detail = v.x, \
       completed_at = $6 \
     FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[]) \
       AS v(i, c, s, m, x) \
     WHERE a.id = v.i AND a.claimed_at = v.c AND a.status = 'sending'";

pub(crate) async fn finish(
    pool: &PgPool,
    ends: &[AgendaFinished],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(FINISH)
        .bind(ends.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.claimed_at).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.status.as_str()).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.message_id.clone()).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.detail.clone()).collect::<Vec<_>>())
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
