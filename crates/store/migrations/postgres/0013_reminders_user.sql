-- no-transaction
-- A user's reminders, for `todo-events erase-user`: the recipient of a reminder is its
-- user_id's, whichever task it is on. CONCURRENTLY, as 0010 says why.
CREATE INDEX CONCURRENTLY IF NOT EXISTS reminders_user ON reminders (user_id);
