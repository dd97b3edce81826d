-- The retry pass's and the take-overs' candidates, for the statements that compare
-- lease_until only (see the PostgreSQL migration: a statement that finds deliveries by id or
-- by occurrence must not take this index for a short list).
CREATE INDEX IF NOT EXISTS deliveries_leases ON deliveries (lease_until)
    WHERE status = 'sending' AND lease_until IS NOT NULL;
