//! The [`Store`]'s daily-agenda methods (`crate::agenda`): each picks the backend's
//! statement. A batch method given no rows sends nothing.

use crate::agenda::{
    AgendaAsked, AgendaClaim, AgendaContext, AgendaFinished, AgendaHeld, AgendaNext, ClaimedAgenda,
};
use crate::error::StoreError;
use crate::rows::Malformed;
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Duration, Utc};

impl Store {
    /// Claims up to `limit` users whose next agenda is due at `now` or not computed yet, for
    /// `owner`, for `lease`.
    pub async fn claim_agendas(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Result<ClaimedAgenda, Malformed>>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::agenda::claim(pool, owner, (now, now + lease), limit).await,
            Self::Sqlite(pool) => sqlite::agenda::claim(pool, owner, (now, now + lease), limit).await,
        }
    }

    /// Sets the users' next agendas, giving back `owner`'s claims (one statement).
    pub async fn schedule_agendas(&self, owner: &str, next: &[AgendaNext]) -> Result<u64, StoreError> {
        if next.is_empty() {
            return Ok(0);
        }
        match self {
            Self::Postgres(pool) => postgres::agenda::schedule(pool, owner, next).await,
            Self::Sqlite(pool) => sqlite::agenda::schedule(pool, owner, next).await,
        }
    }

    /// What notify needs for each agenda asked (one statement): the user, the open tasks due
    /// before the day's end (at most `tasks` of them listed), the date's deliveries so far.
    /// A user that does not exist has no row.
    pub async fn agenda_contexts(
        &self,
        asked: &[AgendaAsked],
        tasks: i64,
    ) -> Result<Vec<Result<AgendaContext, Malformed>>, StoreError> {
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => postgres::agenda::contexts(pool, asked, tasks).await,
            Self::Sqlite(pool) => sqlite::agenda::contexts(pool, asked, tasks).await,
        }
    }

    /// Claims agenda deliveries nobody holds (new, or their lease ran out at `now`) until
    /// `now + lease` (one statement); those returned are this caller's.
    pub async fn claim_agenda_deliveries(
        &self,
        claims: &[AgendaClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<AgendaHeld>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => {
                postgres::agenda::claim_deliveries(pool, claims, (now, now + lease)).await
            }
            Self::Sqlite(pool) => sqlite::agenda::claim_deliveries(pool, claims, (now, now + lease)).await,
        }
    }

    /// Records agenda deliveries' ends where their claims are still the ones held (one
    /// statement); how many were.
    pub async fn finish_agenda_deliveries(
        &self,
        ends: &[AgendaFinished],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if ends.is_empty() {
            return Ok(0);
        }
        match self {
            Self::Postgres(pool) => postgres::agenda::finish(pool, ends, now).await,
            Self::Sqlite(pool) => sqlite::agenda::finish(pool, ends, now).await,
        }
    }
}
