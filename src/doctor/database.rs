//! The database, as the functions reach it (`DATABASE_URL`).
//!
//! Why:
//! - **`max_connections`.** Each pod opens up to `DATABASE_MAX_CONNECTIONS` (5) connections,
//!   and at full scale knative/ runs (notify max-scale 10 + recur max-scale 10) pods plus two
//!   overlapping scheduler runs: (10 + 10) × 5 + 2 × 5 = 110 connections, more than
//!   PostgreSQL's default 100. Past the limit a new pod fails to connect exactly when the load
//!   is highest (docs/DEPLOYMENT.md, "An existing database"). The default asks for 10 more:
//!   the migration Job during an upgrade, PostgreSQL's reserved superuser connections, an
//!   operator's psql.
//! - **Migrations.** The functions and the scheduler do not migrate (a Job does); a database
//!   this release's migrations have not reached fails at the first statement that needs a new
//!   column, long after start. Compared: the versions in `_sqlx_migrations` against those this
//!   build embeds.
//!
//! Only PostgreSQL: a SQLite file is the local, one-process setup, which migrates itself.
//!
//! Read: [`read`] (two queries). Decide: [`connections_finding`], [`migrations_finding`].

use super::{Finding, Shape};
use anyhow::Context;
use todo_events_host::config::var_or;
use todo_events_host::startup::DEFAULT_DATABASE_URL;
use todo_events_store::{Store, StoreOptions};

/// The largest pod counts (Knative `autoscaling.knative.dev/max-scale`) of knative/'s notify
/// and recur, the connections each pod opens, and the scheduler runs that overlap (a run a
/// minute, each stopped after 110 s): a test reads them from the manifests.
const NOTIFY_PODS: u32 = 10;
const RECUR_PODS: u32 = 10;
const CONNECTIONS_PER_POD: u32 = 5;
const SCHEDULER_RUNS: u32 = 2;

/// What knative/ opens at full scale: 110.
const FULL_SCALE: u32 =
    (NOTIFY_PODS + RECUR_PODS) * CONNECTIONS_PER_POD + SCHEDULER_RUNS * CONNECTIONS_PER_POD;

/// Beyond the functions: the migration Job, PostgreSQL's reserved superuser connections, an
/// operator's psql.
const HEADROOM: u32 = 10;

/// `--connections`' default: 120.
pub const DEFAULT_CONNECTIONS: u32 = FULL_SCALE + HEADROOM;

/// What was read from PostgreSQL.
#[derive(Debug)]
pub struct Facts {
    /// `SHOW max_connections`.
    pub max_connections: i64,
    /// The versions `_sqlx_migrations` records as applied; `None` without that table.
    pub applied: Option<Vec<i64>>,
}

/// Whether the server takes `needed` connections.
pub fn connections_finding(max_connections: i64, needed: u32) -> Finding {
    let what = format!("PostgreSQL max_connections of at least {needed}");
    if max_connections >= i64::from(needed) {
        return Finding::ok(format!(
            "PostgreSQL max_connections {max_connections} (at least {needed})"
        ));
    }
    Finding::missing(
        what,
        format!(
            "it is {max_connections}: at full scale the functions' pods and the scheduler open more, \
             and a new pod fails to connect exactly when the load is highest"
        ),
        format!(
            "psql \"$DATABASE_URL\" -c 'ALTER SYSTEM SET max_connections = {needed}', then restart \
             PostgreSQL (a managed server: its max_connections parameter; or PgBouncer in session mode)"
        ),
    )
}

/// Whether every migration this build embeds is applied, and no unknown one.
pub fn migrations_finding(applied: Option<&[i64]>, embedded: &[i64], shape: Shape) -> Finding {
    let what = "database migrations applied";
    let fix = format!(
        "kubectl apply -f {}/migrate.yaml (the migration Job; delete a finished one first), or \
         DATABASE_URL=… todo-events migrate",
        shape.dir()
    );
    let Some(applied) = applied else {
        return Finding::missing(
            what,
            "none is (no _sqlx_migrations table): the functions do not migrate",
            fix,
        );
    };
    let pending: Vec<String> = embedded
        .iter()
        .filter(|v| !applied.contains(v))
        .map(i64::to_string)
        .collect();
    let unknown: Vec<String> = applied
        .iter()
        .filter(|v| !embedded.contains(v))
        .map(i64::to_string)
        .collect();
    if !unknown.is_empty() {
        return Finding::missing(
            what,
            format!(
                "the database has migration(s) {} that this build does not know: a newer release migrated it",
                unknown.join(", ")
            ),
            "run the release that migrated it (the image tag of the migration Job that last ran)",
        );
    }
    if !pending.is_empty() {
        return Finding::missing(
            what,
            format!(
                "{} of {} are not: {}; the functions do not migrate and fail at the first statement \
                 that needs them",
                pending.len(),
                embedded.len(),
                pending.join(", ")
            ),
            fix,
        );
    }
    Finding::ok(format!("{what}: all {}", embedded.len()))
}

/// How long connecting may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads `max_connections` and the applied migrations, on one connection of its own (a
/// pool's timeout would hide why connecting failed).
async fn read(url: &str) -> anyhow::Result<Facts> {
    use sqlx::Connection;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(url))
        .await
        .context("connecting: no answer within 10 s")?
        .context("connecting")?;
    let facts = read_facts(&mut conn).await;
    let _ = conn.close().await;
    facts
}

