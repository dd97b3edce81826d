-- no-transaction
-- The retry pass's and the take-overs' candidates: deliveries still 'sending' whose lease has
-- ended, as deliveries_waiting (0005) was, with `lease_until IS NOT NULL` added to its
-- condition. The column is never NULL; the clause is there for the planner, which may use a
-- partial index only for a statement whose conditions imply the index's. Every statement
-- that wants this index compares lease_until (`lease_until <= $n`, which implies IS NOT
-- NULL); the statements that find a batch's own deliveries by id or by occurrence
-- (notify's FINISH_DELIVERIES, RELEASE_DELIVERIES, the settle step) do not, and so can no
-- longer use it. They did: ANALYZE rarely sees a delivery 'sending', so the planner took
-- the index for a one-row list and scanned every delivery in flight once per delivery of
-- the batch — with 1 000 in flight, 111 ms a batch of 200 against 6 ms by the primary key
-- and deliveries_once (docs/PERFORMANCE.md, "Cost flat as history grows"). CONCURRENTLY,
-- as 0010 says why; 0017 drops the old index.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_leases ON deliveries (lease_until)
    WHERE status = 'sending' AND lease_until IS NOT NULL;
