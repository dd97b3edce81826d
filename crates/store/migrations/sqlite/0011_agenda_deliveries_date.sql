-- The retention's candidates among the agendas' deliveries, by date.
CREATE INDEX IF NOT EXISTS agenda_deliveries_date ON agenda_deliveries (agenda_date);
