//! Store failures, classified by what the caller should do about them.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or asked us to try later (connection refused, pool
    /// timeout, serialization failure, SQLite busy). Callers answer `503` / retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The connection string or options are wrong.
    #[error("{0}")]
    Config(String),
    /// The input cannot be stored (e.g. a recurring task whose rule cannot recur).
    #[error("{0}")]
    Invalid(String),
    /// A stored value cannot be read as what it stands for (names the row).
    #[error("malformed row: {0}")]
    Malformed(#[from] crate::rows::Malformed),
    /// Anything else: a bug or a schema mismatch.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let text = todo_events_domain::redact::passwords(&e.to_string());
        match &e {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::Tls(_) | E::WorkerCrashed => {
                Self::Unavailable(text)
            }
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                // 40001 serialization failure, 40P01 deadlock, 57P01 admin shutdown,
                // 08xxx connection exceptions, 53xxx insufficient resources;
                // SQLite 5 SQLITE_BUSY, 6 SQLITE_LOCKED (and their extended codes).
                let transient = matches!(code.as_ref(), "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || (db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                        && code.parse::<i32>().is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6));
                if transient {
                    Self::Unavailable(text)
                } else {
                    Self::Other(text)
                }
            }
            _ => Self::Other(text),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => Self::Other(other.to_string()),
        }
    }
}
