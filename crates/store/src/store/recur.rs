//! The [`Store`]'s and the [`Session`]'s recur methods: each picks the backend's statement
//! (`postgres/recur.rs`, `sqlite/recur.rs`). Apart from `recur.rs`, which holds the types
//! these take and give, so that the types need no backend and the backends need no facade.

use crate::error::StoreError;
use crate::recur::{Instantiate, Instantiated, Occurrence, RecurringState, Session};
use crate::rows::RecurringTaskRow;
use crate::{postgres, sqlite, Store};
use chrono::{DateTime, Utc};
use todo_events_domain::{RecurringTaskId, TaskId};

impl Store {
    /// The connection a batch of recur's events reads and writes over (see [`Session`]).
    pub async fn session(&self) -> Result<Session, StoreError> {
        Ok(match self {
            Self::Postgres(pool) => Session::Postgres(pool.acquire().await?),
            Self::Sqlite(pool) => Session::Sqlite(pool.clone()),
        })
    }

    /// Creates the instance for one occurrence (once) and advances its recurring task (see
    /// [`Session::instantiate`]).
    pub async fn instantiate(&self, job: &Instantiate<'_>) -> Result<Instantiated, StoreError> {
        let done = self
            .session()
            .await?
            .instantiate(std::slice::from_ref(job))
            .await?;
        done.into_iter()
            .next()
            .ok_or_else(|| StoreError::Other("the instance transaction gave no result".into()))
    }

    /// The recurring tasks among `ids`, in one statement (those that do not exist are
    /// absent; a malformed one is an error).
    pub async fn recurring_tasks(
        &self,
        ids: &[RecurringTaskId],
    ) -> Result<Vec<RecurringTaskRow>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::recur::recurring_tasks(pool, ids).await,
            Self::Sqlite(pool) => sqlite::recur::recurring_tasks(pool, ids).await,
        }
    }

    pub async fn recurring_task(&self, id: RecurringTaskId) -> Result<Option<RecurringTaskRow>, StoreError> {
        Ok(self.recurring_tasks(&[id]).await?.pop())
    }

    /// Instances created from a recurring task, as (task, occurrence), oldest first.
    pub async fn instances_of(
        &self,
        id: RecurringTaskId,
    ) -> Result<Vec<(TaskId, DateTime<Utc>)>, StoreError> {
        match self {
            Self::Postgres(pool) => postgres::recur::instances_of(pool, id).await,
            Self::Sqlite(pool) => sqlite::recur::instances_of(pool, id).await,
        }
    }
}

impl Session {
    /// The recurring tasks of `occurrences` and the instances that exist for them.
    pub async fn recurring_state(
        &mut self,
        occurrences: &[Occurrence],
    ) -> Result<RecurringState, StoreError> {
        match self {
            Session::Postgres(conn) => postgres::recur::recurring_state(conn, occurrences).await,
            Session::Sqlite(pool) => sqlite::recur::recurring_state(pool, occurrences).await,
        }
    }

    /// Creates the instances of several occurrences of distinct recurring tasks, in one
    /// transaction, and advances their tasks. One result per job, in order.
    pub async fn instantiate(&mut self, jobs: &[Instantiate<'_>]) -> Result<Vec<Instantiated>, StoreError> {
        debug_assert!(
            jobs.iter()
                .map(|j| j.recurring.id)
                .collect::<std::collections::HashSet<_>>()
                .len()
                == jobs.len(),
            "one job per recurring task in a batch"
        );
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Session::Postgres(conn) => postgres::recur::instantiate(conn, jobs).await,
            Session::Sqlite(pool) => sqlite::recur::instantiate(pool, jobs).await,
        }
    }
}
