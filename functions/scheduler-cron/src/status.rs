//! The third kind of item (`NOTIFICATION_EVENTS=on`): the status events notify recorded —
//! what came of each reminder — published as CloudEvents of the reply's type, id and source
//! (`dev.todo.notification.<outcome>`, `<event id>/<outcome>`, `/todo/notify`) to the
//! notifications stream, keyed by user, then marked published; and the retention, which
//! deletes old ones whether they were published or not (docs/PREFERENCES.md).
//!
//! They go after the due items and are counted apart from them: a status event that cannot
//! be published is claimed again after its lease, and never makes the pass, or a reminder,
//! fail.

use crate::kind::{Db, Kind};
use crate::pass::{PassReport, LOG_TARGET};
use chrono::{DateTime, Utc};
use todo_events_domain::events::{Outgoing, Stream, NOTIFY_SOURCE};
use todo_events_store::scheduler::ClaimRequest;
use todo_events_store::status::ClaimedStatus;
use todo_events_store::StoreError;

/// Status events: one `dev.todo.notification.*` each.
pub(crate) struct Statuses;

impl Kind for Statuses {
    type Claimed = ClaimedStatus;
    type Target = String;
    const WHAT: &'static str = "status event";

    async fn claim(&self, db: &Db<'_>, c: &ClaimRequest<'_>) -> Result<Vec<ClaimedStatus>, StoreError> {
        db.store.claim_statuses(c.owner, c.now, c.lease, c.limit).await
    }

    fn again(_: &[ClaimedStatus]) -> usize {
        0
    }

    async fn events(
        &self,
        _: &Db<'_>,
        claimed: Vec<ClaimedStatus>,
        _: &mut PassReport,
    ) -> Result<Vec<(String, Outgoing)>, StoreError> {
        Ok(claimed.into_iter().map(|s| (s.id.clone(), outgoing(s))).collect())
    }

    fn acknowledged(_: &String, event: &Outgoing) {
        tracing::debug!(target: LOG_TARGET, event_id = %event.id, "status event published");
    }

    async fn mark(&self, db: &Db<'_>, acked: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        if !acked.is_empty() {
            db.store.mark_statuses_published(db.owner, acked, now).await?;
        }
        Ok(())
    }

    fn count(acked: &[String], report: &mut PassReport) {
        report.statuses_published += acked.len();
    }
}

/// The CloudEvent of a recorded status: as notify's reply was, on the notifications stream.
fn outgoing(s: ClaimedStatus) -> Outgoing {
    let data = serde_json::from_str(&s.data).unwrap_or(serde_json::Value::String(s.data));
    Outgoing {
        stream: Stream::Notifications,
        ty: s.ty,
        source: NOTIFY_SOURCE,
        id: s.id,
        subject: format!("tasks/{}", s.task_id),
        key: s.user_id.to_string(),
        data,
    }
}
