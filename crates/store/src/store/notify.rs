//! The [`Store`]'s notify methods: each picks the backend's statement
//! (`postgres/notify.rs`, `sqlite/notify.rs`). A batch method given no rows sends nothing.
//! Apart from `notify.rs`, which holds what these take and give (and why claims work as
//! they do), so that the types need no backend and the backends need no facade.

use crate::error::StoreError;
use crate::notify::{Claim, Claimed, Finished, Found, Held, NewClaim, Release};
use crate::rows::{self, DeliveryRow, ReminderContext};
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use todo_events_domain::{DeliveryId, EndpointId, ReminderId};

impl Store {
    /// The reminders the events name, each with the time its event names, in one
    /// statement: each reminder's context (typed, or why its row cannot be read) and whether
    /// the event's time was sent although the reminder was moved since ([`Found`]).
    /// Reminders that do not exist are absent.
    pub async fn reminder_contexts(
        &self,
        events: &[(ReminderId, DateTime<Utc>)],
    ) -> Result<HashMap<ReminderId, Found>, StoreError> {
        let asked: Vec<_> = events.iter().map(|&(id, at)| (id, Some(at))).collect();
        self.found(&asked).await
    }

    /// One reminder's context as stored (operators, tests: no event's time is asked about).
    pub async fn reminder_context(&self, id: ReminderId) -> Result<Option<ReminderContext>, StoreError> {
        match self.found(&[(id, None)]).await?.remove(&id) {
            Some(found) => Ok(Some(found.context?)),
            None => Ok(None),
        }
    }

    /// The contexts read, keyed by each row's own id (read as such first).
    async fn found(
        &self,
        asked: &[(ReminderId, Option<DateTime<Utc>>)],
    ) -> Result<HashMap<ReminderId, Found>, StoreError> {
        let rows = match self {
            Self::Postgres(pool) => postgres::notify::reminder_contexts(pool, asked).await?,
            Self::Sqlite(pool) => sqlite::notify::reminder_contexts(pool, asked).await?,
        };
        rows.into_iter()
            .map(|found| {
                let id = match &found.context {
                    Ok(ctx) => ctx.reminder_id,
                    Err(m) => rows::id(m.table, m.id, "id", m.id, ReminderId::new)?,
                };
                Ok((id, found))
            })
            .collect()
    }

    /// Claims the deliveries that nobody has claimed yet, in one statement; returns the
    /// claimed ones as ((reminder, route), delivery). A delivery claimed before (live,
    /// expired or finished) is left to [`Store::claim_deliveries`], which knows about leases.
    pub async fn claim_new_deliveries(
        &self,
        claims: &[NewClaim<'_>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => {
                postgres::notify::claim_new_deliveries(pool, claims, now, now + lease).await
            }
            Self::Sqlite(pool) => sqlite::notify::claim_new_deliveries(pool, claims, now, now + lease).await,
        }
    }

    /// Claims deliveries that were claimed before, for `lease`, in one statement: each one
    /// whose holder vanished (lease over) or that was released after a transient failure
    /// (its retry time come) is taken over, incrementing its token; each other one is
    /// reported as found (held by a live claim, released until later, or finished). One
    /// answer per claim, in order.
    pub async fn claim_deliveries(
        &self,
        claims: &[NewClaim<'_>],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => postgres::notify::claim_deliveries(pool, claims, now, now + lease).await,
            Self::Sqlite(pool) => sqlite::notify::claim_deliveries(pool, claims, now, now + lease).await,
        }
    }

    /// Records the outcomes of claimed deliveries and moves their reminders to `sent` /
    /// `failed`, atomically. Only claims still held are recorded (fenced by their token,
    /// see [`Held`]); returns the deliveries recorded, so a caller whose claim was taken
    /// over learns that its outcome is not the one kept.
    pub async fn finish_deliveries(
        &self,
        done: &[(Held, Finished<'_>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => postgres::notify::finish_deliveries(pool, done, now).await,
            Self::Sqlite(pool) => sqlite::notify::finish_deliveries(pool, done, now).await,
        }
    }

    /// Gives claims back after transient failures, in one statement: the next delivery
    /// attempt may take each from its `until` (now, or when the receiver said to try again);
    /// the reason is kept for operators. Only the claim that holds a row releases it (fenced
    /// by its token); returns the deliveries released (one taken over or finished since is
    /// not: nothing changed).
    pub async fn release_deliveries(&self, releases: &[Release<'_>]) -> Result<Vec<DeliveryId>, StoreError> {
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => postgres::notify::release_deliveries(pool, releases).await,
            Self::Sqlite(pool) => sqlite::notify::release_deliveries(pool, releases).await,
        }
    }

    /// Moves reminder occurrences whose deliveries are all finished to `sent` / `failed` (see
    /// [`crate::notify`]), in one statement; returns those moved (not one with a delivery still
    /// `sending`, none at all, or cancelled).
    pub async fn settle_reminders(
        &self,
        occurrences: &[(ReminderId, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReminderId>, StoreError> {
        if occurrences.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => postgres::notify::settle_reminders(pool, occurrences, now).await,
            Self::Sqlite(pool) => sqlite::notify::settle_reminders(pool, occurrences, now).await,
        }
    }

    /// Puts reminders off to the end of their users' quiet hours (`(reminder, its event's
    /// remind_at, until)`), each once per `remind_at`, in one statement; returns those
    /// deferred now (not: deferred before, moved, cancelled or done meanwhile).
    pub async fn defer_reminders(
        &self,
        deferrals: &[(ReminderId, DateTime<Utc>, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReminderId>, StoreError> {
        if deferrals.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Postgres(pool) => postgres::notify::defer_reminders(pool, deferrals, now).await,
            Self::Sqlite(pool) => sqlite::notify::defer_reminders(pool, deferrals, now).await,
        }
    }

    /// Deactivates endpoints whose receivers said they are gone (push subscriptions that
    /// ended), keeping why (the first reason given for an endpoint named twice), in one
    /// statement. An endpoint inactive already keeps its own.
    pub async fn deactivate_endpoints(
        &self,
        gone: &[(EndpointId, &str)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if gone.is_empty() {
            return Ok(());
        }
        match self {
            Self::Postgres(pool) => postgres::notify::deactivate_endpoints(pool, gone, now).await,
            Self::Sqlite(pool) => sqlite::notify::deactivate_endpoints(pool, gone, now).await,
        }
    }

    /// All delivery records of a reminder (for operators and tests).
    pub async fn deliveries_of(&self, reminder: ReminderId) -> Result<Vec<DeliveryRow>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::notify::deliveries_of(pool, reminder).await,
            Self::Sqlite(pool) => sqlite::notify::deliveries_of(pool, reminder).await,
        }
    }
}
