-- no-transaction
-- Replaced by deliveries_leases (0016).
DROP INDEX CONCURRENTLY IF EXISTS deliveries_waiting;
