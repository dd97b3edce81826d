-- todo-events schema, PostgreSQL. Times are timestamptz (UTC instants). A recurring task's
-- dtstart is a local wall-clock time in its own zone, kept as text ('YYYY-MM-DDTHH:MM:SS').

CREATE TABLE users (
    id           BIGSERIAL PRIMARY KEY,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    timezone     TEXT NOT NULL DEFAULT 'UTC',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE recurring_tasks (
    id                   BIGSERIAL PRIMARY KEY,
    user_id              BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    priority             TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high')),
    rrule                TEXT NOT NULL,
    timezone             TEXT NOT NULL,
    dtstart              TEXT NOT NULL,
    next_occurrence      TIMESTAMPTZ,
    active               BOOLEAN NOT NULL DEFAULT TRUE,
    catch_up             TEXT NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('latest', 'all')),
    -- JSON array of whole seconds before each occurrence, e.g. [900] for "15 minutes before".
    reminder_offsets     TEXT NOT NULL DEFAULT '[]',
    published_occurrence TIMESTAMPTZ,
    published_at         TIMESTAMPTZ,
    lease_owner          TEXT,
    lease_until          TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (active = FALSE OR next_occurrence IS NOT NULL)
);
CREATE INDEX recurring_tasks_due ON recurring_tasks (next_occurrence) WHERE active;

CREATE TABLE tasks (
    id                BIGSERIAL PRIMARY KEY,
    user_id           BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done', 'cancelled')),
    priority          TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high')),
    due_at            TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    recurring_task_id BIGINT REFERENCES recurring_tasks (id) ON DELETE SET NULL,
    occurrence_at     TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One instance per occurrence: what makes recur's effect happen once.
    UNIQUE (recurring_task_id, occurrence_at)
);
CREATE INDEX tasks_user ON tasks (user_id);

CREATE TABLE reminders (
    id           BIGSERIAL PRIMARY KEY,
    task_id      BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    remind_at    TIMESTAMPTZ NOT NULL,
    channels     TEXT NOT NULL DEFAULT 'email',
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'publishing', 'published', 'sent', 'cancelled', 'failed')),
    lease_owner  TEXT,
    lease_until  TIMESTAMPTZ,
    published_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reminders_due ON reminders (remind_at) WHERE state IN ('pending', 'publishing');
CREATE INDEX reminders_task ON reminders (task_id);

CREATE TABLE deliveries (
    id           BIGSERIAL PRIMARY KEY,
    reminder_id  BIGINT NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    remind_at    TIMESTAMPTZ NOT NULL,
    channel      TEXT NOT NULL DEFAULT 'email',
    event_id     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 1,
    recipient    TEXT,
    message_id   TEXT,
    detail       TEXT,
    claimed_at   TIMESTAMPTZ NOT NULL,
    lease_until  TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    -- The claim: one delivery per reminder occurrence and channel.
    UNIQUE (reminder_id, remind_at, channel)
);
