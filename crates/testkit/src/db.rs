//! Databases for tests: a fresh, migrated one per test on each backend ([`sqlite`],
//! [`postgres`], both at once with [`backends`]), one that cannot be reached
//! ([`unreachable_store`]), and the raw writes the store's typed API refuses on purpose.
//!
//! Its own module because every integration test starts here, and because a PostgreSQL
//! database must be created and dropped around each test (so that runs neither share rows nor
//! leave databases behind): that bookkeeping is kept in one place.

use crate::{bad_stored, require};
use todo_events_domain::UserId;
use todo_events_store::{Store, StoreOptions};

/// A fresh, migrated database; a PostgreSQL one is dropped with it.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// Last, so the store's pool goes first.
    _dropped_with_it: Option<DropDatabase>,
}

/// Drops a test's PostgreSQL database when the test is done (passed or failed), so runs do
/// not leave databases behind. `WITH (FORCE)` ends the connections still open, such as those
/// of the test's pool or of a binary the test started.
struct DropDatabase {
    admin: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = require::block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .map(|_| ())
        });
        if let Err(e) = dropped {
            eprintln!("test database {} was not dropped: {e}", self.name);
        }
    }
}

impl TestDb {
    /// Writes one `channel_endpoints` row for `user` with plain SQL, as the todo app would
    /// (the store's typed insert cannot write an unknown channel); the database's error as
    /// text when it refuses the row.
    pub async fn insert_endpoint_row(
        &self,
        user: UserId,
        e: &bad_stored::StoredEndpoint,
    ) -> Result<i64, String> {
        use sqlx::Connection;
        const SQL: &str =
            "INSERT INTO channel_endpoints (user_id, channel, target, format, secret, p256dh, auth) \
             VALUES ($1, $2, $3, COALESCE($4, 'standard'), $5, $6, $7) RETURNING id";
        macro_rules! insert {
            ($conn:ty) => {{
                let mut conn = <$conn>::connect(&self.url).await.expect("connect");
                sqlx::query_scalar::<_, i64>(SQL)
                    .bind(user.get())
                    .bind(&e.channel)
                    .bind(&e.target)
                    .bind(&e.format)
                    .bind(&e.secret)
                    .bind(&e.p256dh)
                    .bind(&e.auth)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| e.to_string())
            }};
        }
        if self.backend == "postgres" {
            insert!(sqlx::PgConnection)
        } else {
            insert!(sqlx::SqliteConnection)
        }
    }

    /// Runs one statement with plain SQL, as the todo app would (preferences, a snooze, a
    /// cancel), binding `at` as `$1` when given; the rows it changed, or the database's
    /// error as text when it refuses.
    pub async fn execute(&self, sql: &str, at: Option<chrono::DateTime<chrono::Utc>>) -> Result<u64, String> {
        use sqlx::Connection;
        macro_rules! run {
            ($conn:ty) => {{
                let mut conn = <$conn>::connect(&self.url).await.expect("connect");
                let mut query = sqlx::query(sql);
                if let Some(at) = at {
                    query = query.bind(at);
                }
                query
                    .execute(&mut conn)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(|e| e.to_string())
            }};
        }
        if self.backend == "postgres" {
            run!(sqlx::PgConnection)
        } else {
            run!(sqlx::SqliteConnection)
        }
    }

    /// The first column of each row `sql` returns, as text (a view or table read as the todo
    /// app would read it).
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        use sqlx::Connection;
        macro_rules! run {
            ($conn:ty) => {{
                let mut conn = <$conn>::connect(&self.url).await.expect("connect");
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }};
        }
        if self.backend == "postgres" {
            run!(sqlx::PgConnection)
        } else {
            run!(sqlx::SqliteConnection)
        }
    }

    /// Makes the database refuse every task instance of recurring task `id`, with an error
    /// that is not transient (as a broken constraint would): a trigger on `tasks`, so that a
    /// batch's write fails because of one of its events.
    pub async fn refuse_instances_of(&self, id: todo_events_domain::RecurringTaskId) {
        use sqlx::{Connection, Executor};
        let id = id.get();
        if self.backend == "postgres" {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect");
            conn.execute(
                format!(
                    "CREATE FUNCTION te_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                     RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514'; END $$; \
                     CREATE TRIGGER te_refuse BEFORE INSERT ON tasks FOR EACH ROW \
                     WHEN (NEW.recurring_task_id = {id}) EXECUTE FUNCTION te_refuse();"
                )
                .as_str(),
            )
            .await
            .expect("trigger created");
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
            conn.execute(
                format!(
                    "CREATE TRIGGER te_refuse BEFORE INSERT ON tasks \
                     WHEN NEW.recurring_task_id = {id} \
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
                )
                .as_str(),
            )
            .await
            .expect("trigger created");
        }
    }
}

/// A fresh SQLite file in a temporary directory.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::open(&StoreOptions::new(url.clone())).expect("sqlite opens");
    store.migrate().await.expect("sqlite migrates");
    TestDb {
        store,
        url,
        backend: "sqlite",
        _dir: Some(dir),
        _dropped_with_it: None,
    }
}

/// A fresh PostgreSQL database, dropped with the [`TestDb`], or `None` when PostgreSQL is
/// unreachable outside CI ([`require::postgres`]: one message per test binary).
pub async fn postgres() -> Option<TestDb> {
    use sqlx::Connection;
    let admin = require::postgres()?;
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} was reachable a moment ago: {e}"));
    let name = format!("te_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let dropped_with_it = DropDatabase {
        admin: admin.clone(),
        name: name.clone(),
    };
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("TEST_DATABASE_URL must end with /<database>"),
    };
    let mut opts = StoreOptions::new(url.clone());
    opts.max_connections = 20;
    // As the functions open it (crates/kafka/src/cli.rs).
    opts.generic_plans = true;
    let store = Store::open(&opts).expect("postgres opens");
    store.migrate().await.expect("postgres migrates");
    Some(TestDb {
        store,
        url,
        backend: "postgres",
        _dir: None,
        _dropped_with_it: Some(dropped_with_it),
    })
}

/// Every backend available: SQLite always, PostgreSQL when reachable (always under CI).
pub async fn backends() -> Vec<TestDb> {
    let mut all = vec![sqlite().await];
    all.extend(postgres().await);
    all
}

/// A store whose database cannot be reached (for 503 / readiness tests).
pub fn unreachable_store() -> Store {
    let mut opts = StoreOptions::new("postgres://postgres@127.0.0.1:9/nothing");
    opts.acquire_timeout = std::time::Duration::from_millis(500);
    Store::open(&opts).expect("lazy pool opens")
}

/// What an [`unreachable_store`]'s errors say, which no answer may show.
pub const UNREACHABLE_STORE_TEXT: &[&str] = &[
    "127.0.0.1:9",
    "os error",
    "pool",
    "connection",
    "refused",
    "timed out",
];
