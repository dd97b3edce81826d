-- no-transaction
-- The retention's candidates among the agendas' deliveries: by date (an agenda is stale once
-- the next day's is due). CONCURRENTLY, as 0010 says why.
CREATE INDEX CONCURRENTLY IF NOT EXISTS agenda_deliveries_date ON agenda_deliveries (agenda_date);
