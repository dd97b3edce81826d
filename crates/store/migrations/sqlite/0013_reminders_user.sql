-- A user's reminders, for `todo-events erase-user`.
CREATE INDEX IF NOT EXISTS reminders_user ON reminders (user_id);
