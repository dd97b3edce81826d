-- pgbench: recur's transaction for one event, the same statements the function sends
-- (crates/store/src/recur.rs), one distinct seeded recurring task per transaction.
SELECT nextval('bench_ids') AS id \gset
\set uid 1 + :id % 1000
SELECT id, user_id, title, description, priority, rrule, timezone, dtstart, next_occurrence, active, catch_up, reminder_offsets FROM recurring_tasks WHERE id = :id;
SELECT id FROM tasks WHERE recurring_task_id = :id AND occurrence_at = '2026-11-01T08:00:00Z';
BEGIN;
INSERT INTO tasks (user_id, title, description, status, priority, due_at, recurring_task_id, occurrence_at, created_at, updated_at) VALUES (:uid, 'Water the plants', '', 'todo', 'medium', '2026-11-01T08:00:00Z', :id, '2026-11-01T08:00:00Z', now(), now()) ON CONFLICT (recurring_task_id, occurrence_at) DO NOTHING RETURNING id AS task_id \gset
INSERT INTO reminders (task_id, user_id, remind_at, channels, state, created_at, updated_at) VALUES (:task_id, :uid, '2026-11-01T07:45:00Z', 'email', 'pending', now(), now());
UPDATE recurring_tasks SET next_occurrence = '2026-11-02T08:00:00Z', active = true, updated_at = now() WHERE id = :id AND next_occurrence = '2026-11-01T08:00:00Z';
COMMIT;
