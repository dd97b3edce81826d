-- A user's status events, for `todo-events erase-user`.
CREATE INDEX IF NOT EXISTS notification_events_user ON notification_events (user_id);
