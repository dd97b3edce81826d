//! A year's history, seeded in bulk: what a todo database holds after a year of the traffic
//! the benchmarks send, for the `history` section (docs/PERFORMANCE.md, "Cost flat as
//! history grows"). `seed::history` puts as many finished rows as there are due items on one
//! instant, enough for the planner's statistics; this spreads many more over a year, with
//! the shapes that make the hot statements' indexes larger and their pages colder:
//!
//! - finished tasks (`done`, some `cancelled`), half of them instances of the recurring
//!   tasks `1..=recurring` at past occurrences, so that recur's
//!   `UNIQUE (recurring_task_id, occurrence_at)` holds them;
//! - one reminder per task: 92 % `sent`, 3 % `failed`, 3 % `cancelled`, and 2 % left
//!   `published` for good: their task was done before they came due, so notify skipped
//!   them (no delivery), the scheduler republished them until its limit
//!   (`publish_count` 4, `PUBLISH_LIMIT`), and nothing moves them on;
//! - one delivery per sent or failed reminder: nine in ten e-mails (endpoint 0), one in ten
//!   webhooks to an endpoint of the same user;
//! - ended channel endpoints (inactive, `deactivated_at` set), one per hundred rows;
//! - ended recurring tasks, one per hundred rows;
//! - the status events of the last 29 days (`notification_events`), published: the
//!   scheduler's default retention (30 days) deletes older ones, so a year leaves about
//!   1/12 of the outcomes. Their `created_at` is the real clock's, so that the scheduler
//!   pass measured deletes none of them (it would on a database left unpruned).
//!
//! Ids from 10 000 001 (tasks, reminders, ended recurring tasks), users `1..=1000` as in
//! every seed. Instants are spread over the year before 2026-11-01 (the due items' day) by
//! a multiplicative hash, not in insertion order, as a year of traffic interleaves them.

use crate::env::seed::exec;

/// The year before the due items' 09:45Z, in minutes: 365 × 1 440.
const MINUTES: u64 = 525_600;

/// Seeds `rows` finished tasks with their reminders and deliveries (and the rest above) into
/// `url`, whose users and recurring tasks `1..=recurring` exist; analyses nothing (the caller
/// runs VACUUM ANALYZE once its due items are in too).
pub async fn seed(url: &str, rows: u64, recurring: u64) -> anyhow::Result<()> {
    let ended = (rows / 100).max(2_000) / 1_000 * 1_000;
    exec(url, &rows_sql(rows, recurring)).await?;
    exec(url, &endpoints_sql(ended)).await?;
    exec(url, &tasks_sql()).await?;
    exec(url, &reminders_sql()).await?;
    exec(url, &deliveries_sql(ended)).await?;
    exec(url, &statuses_sql()).await?;
    exec(url, &ended_recurring_sql(rows / 100)).await?;
    exec(url, "DROP TABLE bench_year").await
}

/// One row per history item with what the tables share: its user, instant, outcome and, for
/// an instance, its recurring task and occurrence. Instance `h` (the even rows) is of
/// recurring task `1 + h % recurring` on day `1 + (h / recurring) × 61 mod 365` before
/// 2026-11-01 (61 is prime to 365: distinct days for the first 365 rounds, so the pairs
/// are unique); rows past those rounds are one-off tasks.
fn rows_sql(rows: u64, recurring: u64) -> String {
    let recurring = recurring.max(1);
    format!(
        "CREATE UNLOGGED TABLE bench_year AS
         SELECT g, rt, occ,
           COALESCE(1 + rt % 1000, 1 + g % 1000) AS uid,
           COALESCE(occ - interval '15 minutes',
             timestamptz '2026-11-01T09:45:00Z' - (1 + (g * 7919) % {MINUTES}) * interval '1 minute') AS at,
           CASE WHEN g % 100 < 92 THEN 'sent' WHEN g % 100 < 95 THEN 'failed'
                WHEN g % 100 < 98 THEN 'cancelled' ELSE 'skipped' END AS outcome,
           g % 10 = 3 AS webhook
         FROM (SELECT g,
                 CASE WHEN g % 2 = 0 AND (g / 2 - 1) / {recurring} < 365 THEN 1 + (g / 2 - 1) % {recurring} END AS rt,
                 CASE WHEN g % 2 = 0 AND (g / 2 - 1) / {recurring} < 365
                   THEN timestamptz '2026-11-01T08:00:00Z' - (1 + ((g / 2 - 1) / {recurring}) * 61 % 365) * interval '1 day' END AS occ
               FROM generate_series(1::bigint, {rows}) g) s"
    )
}

/// `ended` inactive endpoints, `ended / 1000` per user (endpoint `e` is user `1 + e % 1000`'s),
/// deactivated over the year; a quarter Web Push subscriptions the push service reported gone.
fn endpoints_sql(ended: u64) -> String {
    format!(
        "INSERT INTO channel_endpoints (id, user_id, channel, target, format, p256dh, auth, active, created_at, deactivated_at, detail)
         SELECT e, 1 + e % 1000, CASE WHEN e % 4 = 0 THEN 'webpush' ELSE 'webhook' END,
           CASE WHEN e % 4 = 0 THEN 'https://push.bench.test/sub/' || e ELSE 'https://hooks.bench.test/' || e END,
           'standard', CASE WHEN e % 4 = 0 THEN 'BPk' || md5(e::text) END, CASE WHEN e % 4 = 0 THEN left(md5(e::text), 22) END,
           FALSE, d - interval '60 days', d, CASE WHEN e % 4 = 0 THEN 'push service: 410 Gone' ELSE 'removed by the user' END
         FROM (SELECT e, timestamptz '2026-11-01T00:00:00Z' - (e * 7919 % {MINUTES}) * interval '1 minute' AS d
               FROM generate_series(1::bigint, {ended}) e) s;
         SELECT setval('channel_endpoints_id_seq', {ended});"
    )
}