async fn read_facts(conn: &mut sqlx::PgConnection) -> anyhow::Result<Facts> {
    let max: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut *conn)
        .await
        .context("SHOW max_connections")?;
    let max_connections = max.parse().with_context(|| format!("max_connections {max:?}"))?;
    let table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .context("looking for _sqlx_migrations")?;
    let applied = if table {
        let versions =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&mut *conn)
                .await
                .context("reading _sqlx_migrations")?;
        Some(versions)
    } else {
        None
    };
    Ok(Facts {
        max_connections,
        applied,
    })
}

/// Reads the database `DATABASE_URL` names and decides.
pub async fn check(shape: Shape, needed: u32) -> Vec<Finding> {
    let url = match var_or("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned()) {
        Ok(url) => url,
        Err(e) => {
            return vec![Finding::missing(
                "DATABASE_URL",
                e.0,
                "set DATABASE_URL as the functions have it",
            )]
        }
    };
    // Opened as the functions open it (which URLs count, which backend), never connected.
    let store = match Store::open(&StoreOptions::new(url.clone())) {
        Ok(store) => store,
        Err(e) => {
            return vec![Finding::missing(
                "DATABASE_URL",
                e.to_string(),
                "set DATABASE_URL to postgres://user:password@host:5432/database",
            )]
        }
    };
    if !matches!(store, Store::Postgres(_)) {
        return vec![Finding::skipped(
            "database",
            "DATABASE_URL is a SQLite file (the local one-process setup, which migrates itself): \
             max_connections and migrations are checked on PostgreSQL only",
        )];
    }
    match read(&url).await {
        Ok(facts) => vec![
            connections_finding(facts.max_connections, needed),
            migrations_finding(facts.applied.as_deref(), &store.migration_versions(), shape),
        ],
        Err(e) => vec![Finding::missing(
            "database reachable",
            todo_events_domain::redact::passwords(&super::one_line(&e)),
            "check DATABASE_URL (Secret todo-events-secrets) and that PostgreSQL accepts this client",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::manifests;

    #[test]
    fn doctor_database_connections_against_the_need() {
        let cases = [
            (100, 120, false),
            (119, 120, false),
            (120, 120, true),
            (300, 120, true),
        ];
        for (have, need, ok) in cases {
            let finding = connections_finding(have, need);
            assert_eq!(finding.is_problem(), !ok, "{finding}");
        }
        let line = connections_finding(100, 120).to_string();
        assert!(
            line.starts_with("MISSING PostgreSQL max_connections of at least 120: it is 100"),
            "{line}"
        );
        assert!(
            line.contains("Fix: psql \"$DATABASE_URL\" -c 'ALTER SYSTEM SET max_connections = 120'"),
            "{line}"
        );
        assert_eq!(cases.len(), 4);
    }

    #[test]
    fn doctor_database_migrations_compared_with_the_embedded_ones() {
        let embedded = [1, 2, 3];
        let cases: [(Option<&[i64]>, Option<&str>); 5] = [
            (Some(&[1, 2, 3]), None),
            (None, Some("none is (no _sqlx_migrations table)")),
            (Some(&[]), Some("3 of 3 are not: 1, 2, 3")),
            (Some(&[1, 2]), Some("1 of 3 are not: 3")),
            (
                Some(&[1, 2, 3, 4]),
                Some("migration(s) 4 that this build does not know"),
            ),
        ];
        for (applied, problem) in &cases {
            let line = migrations_finding(*applied, &embedded, Shape::Knative).to_string();
            match problem {
                None => assert_eq!(line, "ok   database migrations applied: all 3"),
                Some(why) => assert!(
                    line.starts_with("MISSING database migrations applied: ") && line.contains(why),
                    "{line}"
                ),
            }
        }
        let line = migrations_finding(None, &embedded, Shape::Keda).to_string();
        assert!(line.contains("Fix: kubectl apply -f keda/migrate.yaml"), "{line}");
        assert_eq!(cases.len(), 5);
    }

    /// The default is knative/ at full scale, recomputed from the manifests, plus 10.
    #[test]
    fn doctor_default_connections_are_the_manifests_full_scale() {
        let max_scale = |file: &str| {
            let service = &manifests::of_kind(file, "Service")[0];
            manifests::number(
                service,
                &[
                    "spec",
                    "template",
                    "metadata",
                    "annotations",
                    "autoscaling.knative.dev/max-scale",
                ],
            )
        };
        let config = manifests::of_kind("knative/config.yaml", "ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"].as_str() == Some("todo-events-config"))
            .expect("todo-events-config");
        let per_pod = manifests::number(&config, &["data", "DATABASE_MAX_CONNECTIONS"]);
        let cron = &manifests::of_kind("knative/scheduler-cron.yaml", "CronJob")[0];
        assert_eq!(
            cron["spec"]["schedule"].as_str(),
            Some("* * * * *"),
            "a run a minute"
        );
        assert_eq!(cron["spec"]["concurrencyPolicy"].as_str(), Some("Allow"));
        let deadline = manifests::number(cron, &["spec", "jobTemplate", "spec", "activeDeadlineSeconds"]);
        let runs = deadline.div_ceil(60);

        let (notify, recur) = (max_scale("knative/notify.yaml"), max_scale("knative/recur.yaml"));
        assert_eq!(
            (notify, recur, per_pod, runs),
            (NOTIFY_PODS, RECUR_PODS, CONNECTIONS_PER_POD, SCHEDULER_RUNS)
        );
        assert_eq!((notify + recur) * per_pod + runs * per_pod, 110);
        assert_eq!(FULL_SCALE, 110);
        assert_eq!(DEFAULT_CONNECTIONS, 110 + 10);
    }
}
