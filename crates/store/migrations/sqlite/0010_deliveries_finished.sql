-- The retention's candidates: finished deliveries, oldest first (see the PostgreSQL migration).
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (completed_at) WHERE status <> 'sending';
