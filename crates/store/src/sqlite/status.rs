//! The status events' statements on SQLite (`crate::status` says what they are for;
//! PostgreSQL's are in `postgres/status.rs`). Batches go in as one JSON array.

use crate::error::StoreError;
use crate::status::{ClaimedStatus, NewStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::SqlitePool;

/// An instant as stored (see `sqlite/notify.rs`).
fn stored(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

const RECORD: &str = "INSERT INTO notification_events \
     (id, type, outcome, reminder_id, task_id, user_id, remind_at, reason, data, created_at) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
       json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), $2 \
     FROM json_each($1) WHERE true \
     ON CONFLICT (id) DO NOTHING";

pub(crate) async fn record(
    pool: &SqlitePool,
    events: &[NewStatus],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!([
                e.id,
                e.ty,
                e.outcome,
                e.reminder_id.get(),
                e.task_id.get(),
                e.user_id.get(),
                stored(e.remind_at),
                e.reason,
                e.data.to_string()
            ])
        })
        .collect();
    let done = sqlx::query(RECORD)
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

const CLAIM: &str = "UPDATE notification_events SET lease_owner = $1, lease_until = $2 \
     WHERE id IN (SELECT id FROM notification_events \
       WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until <= $3) \
       ORDER BY created_at LIMIT $4) \
     RETURNING id, type, task_id, user_id, data";

pub(crate) async fn claim(
    pool: &SqlitePool,
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
     lease_until = NULL WHERE lease_owner = $1 AND id IN (SELECT value FROM json_each($3))";

pub(crate) async fn mark(
    pool: &SqlitePool,
    owner: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let ids = serde_json::to_string(ids).expect("texts serialize");
    let done = sqlx::query(MARK)
        .bind(owner)
        .bind(now)
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
