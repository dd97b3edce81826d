-- The scheduler publishes an item again when its effect has not happened SCHEDULER_REPUBLISH_AFTER
-- after it was published (a broker that lost an acknowledged message, a consumer group reset
-- past it). publish_count bounds how often: a reminder whose task is done stays 'published'
-- for good, and must not be republished forever.
ALTER TABLE reminders ADD COLUMN publish_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recurring_tasks ADD COLUMN publish_count INTEGER NOT NULL DEFAULT 0;
CREATE INDEX reminders_unconfirmed ON reminders (published_at) WHERE state = 'published';
