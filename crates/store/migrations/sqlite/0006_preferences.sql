-- Preferences per user (docs/PREFERENCES.md); the PostgreSQL migration explains each change.
-- SQLite has no regular expressions: the checks below are looser (notify parses each field
-- again and falls back, field by field, for a value it cannot use).
CREATE TABLE user_preferences (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    quiet_start TEXT CHECK (quiet_start GLOB '[01][0-9]:[0-5][0-9]' OR quiet_start GLOB '2[0-3]:[0-5][0-9]'
                  OR quiet_start GLOB '[01][0-9]:[0-5][0-9]:[0-5][0-9]' OR quiet_start GLOB '2[0-3]:[0-5][0-9]:[0-5][0-9]'),
    quiet_end   TEXT CHECK (quiet_end GLOB '[01][0-9]:[0-5][0-9]' OR quiet_end GLOB '2[0-3]:[0-5][0-9]'
                  OR quiet_end GLOB '[01][0-9]:[0-5][0-9]:[0-5][0-9]' OR quiet_end GLOB '2[0-3]:[0-5][0-9]:[0-5][0-9]'),
    quiet_days  TEXT NOT NULL DEFAULT 'mon,tue,wed,thu,fri,sat,sun'
                CHECK (trim(quiet_days) <> '' AND trim(replace(replace(replace(replace(replace(replace(replace(
                  replace(lower(quiet_days), 'mon', ''), 'tue', ''), 'wed', ''), 'thu', ''), 'fri', ''),
                  'sat', ''), 'sun', ''), ',', '')) = ''),
    locale      TEXT NOT NULL DEFAULT 'en' CHECK (length(locale) BETWEEN 2 AND 64 AND locale NOT GLOB '*[^A-Za-z0-9-]*'),
    channels    TEXT NOT NULL DEFAULT 'email',
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL)),
    CHECK (quiet_start <> quiet_end)
);

ALTER TABLE reminders ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1));
ALTER TABLE reminders ADD COLUMN deferred_until TEXT;
DROP INDEX reminders_due;
CREATE INDEX reminders_due ON reminders (COALESCE(deferred_until, remind_at))
    WHERE state IN ('pending', 'publishing');

-- Snooze is "move remind_at": see the PostgreSQL migration. SQLite's triggers cannot change
-- the row being written, so this one updates it after (recursive triggers are off, so the
-- update does not fire it again).
CREATE TRIGGER reminders_moved AFTER UPDATE OF remind_at ON reminders
    FOR EACH ROW WHEN NEW.remind_at IS NOT OLD.remind_at AND NEW.state <> 'cancelled'
BEGIN
    UPDATE reminders SET state = 'pending', deferred_until = NULL, lease_owner = NULL,
        lease_until = NULL, published_at = NULL, publish_count = 0
    WHERE id = NEW.id;
END;
