//! The work the suite pushes through the system, and what it must have produced: reminders
//! due one after another over the run, and recurring tasks whose occurrences fall due over
//! the same time (`FREQ=SECONDLY;INTERVAL=n;COUNT=5`, catch-up `all`, so every occurrence
//! must get its instance even when the system was down at its time).

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use todo_events_domain::ReminderId;

/// Occurrences per recurring task (the rule's COUNT).
pub const OCCURRENCES_PER_TASK: usize = 5;

pub struct Plan {
    pub reminders: usize,
    pub occurrences: usize,
    pub users: usize,
    /// Everything falls due between `start` and `start + spread`.
    pub start: DateTime<Utc>,
    pub spread: Duration,
}

impl Plan {
    pub fn recurring_tasks(&self) -> usize {
        self.occurrences.div_ceil(OCCURRENCES_PER_TASK)
    }

    /// Seconds between a task's occurrences: its five fit in the spread.
    pub fn interval_secs(&self) -> i64 {
        (self.spread.as_secs() as i64 / OCCURRENCES_PER_TASK as i64).max(2)
    }

    pub fn rule(&self) -> String {
        format!(
            "FREQ=SECONDLY;INTERVAL={};COUNT={OCCURRENCES_PER_TASK}",
            self.interval_secs()
        )
    }
}

/// Writes users, reminders (each on its own task) and recurring tasks in one transaction.
pub async fn seed(pool: &PgPool, plan: &Plan) -> anyhow::Result<()> {
    let start = plan.start.trunc_subsecs(0);
    let step_us = (plan.spread.as_micros() / plan.reminders.max(1) as u128) as i64;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO users (email, display_name, timezone) \
         SELECT 'user' || g || '@example.test', 'User ' || g, 'UTC' FROM generate_series(1, $1) g",
    )
    .bind(plan.users as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO tasks (user_id, title, due_at) \
         SELECT (SELECT min(id) FROM users) + g % $1, 'Fault-suite task ' || g, \
                $2 + g * $3 * interval '1 microsecond' \
         FROM generate_series(0, $4 - 1) g",
    )
    .bind(plan.users as i64)
    .bind(start)
    .bind(step_us)
    .bind(plan.reminders as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO reminders (task_id, user_id, remind_at) SELECT id, user_id, due_at FROM tasks")
        .execute(&mut *tx)
        .await?;
    // DTSTARTs staggered over the first interval, on whole seconds (the rule's grid).
    sqlx::query(
        "INSERT INTO recurring_tasks (user_id, title, rrule, timezone, dtstart, next_occurrence, catch_up) \
         SELECT (SELECT min(id) FROM users) + g % $1, 'Fault-suite chore ' || g, $2, 'UTC', \
                to_char(($3 + (g % $4) * interval '1 second') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), \
                $3 + (g % $4) * interval '1 second', 'all' \
         FROM generate_series(0, $5 - 1) g",
    )
    .bind(plan.users as i64)
    .bind(plan.rule())
    .bind(start)
    .bind(plan.interval_secs())
    .bind(plan.recurring_tasks() as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

/// The Message-ID each due reminder's e-mail must carry (notify's own function).
pub async fn expected_mails(pool: &PgPool) -> anyhow::Result<HashSet<String>> {
    let rows: Vec<(i64, DateTime<Utc>)> = sqlx::query_as("SELECT id, remind_at FROM reminders")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| Some(notify::mail::message_id(ReminderId::new(id)?, at)))
        .collect())
}

/// Every (recurring task, occurrence) the rules make due.
pub async fn expected_occurrences(
    pool: &PgPool,
    plan: &Plan,
) -> anyhow::Result<HashSet<(i64, DateTime<Utc>)>> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, dtstart FROM recurring_tasks")
        .fetch_all(pool)
        .await?;
    let mut all = HashSet::new();
    for (id, dtstart) in rows {
        let first = NaiveDateTime::parse_from_str(&dtstart, "%Y-%m-%dT%H:%M:%S")?.and_utc();
        for k in 0..OCCURRENCES_PER_TASK as i64 {
            all.insert((id, first + chrono::Duration::seconds(k * plan.interval_secs())));
        }
    }
    Ok(all)
}

/// Instances per (recurring task, occurrence), as the database holds them.
pub async fn instances(pool: &PgPool) -> anyhow::Result<HashMap<(i64, DateTime<Utc>), i64>> {
    let rows: Vec<(i64, DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT recurring_task_id, occurrence_at, COUNT(*) FROM tasks \
         WHERE recurring_task_id IS NOT NULL GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id, at, n)| ((id, at), n)).collect())
}
