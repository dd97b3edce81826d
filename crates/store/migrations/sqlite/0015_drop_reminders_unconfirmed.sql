-- Replaced by reminders_unconfirmed_open (0014).
DROP INDEX IF EXISTS reminders_unconfirmed;
