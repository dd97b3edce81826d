-- Channels beside e-mail (docs/CHANNELS.md); the PostgreSQL migration explains each column.
CREATE TABLE channel_endpoints (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel        TEXT NOT NULL CHECK (channel IN ('webhook', 'webpush')),
    target         TEXT NOT NULL,
    format         TEXT NOT NULL DEFAULT 'standard'
                   CHECK (format IN ('standard', 'slack', 'discord', 'ntfy')),
    secret         TEXT,
    p256dh         TEXT,
    auth           TEXT,
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deactivated_at TEXT,
    detail         TEXT,
    CHECK (channel <> 'webpush' OR (p256dh IS NOT NULL AND auth IS NOT NULL))
);
CREATE INDEX channel_endpoints_user ON channel_endpoints (user_id) WHERE active = 1;

-- One delivery per reminder occurrence, channel and endpoint (e-mail: endpoint_id 0). SQLite
-- cannot change a table's constraints, so the table is rebuilt with its rows.
CREATE TABLE deliveries_new (
    id           INTEGER PRIMARY KEY,
    reminder_id  INTEGER NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    remind_at    TEXT NOT NULL,
    channel      TEXT NOT NULL DEFAULT 'email',
    endpoint_id  INTEGER NOT NULL DEFAULT 0,
    event_id     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 1,
    recipient    TEXT,
    message_id   TEXT,
    detail       TEXT,
    claimed_at   TEXT NOT NULL,
    lease_until  TEXT NOT NULL,
    completed_at TEXT,
    UNIQUE (reminder_id, remind_at, channel, endpoint_id)
);
INSERT INTO deliveries_new (id, reminder_id, remind_at, channel, endpoint_id, event_id, status,
                            attempts, recipient, message_id, detail, claimed_at, lease_until,
                            completed_at)
    SELECT id, reminder_id, remind_at, channel, 0, event_id, status, attempts, recipient,
           message_id, detail, claimed_at, lease_until, completed_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