fn tasks_sql() -> String {
    "INSERT INTO tasks (id, user_id, title, description, status, priority, due_at, completed_at,
                        recurring_task_id, occurrence_at, created_at, updated_at)
     SELECT 10000000 + g, uid, CASE WHEN rt IS NULL THEN 'Done before ' || g ELSE 'Water the plants' END, '',
       CASE WHEN outcome = 'cancelled' THEN 'cancelled' ELSE 'done' END,
       CASE g % 3 WHEN 0 THEN 'low' WHEN 1 THEN 'medium' ELSE 'high' END,
       COALESCE(occ, at + interval '15 minutes'),
       CASE WHEN outcome = 'skipped' THEN at - interval '1 hour' ELSE at + interval '1 hour' END, rt, occ,
       at - interval '2 days', at + interval '1 hour'
     FROM bench_year;
     SELECT setval('tasks_id_seq', (SELECT max(id) FROM tasks));"
        .into()
}

fn reminders_sql() -> String {
    "INSERT INTO reminders (id, task_id, user_id, remind_at, channels, state, published_at, publish_count,
                            created_at, updated_at)
     SELECT 10000000 + g, 10000000 + g, uid, at, CASE WHEN webhook THEN 'webhook' ELSE 'email' END,
       CASE WHEN outcome = 'skipped' THEN 'published' ELSE outcome END,
       CASE WHEN outcome = 'skipped' THEN at + interval '30 minutes'
            WHEN outcome <> 'cancelled' THEN at + interval '1 second' END,
       CASE WHEN outcome = 'skipped' THEN 4 WHEN outcome <> 'cancelled' THEN 1 ELSE 0 END,
       at - interval '2 days', at + interval '30 minutes'
     FROM bench_year;
     SELECT setval('reminders_id_seq', (SELECT max(id) FROM reminders));"
        .into()
}

/// A webhook delivery goes to one of its user's ended endpoints (ids ≡ the user mod 1 000).
fn deliveries_sql(ended: u64) -> String {
    let rounds = ended / 1000;
    format!(
        "INSERT INTO deliveries (reminder_id, remind_at, channel, endpoint_id, event_id, status, attempts, recipient,
                                 message_id, detail, claimed_at, lease_until, completed_at, first_claimed_at)
         SELECT 10000000 + g, at, CASE WHEN webhook THEN 'webhook' ELSE 'email' END,
           CASE WHEN webhook THEN (uid - 1) + 1000 * (1 + g % ({rounds} - 1)) ELSE 0 END,
           'reminder/' || (10000000 + g) || '/' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
           outcome, CASE WHEN outcome = 'sent' THEN 1 ELSE 5 END,
           CASE WHEN webhook THEN NULL ELSE 'user' || uid || '@bench.test' END,
           CASE WHEN outcome = 'sent' AND NOT webhook THEN '<reminder-' || (10000000 + g) || '@todo-events>' END,
           CASE WHEN outcome = 'failed' THEN 'gave up after 5 attempts over 1h: 503 Service Unavailable' END,
           at + interval '1 second', at + interval '2 minutes', at + interval '2 seconds', at + interval '1 second'
         FROM bench_year WHERE outcome IN ('sent', 'failed')"
    )
}

/// The last 29 days' status events: every twelfth outcome, at instants spread over them.
fn statuses_sql() -> String {
    "INSERT INTO notification_events (id, type, outcome, reminder_id, task_id, user_id, remind_at, reason, data,
                                      created_at, published_at)
     SELECT 'reminder/' || (10000000 + g) || '/' || extract(epoch FROM t)::bigint || '/' || outcome,
       'dev.todo.notification.' || outcome, outcome, 10000000 + g, 10000000 + g, uid, t - interval '2 seconds',
       CASE outcome WHEN 'sent' THEN 'delivered' WHEN 'failed' THEN 'gave up after 5 attempts'
         ELSE 'the reminder''s task is closed' END,
       '{\"reminder_id\":' || (10000000 + g) || ',\"task_id\":' || (10000000 + g) || ',\"outcome\":\"' || outcome || '\"}',
       t, t + interval '1 minute'
     FROM (SELECT *, now() - ((g * 7919) % (29 * 1440)) * interval '1 minute' AS t FROM bench_year
           WHERE g % 12 = 0 AND outcome <> 'cancelled') s"
        .into()
}

/// Recurring tasks that ended during the year (`active` false, no next occurrence).
fn ended_recurring_sql(n: u64) -> String {
    format!(
        "INSERT INTO recurring_tasks (id, user_id, title, rrule, timezone, dtstart, next_occurrence, active,
                                      reminder_offsets, created_at, updated_at)
         SELECT 10000000 + g, 1 + g % 1000, 'Stand-up ' || g, 'FREQ=WEEKLY;BYDAY=MO', 'Europe/Berlin', '2025-06-02T09:30:00',
           NULL, FALSE, '[600]', timestamptz '2025-06-01T00:00:00Z',
           timestamptz '2026-11-01T00:00:00Z' - (g * 7919 % {MINUTES}) * interval '1 minute'
         FROM generate_series(1::bigint, {n}) g;
         SELECT setval('recurring_tasks_id_seq', (SELECT max(id) FROM recurring_tasks));"
    )
}
