-- no-transaction
-- A user's status events, for `todo-events erase-user` (docs/DESIGN.md, "Erasing a user"):
-- they have no foreign key (a deleted reminder keeps its history until the retention), so
-- they are found by the user they name. CONCURRENTLY, as 0010 says why.
CREATE INDEX CONCURRENTLY IF NOT EXISTS notification_events_user ON notification_events (user_id);
