-- Replaced by deliveries_leases (0016).
DROP INDEX IF EXISTS deliveries_waiting;
