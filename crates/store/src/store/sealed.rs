//! The [`Store`]'s sealing methods (`crate::sealed`). Their statements read the same on both
//! backends (SQLite has `IS NOT DISTINCT FROM` since 3.39), so each is written once here and
//! sent to whichever pool the store holds.

use crate::error::StoreError;
use crate::sealed::{sealed_row, Keys, SealedRows, StoredSecrets};
use crate::Store;

/// Endpoints with a secret or key not sealed with the sealing key (pattern `$2`), up to `$1`,
/// from id `$3` on.
const NOT_CURRENT: &str = "SELECT id, user_id, secret, p256dh, auth FROM channel_endpoints \
     WHERE id >= $3 AND ((secret IS NOT NULL AND secret NOT LIKE $2) \
        OR (p256dh IS NOT NULL AND p256dh NOT LIKE $2) \
        OR (auth IS NOT NULL AND auth NOT LIKE $2)) \
     ORDER BY id LIMIT $1";

/// The most recent rows holding a sealed value, up to `$1`: what the start-up check opens.
const SEALED: &str = "SELECT id, user_id, secret, p256dh, auth FROM channel_endpoints \
     WHERE secret LIKE 'sealed:v1:%' OR p256dh LIKE 'sealed:v1:%' OR auth LIKE 'sealed:v1:%' \
     ORDER BY id DESC LIMIT $1";

/// Writes one row's sealed values, only while it still holds the values read (a row the app
/// changed meanwhile is sealed by the next pass).
const WRITE: &str = "UPDATE channel_endpoints SET secret = $5, p256dh = $6, auth = $7 \
     WHERE id = $1 AND secret IS NOT DISTINCT FROM $2 AND p256dh IS NOT DISTINCT FROM $3 \
     AND auth IS NOT DISTINCT FROM $4";

impl Store {
    /// Seals with the first of `keys` the secrets and keys of up to `limit` endpoints from id
    /// `from` on that are plain or sealed with another key (nothing without keys): each row
    /// written only while it holds what was read. Returns what it did and the id to go on
    /// from (`None`: none left).
    pub async fn seal_endpoints(
        &self,
        keys: &Keys,
        from: i64,
        limit: i64,
    ) -> Result<(SealedRows, Option<i64>), StoreError> {
        let mut done = SealedRows::default();
        let Some(pattern) = keys.sealing_pattern() else {
            return Ok((done, None));
        };
        let rows: Vec<StoredSecrets> = on_pool!(self, |pool| sqlx::query_as(NOT_CURRENT)
            .bind(limit)
            .bind(&pattern)
            .bind(from)
            .fetch_all(pool)
            .await?);
        let next = match rows.len() as i64 == limit {
            true => rows.last().map(|r| r.0 + 1),
            false => None,
        };
        for row in &rows {
            let new = match sealed_row(keys, row) {
                Ok(Some(new)) => new,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("channel_endpoints row {} is not sealed again: {e}", row.0);
                    done.unopened += 1;
                    continue;
                }
            };
            let (id, _, secret, p256dh, auth) = row;
            let written = on_pool!(self, |pool| sqlx::query(WRITE)
                .bind(id)
                .bind(secret)
                .bind(p256dh)
                .bind(auth)
                .bind(&new[0])
                .bind(&new[1])
                .bind(&new[2])
                .execute(pool)
                .await?
                .rows_affected());
            match written {
                1 => done.sealed += 1,
                _ => done.changed_meanwhile += 1,
            }
        }
        Ok((done, next))
    }

    /// The most recent `limit` endpoints holding a sealed value (the start-up check).
    pub async fn sealed_endpoints(&self, limit: i64) -> Result<Vec<StoredSecrets>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as(SEALED)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }
}
