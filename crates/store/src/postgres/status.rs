//! The status events' statements on PostgreSQL (`crate::status` says what they are for).

use crate::error::StoreError;
use crate::status::{ClaimedStatus, NewStatus};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Records status events, each id once (one statement).
const RECORD: &str = "INSERT INTO notification_events \
     (id, type, outcome, reminder_id, task_id, user_id, remind_at, reason, data, created_at) \
     SELECT * , $10::timestamptz FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], \
       $5::bigint[], $6::bigint[], $7::timestamptz[], $8::text[], $9::text[]) \
     ON CONFLICT (id) DO NOTHING";

pub(crate) async fn record(
    pool: &PgPool,
    events: &[NewStatus],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let col = |f: fn(&NewStatus) -> String| events.iter().map(f).collect::<Vec<_>>();
    let done = sqlx::query(RECORD)
        .bind(col(|e| e.id.clone()))
        .bind(col(|e| e.ty.clone()))
        .bind(col(|e| e.outcome.to_owned()))
        .bind(events.iter().map(|e| e.reminder_id.get()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.task_id.get()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.user_id.get()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.remind_at).collect::<Vec<_>>())
        .bind(col(|e| e.reason.clone()))
        .bind(col(|e| e.data.to_string()))
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Claims unpublished status events (oldest first) whose lease, if any, ran out.
const CLAIM: &str = "UPDATE notification_events SET lease_owner = $1, lease_until = $2 \
     WHERE id IN (SELECT id FROM notification_events \
       WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until <= $3) \
       ORDER BY created_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, type, task_id, user_id, data";

pub(crate) async fn claim(
    pool: &PgPool,
    owner: &str,
    (now, until): (DateTime<Utc>, DateTime<Utc>),
    limit: i64,
) -> Result<Vec<ClaimedStatus>, StoreError> {
    Ok(sqlx::query_as(CLAIM)
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

const MARK: &str = "UPDATE notification_events SET published_at = $2, lease_owner = NULL, \
     lease_until = NULL WHERE lease_owner = $1 AND id = ANY($3)";

pub(crate) async fn mark(
    pool: &PgPool,
    owner: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(MARK)
        .bind(owner)
        .bind(now)
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
