-- A user's endpoint that fails transiently is retried on its own schedule (docs/CHANNELS.md):
-- its delivery stays 'sending', released until its retry time (lease_until), and the
-- scheduler's retry pass publishes the reminder's event again once that time has come.
-- first_claimed_at: when the delivery was first claimed (claimed_at moves with each
-- take-over), so that giving up can say "after N attempts over T". NULL on older rows:
-- claimed_at stands in for it.
ALTER TABLE deliveries ADD COLUMN first_claimed_at TIMESTAMPTZ;
-- The retry pass's candidates: deliveries still 'sending' whose lease (retry time) is over.
CREATE INDEX deliveries_waiting ON deliveries (lease_until) WHERE status = 'sending';
