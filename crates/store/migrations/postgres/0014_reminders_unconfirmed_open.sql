-- no-transaction
-- The scheduler's republish candidates, without the reminders left `published` for good: a
-- reminder whose event was published PUBLISH_LIMIT (4) times and never took effect (its task
-- closed before it was due: notify skips it) stays `published`, and with a year of history
-- there are many. On `reminders_unconfirmed` (WHERE state = 'published') every claim walked
-- them all and fetched each to find its publish count too high (docs/PERFORMANCE.md,
-- "History"). The claim writes the limit out (`publish_count < 4`, not a parameter) so that
-- this index's condition matches it. CONCURRENTLY, as 0010 says why; 0015 drops the old one.
CREATE INDEX CONCURRENTLY IF NOT EXISTS reminders_unconfirmed_open ON reminders (published_at)
    WHERE state = 'published' AND publish_count < 4;
