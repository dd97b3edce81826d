-- The daily agenda (docs/PREFERENCES.md, "The daily agenda"): a user whose agenda_at is set
-- gets, once per local date, a summary of the tasks due that day and those overdue, at that
-- local time in users.timezone (at the end of the quiet hours when it falls inside them).
ALTER TABLE user_preferences ADD COLUMN agenda_at TEXT
    CHECK (agenda_at ~ '^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$');
-- The scheduler's: the next agenda's local date and instant (NULL until it has computed
-- them, and again whenever what they depend on changes: see the triggers), and its claim.
ALTER TABLE user_preferences ADD COLUMN agenda_next_date DATE;
ALTER TABLE user_preferences ADD COLUMN agenda_next_at TIMESTAMPTZ;
ALTER TABLE user_preferences ADD COLUMN agenda_lease_owner TEXT;
ALTER TABLE user_preferences ADD COLUMN agenda_lease_until TIMESTAMPTZ;
CREATE INDEX user_preferences_agenda_due ON user_preferences (agenda_next_at NULLS FIRST)
    WHERE agenda_at IS NOT NULL;

-- The next agenda is computed again (from the next scheduler pass on) when its time, the
-- quiet hours or the user's zone change. One user still gets one agenda per local date: the
-- event id names the date, and notify sends a date's agenda once (agenda_deliveries).
CREATE FUNCTION agenda_rescheduled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.agenda_at IS DISTINCT FROM OLD.agenda_at
       OR NEW.quiet_start IS DISTINCT FROM OLD.quiet_start
       OR NEW.quiet_end IS DISTINCT FROM OLD.quiet_end
       OR NEW.quiet_days IS DISTINCT FROM OLD.quiet_days THEN
        NEW.agenda_next_date := NULL;
        NEW.agenda_next_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER agenda_rescheduled BEFORE UPDATE OF agenda_at, quiet_start, quiet_end, quiet_days
    ON user_preferences FOR EACH ROW EXECUTE FUNCTION agenda_rescheduled();

CREATE FUNCTION agenda_moved_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.timezone IS DISTINCT FROM OLD.timezone THEN
        UPDATE user_preferences SET agenda_next_date = NULL, agenda_next_at = NULL
        WHERE user_id = NEW.id AND agenda_at IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER agenda_moved_zone AFTER UPDATE OF timezone ON users
    FOR EACH ROW EXECUTE FUNCTION agenda_moved_zone();

-- notify's once: one delivery per user, local date, channel and endpoint (0 for e-mail), as
-- deliveries are for reminders. A claim ('sending') whose lease ran out is taken over.
CREATE TABLE agenda_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agenda_date  DATE NOT NULL,
    channel      TEXT NOT NULL,
    endpoint_id  BIGINT NOT NULL DEFAULT 0,
    event_id     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    -- How many tasks the agenda listed.
    tasks        INTEGER NOT NULL DEFAULT 0,
    recipient    TEXT,
    message_id   TEXT,
    detail       TEXT,
    claimed_at   TIMESTAMPTZ NOT NULL,
    lease_until  TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    UNIQUE (user_id, agenda_date, channel, endpoint_id)
);

-- The agenda's read: a user's open tasks due before a day's end.
CREATE INDEX tasks_open_due ON tasks (user_id, due_at) WHERE status IN ('todo', 'in_progress');
