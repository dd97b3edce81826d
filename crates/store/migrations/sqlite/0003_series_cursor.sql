-- Where recur and the scheduler may resume a COUNT rule's expansion instead of walking from
-- DTSTART: JSON {"rrule", "dtstart", "period", "before"} written by recur when it advances a
-- task (todo_events_domain::Schedule::cursor_for). It names the rule and DTSTART it was
-- counted for, so a cursor left by an earlier rule is ignored: the app need not clear it.
-- NULL for rules without COUNT (they resume anywhere without one).
ALTER TABLE recurring_tasks ADD COLUMN series_cursor TEXT;
