-- todo-events schema, SQLite (the embedded default). Same tables, columns and constraints as
-- the PostgreSQL schema; instants are RFC 3339 text in UTC written by the application, which
-- compare correctly as text because every writer uses the same format.

CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    timezone     TEXT NOT NULL DEFAULT 'UTC',
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE recurring_tasks (
    id                   INTEGER PRIMARY KEY,
    user_id              INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    priority             TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high')),
    rrule                TEXT NOT NULL,
    timezone             TEXT NOT NULL,
    dtstart              TEXT NOT NULL,
    next_occurrence      TEXT,
    active               INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    catch_up             TEXT NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('latest', 'all')),
    reminder_offsets     TEXT NOT NULL DEFAULT '[]',
    published_occurrence TEXT,
    published_at         TEXT,
    lease_owner          TEXT,
    lease_until          TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (active = 0 OR next_occurrence IS NOT NULL)
);
CREATE INDEX recurring_tasks_due ON recurring_tasks (next_occurrence) WHERE active = 1;

CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done', 'cancelled')),
    priority          TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high')),
    due_at            TEXT,
    completed_at      TEXT,
    recurring_task_id INTEGER REFERENCES recurring_tasks (id) ON DELETE SET NULL,
    occurrence_at     TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (recurring_task_id, occurrence_at)
);
CREATE INDEX tasks_user ON tasks (user_id);

CREATE TABLE reminders (
    id           INTEGER PRIMARY KEY,
    task_id      INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    remind_at    TEXT NOT NULL,
    channels     TEXT NOT NULL DEFAULT 'email',
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'publishing', 'published', 'sent', 'cancelled', 'failed')),
    lease_owner  TEXT,
    lease_until  TEXT,
    published_at TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX reminders_due ON reminders (remind_at) WHERE state IN ('pending', 'publishing');
CREATE INDEX reminders_task ON reminders (task_id);

CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    reminder_id  INTEGER NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    remind_at    TEXT NOT NULL,
    channel      TEXT NOT NULL DEFAULT 'email',
    event_id     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 1,
    recipient    TEXT,
    message_id   TEXT,
    detail       TEXT,
    claimed_at   TEXT NOT NULL,
    lease_until  TEXT NOT NULL,
    completed_at TEXT,
    UNIQUE (reminder_id, remind_at, channel)
);
