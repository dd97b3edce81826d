//! The daily agenda's statements on SQLite (`crate::agenda` says what they are for;
//! PostgreSQL's are in `postgres/agenda.rs`). Batches go in as one JSON array; instants as
//! sqlx binds them ([`stored`]), the form every stored time has, so that they compare as text.

use crate::agenda::{
    AgendaAsked, AgendaClaim, AgendaContext, AgendaContextRaw, AgendaFinished, AgendaHeld, AgendaNext,
    ClaimedAgenda, ClaimedAgendaRaw,
};
use crate::error::StoreError;
use crate::rows::Malformed;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use sqlx::SqlitePool;

fn stored(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

const CLAIM: &str = "UPDATE user_preferences SET agenda_lease_owner = $1, agenda_lease_until = $2 \
     WHERE user_id IN (SELECT user_id FROM user_preferences \
       WHERE agenda_at IS NOT NULL AND (agenda_next_at IS NULL OR agenda_next_at <= $3) \
         AND (agenda_lease_until IS NULL OR agenda_lease_until <= $3) \
       ORDER BY agenda_next_at IS NOT NULL, agenda_next_at LIMIT $4) \
     RETURNING user_id, (SELECT timezone FROM users WHERE id = user_id) AS timezone, agenda_at, \
       quiet_start, quiet_end, quiet_days, agenda_next_date AS next_date, \
       agenda_next_at AS next_at";

pub(crate) async fn claim(
    pool: &SqlitePool,
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

const SCHEDULE: &str = "UPDATE user_preferences SET \
       agenda_next_date = (SELECT json_extract(value, '$[1]') FROM json_each($2) \
         WHERE json_extract(value, '$[0]') = user_id), \
       agenda_next_at = (SELECT json_extract(value, '$[2]') FROM json_each($2) \
         WHERE json_extract(value, '$[0]') = user_id), \
       agenda_lease_owner = NULL, agenda_lease_until = NULL \
     WHERE agenda_lease_owner = $1 \
       AND user_id IN (SELECT json_extract(value, '$[0]') FROM json_each($2))";

pub(crate) async fn schedule(pool: &SqlitePool, owner: &str, next: &[AgendaNext]) -> Result<u64, StoreError> {
    let rows: Vec<_> = next
        .iter()
        .map(|n| {
            json!([
                n.user_id.get(),
                n.date.format("%Y-%m-%d").to_string(),
                stored(n.at)
            ])
        })
        .collect();
    let done = sqlx::query(SCHEDULE)
        .bind(owner)
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

const CONTEXTS: &str = "WITH v(u, d, e, f) AS (SELECT json_extract(value, '$[0]'), \
       json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]') \
       FROM json_each($1)) \
     SELECT u.id AS user_id, v.d AS agenda_date, u.email, u.display_name, u.timezone, \
     p.agenda_at, p.quiet_start, p.quiet_end, p.quiet_days, p.locale, \
     p.channels AS preferred_channels, \
     (SELECT json_group_array(json_object('id', e.id, 'channel', e.channel, 'target', e.target, \
        'format', e.format, 'secret', e.secret, 'p256dh', e.p256dh, 'auth', e.auth)) \
      FROM (SELECT * FROM channel_endpoints WHERE user_id = u.id AND active = 1 ORDER BY id) e) \
      AS endpoints, \
     (SELECT json_group_array(json_object('id', t.id, 'title', t.title, 'status', t.status, \
        'due_at', t.due_at)) \
      FROM (SELECT id, title, status, due_at FROM tasks WHERE user_id = u.id \
        AND status IN ('todo', 'in_progress') AND due_at < v.e ORDER BY due_at, id LIMIT $2) t) \
      AS tasks, \
     (SELECT count(*) FROM tasks WHERE user_id = u.id AND status IN ('todo', 'in_progress') \
        AND due_at < v.e) AS due_count, \
     (SELECT json_group_array(due_at) FROM tasks WHERE user_id = u.id \
        AND status IN ('todo', 'in_progress') AND due_at >= v.f AND due_at < v.e) AS edge, \
     (SELECT json_group_array(json_object('id', d.id, 'channel', d.channel, \
        'endpoint_id', d.endpoint_id, 'status', d.status, 'claimed_at', d.claimed_at, \
        'lease_until', d.lease_until)) \
      FROM agenda_deliveries d WHERE d.user_id = u.id AND d.agenda_date = v.d) AS deliveries \
     FROM v JOIN users u ON u.id = v.u LEFT JOIN user_preferences p ON p.user_id = u.id";

pub(crate) async fn contexts(
    pool: &SqlitePool,
    asked: &[AgendaAsked],
    tasks: i64,
) -> Result<Vec<Result<AgendaContext, Malformed>>, StoreError> {
    let rows: Vec<_> = asked
        .iter()
        .map(|a| {
            json!([
                a.user_id.get(),
                a.date.format("%Y-%m-%d").to_string(),
                stored(a.latest_end),
                stored(a.earliest_end)
            ])
        })
        .collect();
    let rows: Vec<AgendaContextRaw> = sqlx::query_as(CONTEXTS)
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(tasks)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(AgendaContext::try_from).collect())
}

const CLAIM_DELIVERIES: &str = "INSERT INTO agenda_deliveries (user_id, agenda_date, channel, \
       endpoint_id, event_id, status, tasks, recipient, claimed_at, lease_until) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), 'sending', \
       json_extract(value, '$[5]'), json_extract(value, '$[6]'), $2, $3 \
     FROM json_each($1) WHERE true \
     ON CONFLICT (user_id, agenda_date, channel, endpoint_id) DO UPDATE \
       SET event_id = excluded.event_id, tasks = excluded.tasks, recipient = excluded.recipient, \
         claimed_at = excluded.claimed_at, lease_until = excluded.lease_until \
       WHERE agenda_deliveries.status = 'sending' AND agenda_deliveries.lease_until <= $2 \
     RETURNING id, user_id, channel, endpoint_id, claimed_at";

pub(crate) async fn claim_deliveries(
    pool: &SqlitePool,
    claims: &[AgendaClaim],
    (now, until): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<AgendaHeld>, StoreError> {
    let rows: Vec<_> = claims
        .iter()
        .map(|c| {
            json!([
                c.user_id.get(),
                c.date.format("%Y-%m-%d").to_string(),
                c.channel.as_str(),
                c.endpoint_id,
                c.event_id,
                c.tasks,
                c.recipient
            ])
        })
        .collect();
    Ok(sqlx::query_as(CLAIM_DELIVERIES)
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(now)
        .bind(until)
        .fetch_all(pool)
        .await?)
}

/// `json_each` has an `id` column of its own: the row's is named with its table.
const FINISH: &str = "UPDATE agenda_deliveries SET \
       status = (SELECT json_extract(value, '$[2]') FROM json_each($1) \
         WHERE json_extract(value, '$[0]') = agenda_deliveries.id), \
       message_id = (SELECT json_extract(value, '$[3]') FROM json_each($1) \
         WHERE json_extract(value, '$[0]') = agenda_deliveries.id), \
       detail = (SELECT json_extract(value, '$[4]') FROM json_each($1) \
         WHERE json_extract(value, '$[0]') = agenda_deliveries.id), \
       completed_at = $2 \
     WHERE status = 'sending' AND EXISTS (SELECT 1 FROM json_each($1) \
       WHERE json_extract(value, '$[0]') = agenda_deliveries.id \
         AND json_extract(value, '$[1]') = agenda_deliveries.claimed_at)";

pub(crate) async fn finish(
    pool: &SqlitePool,
    ends: &[AgendaFinished],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let rows: Vec<_> = ends
        .iter()
        .map(|e| {
            json!([
                e.id,
                stored(e.claimed_at),
                e.status.as_str(),
                e.message_id,
                e.detail
            ])
        })
        .collect();
    let done = sqlx::query(FINISH)
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
