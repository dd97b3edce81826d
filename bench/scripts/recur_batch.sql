-- pgbench: recur's consumer-mode transaction for 100 events (the batched statements of
-- crates/store/src/recur.rs, with generate_series standing in for the bound arrays and the
-- instance and reminder inserts joined in one statement, one round trip fewer than recur).
SELECT (nextval('bench_ids') - 1) * 100 + 1 AS first \gset
\set last :first + 99
SELECT id, user_id, title, description, priority, rrule, timezone, dtstart, next_occurrence, active, catch_up, reminder_offsets FROM recurring_tasks WHERE id BETWEEN :first::bigint AND :last::bigint;
SELECT id, recurring_task_id, occurrence_at FROM tasks WHERE recurring_task_id BETWEEN :first::bigint AND :last::bigint AND occurrence_at = '2026-11-01T08:00:00Z';
BEGIN;
WITH created AS (INSERT INTO tasks (user_id, title, description, status, priority, due_at, recurring_task_id, occurrence_at, created_at, updated_at) SELECT 1 + g % 1000, 'Water the plants', '', 'todo', 'medium', '2026-11-01T08:00:00Z', g, '2026-11-01T08:00:00Z', now(), now() FROM generate_series(:first::bigint, :last::bigint) g ON CONFLICT (recurring_task_id, occurrence_at) DO NOTHING RETURNING id, user_id) INSERT INTO reminders (task_id, user_id, remind_at, channels, state, created_at, updated_at) SELECT id, user_id, '2026-11-01T07:45:00Z', 'email', 'pending', now(), now() FROM created;
UPDATE recurring_tasks SET next_occurrence = '2026-11-02T08:00:00Z', active = true, updated_at = now() WHERE id BETWEEN :first::bigint AND :last::bigint AND next_occurrence = '2026-11-01T08:00:00Z';
COMMIT;
