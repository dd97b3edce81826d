-- pgbench: notify's statements for one reminder (crates/store/src/notify.rs): read the
-- context, claim the delivery, record it sent; one distinct seeded reminder per transaction.
SELECT nextval('bench_ids') AS id \gset
SELECT r.id AS reminder_id, r.task_id, r.user_id, r.remind_at, r.state, t.title AS task_title, t.description AS task_description, t.status AS task_status, t.due_at AS task_due_at, u.email, u.display_name, u.timezone FROM reminders r JOIN tasks t ON t.id = r.task_id JOIN users u ON u.id = r.user_id WHERE r.id = :id;
INSERT INTO deliveries (reminder_id, remind_at, channel, event_id, status, attempts, claimed_at, lease_until) VALUES (:id, '2026-11-01T09:45:00Z', 'email', 'reminder/' || :id, 'sending', 1, now(), now() + interval '2 minutes') ON CONFLICT (reminder_id, remind_at, channel) DO NOTHING RETURNING id AS delivery_id \gset
BEGIN;
UPDATE deliveries SET status = 'sent', recipient = 'user@bench.test', message_id = '<m@bench>', detail = NULL, completed_at = now() WHERE id = :delivery_id AND status = 'sending' RETURNING reminder_id, remind_at;
UPDATE reminders SET state = 'sent', lease_owner = NULL, lease_until = NULL, updated_at = now() WHERE id = :id AND remind_at = '2026-11-01T09:45:00Z' AND state <> 'cancelled';
COMMIT;
