//! Step 2b, defer: the reminders that came due inside their users' quiet hours put off to
//! the windows' ends, in one statement, and their events answered `deferred`.
//!
//! A reminder is put off once per `remind_at` (the statement writes only where
//! `deferred_until` is still empty): a redelivered event finds the deferral and waits for it
//! ([`super::decide`]'s `Deferred`), and when the scheduler publishes the reminder again at
//! the window's end it goes out, whatever the clock says then. A reminder the statement
//! did not change was put off by a concurrent delivery of the same event (or moved or
//! cancelled meanwhile, which its next event finds): it is answered as put off before.

use super::decide::Decided;
use super::preferences::deferred;
use super::Notify;
use todo_events_domain::time::now;
use todo_events_host::Failure;

impl Notify {
    /// Step 2b (see the module docs): each event deferring answered, the others as they were.
    pub(super) async fn defer<'c>(&self, decided: Vec<Decided<'c>>) -> Vec<Decided<'c>> {
        let deferrals: Vec<_> = decided
            .iter()
            .filter_map(|d| match d {
                Decided::Deferring(due, until) => Some((due.reminder_id, due.remind_at, *until)),
                _ => None,
            })
            .collect();
        if deferrals.is_empty() {
            return decided;
        }
        let written = self
            .store
            .defer_reminders(&deferrals, now())
            .await
            .map_err(Failure::from);
        let answer = |d| match (d, &written) {
            (Decided::Deferring(due, until), Ok(now_deferred)) => {
                let fresh = now_deferred.contains(&due.reminder_id);
                if fresh {
                    self.metrics.deferred();
                }
                let how = if fresh { "put off now" } else { "put off before" };
                Decided::Answered(deferred(due, until, how).logged(due))
            }
            (Decided::Deferring(..), Err(failure)) => Decided::Answered(Err(failure.clone())),
            (other, _) => other,
        };
        decided.into_iter().map(answer).collect()
    }
}
