-- What came of each reminder, for the todo app; the PostgreSQL migration explains it.
CREATE TABLE notification_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('sent', 'failed', 'deferred', 'skipped')),
    reminder_id  INTEGER NOT NULL,
    task_id      INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    remind_at    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    -- The reply event's data, JSON text.
    data         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT,
    lease_owner  TEXT,
    lease_until  TEXT
);
CREATE INDEX notification_events_unpublished ON notification_events (created_at)
    WHERE published_at IS NULL;
CREATE INDEX notification_events_created ON notification_events (created_at);
CREATE INDEX notification_events_reminder ON notification_events (reminder_id, created_at);

-- The latest outcome of each reminder: what a todo app shows beside it.
CREATE VIEW notification_status AS
SELECT reminder_id, task_id, user_id, remind_at, outcome, reason, created_at AS at, id AS event_id
FROM (SELECT e.*, ROW_NUMBER() OVER (PARTITION BY reminder_id ORDER BY created_at DESC, id DESC) AS n
      FROM notification_events e) latest
WHERE n = 1;
