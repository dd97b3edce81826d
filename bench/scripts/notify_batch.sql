-- pgbench: notify's consumer-mode statements for 100 reminders (crates/store/src/notify.rs,
-- batched): read the contexts, claim the deliveries, then record them sent in one transaction.
SELECT (nextval('bench_ids') - 1) * 100 + 1 AS first \gset
\set last :first + 99
SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, t.title AS task_title, t.description AS task_description, t.status AS task_status, t.due_at AS task_due_at, u.email, u.display_name, u.timezone FROM reminders r JOIN tasks t ON t.id = r.task_id JOIN users u ON u.id = r.user_id WHERE r.id BETWEEN :first::bigint AND :last::bigint;
INSERT INTO deliveries (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) SELECT g, '2026-11-01T09:45:00Z', 'email', 'reminder/' || g, 'sending', 1, now(), now() + interval '2 minutes' FROM generate_series(:first::bigint, :last::bigint) g ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING;
BEGIN;
UPDATE deliveries SET status = 'sent', recipient = 'user@bench.test', message_id = '<' || reminder_id || '@bench>', detail = NULL, completed_at = now() WHERE reminder_id BETWEEN :first::bigint AND :last::bigint AND status = 'sending';
UPDATE reminders SET state = 'sent', lease_owner = NULL, lease_until = NULL, updated_at = now() WHERE id BETWEEN :first::bigint AND :last::bigint AND state <> 'cancelled';
COMMIT;
