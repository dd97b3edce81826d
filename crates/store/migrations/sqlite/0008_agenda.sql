-- The daily agenda (docs/PREFERENCES.md, "The daily agenda"); the PostgreSQL migration
-- explains each change.
ALTER TABLE user_preferences ADD COLUMN agenda_at TEXT
    CHECK (agenda_at GLOB '[01][0-9]:[0-5][0-9]' OR agenda_at GLOB '2[0-3]:[0-5][0-9]'
        OR agenda_at GLOB '[01][0-9]:[0-5][0-9]:[0-5][0-9]' OR agenda_at GLOB '2[0-3]:[0-5][0-9]:[0-5][0-9]');
ALTER TABLE user_preferences ADD COLUMN agenda_next_date TEXT;
ALTER TABLE user_preferences ADD COLUMN agenda_next_at TEXT;
ALTER TABLE user_preferences ADD COLUMN agenda_lease_owner TEXT;
ALTER TABLE user_preferences ADD COLUMN agenda_lease_until TEXT;
CREATE INDEX user_preferences_agenda_due ON user_preferences (agenda_next_at)
    WHERE agenda_at IS NOT NULL;

-- SQLite's triggers cannot change the row being written: these update it after (recursive
-- triggers are off, so the update does not fire them again).
CREATE TRIGGER agenda_rescheduled AFTER UPDATE OF agenda_at, quiet_start, quiet_end, quiet_days
    ON user_preferences FOR EACH ROW
    WHEN NEW.agenda_at IS NOT OLD.agenda_at OR NEW.quiet_start IS NOT OLD.quiet_start
      OR NEW.quiet_end IS NOT OLD.quiet_end OR NEW.quiet_days IS NOT OLD.quiet_days
BEGIN
    UPDATE user_preferences SET agenda_next_date = NULL, agenda_next_at = NULL
    WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER agenda_moved_zone AFTER UPDATE OF timezone ON users
    FOR EACH ROW WHEN NEW.timezone IS NOT OLD.timezone
BEGIN
    UPDATE user_preferences SET agenda_next_date = NULL, agenda_next_at = NULL
    WHERE user_id = NEW.id AND agenda_at IS NOT NULL;
END;

CREATE TABLE agenda_deliveries (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agenda_date  TEXT NOT NULL,
    channel      TEXT NOT NULL,
    endpoint_id  INTEGER NOT NULL DEFAULT 0,
    event_id     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    tasks        INTEGER NOT NULL DEFAULT 0,
    recipient    TEXT,
    message_id   TEXT,
    detail       TEXT,
    claimed_at   TEXT NOT NULL,
    lease_until  TEXT NOT NULL,
    completed_at TEXT,
    UNIQUE (user_id, agenda_date, channel, endpoint_id)
);

CREATE INDEX tasks_open_due ON tasks (user_id, due_at) WHERE status IN ('todo', 'in_progress');
