-- no-transaction
-- Replaced by reminders_unconfirmed_open (0014).
DROP INDEX CONCURRENTLY IF EXISTS reminders_unconfirmed;
