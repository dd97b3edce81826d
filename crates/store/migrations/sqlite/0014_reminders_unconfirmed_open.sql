-- The scheduler's republish candidates without the reminders left `published` for good (see
-- the PostgreSQL migration).
CREATE INDEX IF NOT EXISTS reminders_unconfirmed_open ON reminders (published_at)
    WHERE state = 'published' AND publish_count < 4;
