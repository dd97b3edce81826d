-- no-transaction
-- The retention's candidates: finished deliveries, oldest first (docs/DESIGN.md,
-- "Retention"). Built CONCURRENTLY, so that installing it on a table a year old does not
-- hold notify's claims for the minutes the build takes; hence a migration of its own
-- (CONCURRENTLY runs outside a transaction, one statement at a time). A build that failed
-- leaves an INVALID index: drop it (DROP INDEX CONCURRENTLY deliveries_finished) and
-- remove this migration's row from _sqlx_migrations, then start any function again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_finished ON deliveries (completed_at)
    WHERE status <> 'sending';
