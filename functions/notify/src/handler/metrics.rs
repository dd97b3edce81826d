//! notify's own metrics: `deliveries_total`, each delivery counted once by channel and how it
//! ended, and `reminders_deferred_total` (quiet hours), served on `/metrics` beside the host's (`Function::collectors`).

use prometheus::{IntCounter, IntCounterVec, Opts};
use todo_events_store::Channel;

/// How a delivery can end, as the `outcome` label names it.
const OUTCOMES: [&str; 8] = [
    "sent",
    "failed",
    "gone",
    "retry",
    "scheduled",
    "sending",
    "duplicate",
    "held",
];

/// `deliveries_total{function="notify", channel, outcome}`.
pub(super) struct Metrics {
    deliveries: IntCounterVec,
    /// `reminders_deferred_total{function="notify"}`: reminders put off to the end of their
    /// users' quiet hours (each once).
    deferred: IntCounter,
    /// `status_events_lost_total{function="notify"}`: status events that could not be
    /// recorded (the todo app does not see those outcomes).
    status_lost: IntCounter,
}

impl Metrics {
    /// The counter, with every series from the start (at 0), so that dashboards and alerts
    /// see them before the first delivery.
    pub fn new() -> Result<Self, String> {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "deliveries_total",
                "Deliveries of reminders, by channel and how they ended: sent, failed (for good), \
                 gone (push subscription ended, deactivated), retry (transient, the event \
                 retried), scheduled (a webhook or push failed transiently: retried on its own \
                 schedule, the event answered), sending (a webhook or push slower than the \
                 batch's patience: answered without it, its outcome counted again when it \
                 comes), duplicate (done before), held (cannot be made now)",
            )
            .const_label("function", "notify"),
            &["channel", "outcome"],
        )
        .map_err(|e| e.to_string())?;
        for channel in Channel::ALL {
            for outcome in OUTCOMES {
                deliveries.with_label_values(&[channel.as_str(), outcome]);
            }
        }
        let deferred = IntCounter::with_opts(
            Opts::new(
                "reminders_deferred_total",
                "Reminders due inside their users' quiet hours, put off to the end of them (each once)",
            )
            .const_label("function", "notify"),
        )
        .map_err(|e| e.to_string())?;
        let status_lost = IntCounter::with_opts(
            Opts::new(
                "status_events_lost_total",
                "Status events (what came of a reminder) that could not be recorded for the todo app",
            )
            .const_label("function", "notify"),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            deliveries,
            deferred,
            status_lost,
        })
    }

    /// One reminder put off to the end of its user's quiet hours.
    pub fn deferred(&self) {
        self.deferred.inc();
    }

    /// One delivery on `channel` ended as `outcome`.
    pub fn count(&self, channel: Channel, outcome: &str) {
        self.deliveries
            .with_label_values(&[channel.as_str(), outcome])
            .inc();
    }

    /// `n` status events that could not be recorded.
    pub fn status_lost(&self, n: usize) {
        self.status_lost.inc_by(n as u64);
    }

    /// What the host registers and serves.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.deliveries.clone()),
            Box::new(self.deferred.clone()),
            Box::new(self.status_lost.clone()),
        ]
    }
}
