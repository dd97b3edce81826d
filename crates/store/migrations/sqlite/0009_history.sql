-- A year of history (docs/DESIGN.md, "Retention" and "Whose rows"); the PostgreSQL
-- migration explains each change. SQLite's triggers cannot change the row being written:
-- these update it after (recursive triggers are off).
CREATE TRIGGER reminders_ended AFTER UPDATE OF state ON reminders
    FOR EACH ROW WHEN NEW.state = 'cancelled' AND OLD.state IS NOT 'cancelled'
BEGIN
    UPDATE reminders SET lease_owner = NULL, lease_until = NULL WHERE id = NEW.id;
END;

CREATE TRIGGER recurring_tasks_ended AFTER UPDATE OF active ON recurring_tasks
    FOR EACH ROW WHEN NOT NEW.active AND OLD.active
BEGIN
    UPDATE recurring_tasks SET lease_owner = NULL, lease_until = NULL WHERE id = NEW.id;
END;
