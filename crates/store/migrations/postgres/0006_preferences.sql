-- Preferences per user (docs/PREFERENCES.md): quiet hours, a locale, default channels.
-- A user without a row has none: no quiet hours, locale 'en', channels 'email'.
-- The checks refuse what cannot be meant; notify parses each field again and falls back,
-- field by field, for a value that passed them and still cannot be used (documented).
CREATE TABLE user_preferences (
    user_id     BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Quiet hours: local times 'HH:MM' or 'HH:MM:SS' in users.timezone; a window whose
    -- end is not after its start crosses midnight. Both or neither.
    quiet_start TEXT CHECK (quiet_start ~ '^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$'),
    quiet_end   TEXT CHECK (quiet_end ~ '^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$'),
    -- The days a window starts on: a comma-separated list of mon, tue, wed, thu, fri, sat, sun.
    quiet_days  TEXT NOT NULL DEFAULT 'mon,tue,wed,thu,fri,sat,sun'
                CHECK (quiet_days ~* '^ *(mon|tue|wed|thu|fri|sat|sun) *(, *(mon|tue|wed|thu|fri|sat|sun) *)*$'),
    -- A BCP 47 language tag (de-DE, fr, ja-JP).
    locale      TEXT NOT NULL DEFAULT 'en' CHECK (locale ~ '^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$'),
    -- The channels of a reminder whose reminders.channels is 'default' (same form).
    channels    TEXT NOT NULL DEFAULT 'email',
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL)),
    CHECK (quiet_start <> quiet_end)
);

-- A reminder marked urgent goes out inside quiet hours.
ALTER TABLE reminders ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT FALSE;
-- Set by notify, once per remind_at, when the reminder came due inside its user's quiet
-- hours: the end of the window. The scheduler publishes the reminder again from then.
ALTER TABLE reminders ADD COLUMN deferred_until TIMESTAMPTZ;
-- The scheduler's due candidates, in the order it takes them: a deferred reminder is due at
-- the end of its window.
DROP INDEX reminders_due;
CREATE INDEX reminders_due ON reminders ((COALESCE(deferred_until, remind_at)))
    WHERE state IN ('pending', 'publishing');

-- Snooze is "move remind_at" (docs/DESIGN.md, "Snooze and cancel"): a reminder whose
-- remind_at the app moves is pending again at its new time, whatever it was (published,
-- sent, failed: a snooze after the reminder went out reminds again), unless cancelled. Its
-- deferral, lease and publish count belonged to the old time. Done here, not left to each
-- app's UPDATE, so that a moved reminder is never republished early nor left published.
CREATE FUNCTION reminders_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.remind_at IS DISTINCT FROM OLD.remind_at AND NEW.state <> 'cancelled' THEN
        NEW.state := 'pending';
        NEW.deferred_until := NULL;
        NEW.lease_owner := NULL;
        NEW.lease_until := NULL;
        NEW.published_at := NULL;
        NEW.publish_count := 0;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER reminders_moved BEFORE UPDATE OF remind_at ON reminders
    FOR EACH ROW EXECUTE FUNCTION reminders_moved();
