-- A year of history (docs/DESIGN.md, "Retention" and "Whose rows"). The todo app's rows
-- (users, tasks, reminders, recurring tasks) are never deleted by todo-events; what it
-- writes on them for its own work it clears when they end. A scheduler's claim on a
-- reminder or a recurring task (lease_owner, lease_until) ends with the reminder the app
-- cancels or the recurring task it stops, whatever the scheduler holding it does next.
CREATE FUNCTION lease_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.lease_owner := NULL;
    NEW.lease_until := NULL;
    RETURN NEW;
END
$$;
-- WHEN on the trigger, not in the function: the hot path's own state changes (published,
-- sent) do not call it at all.
CREATE TRIGGER reminders_ended BEFORE UPDATE OF state ON reminders FOR EACH ROW
    WHEN (NEW.state = 'cancelled' AND OLD.state IS DISTINCT FROM 'cancelled') EXECUTE FUNCTION lease_ended();

CREATE TRIGGER recurring_tasks_ended BEFORE UPDATE OF active ON recurring_tasks FOR EACH ROW
    WHEN (OLD.active AND NOT NEW.active) EXECUTE FUNCTION lease_ended();
