-- Per-delivery retries (docs/CHANNELS.md); the PostgreSQL migration explains each change.
ALTER TABLE deliveries ADD COLUMN first_claimed_at TEXT;
CREATE INDEX deliveries_waiting ON deliveries (lease_until) WHERE status = 'sending';
