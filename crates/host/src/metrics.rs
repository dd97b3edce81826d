//! Prometheus metrics of a function: events by type and outcome, handling latency, events
//! in flight. Served as text on `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    latency: HistogramVec,
    lateness: HistogramVec,
    batch_events: HistogramVec,
    early: IntCounterVec,
    pub in_flight: IntGauge,
}

impl Metrics {
    pub fn new(function: &str) -> Self {
        let registry = Registry::new_custom(Some("todo_events".into()), None).expect("valid prefix");
        let events = IntCounterVec::new(
            Opts::new("events_total", "Events received, by CloudEvents type and outcome")
                .const_label("function", function),
            &["type", "outcome"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "event_handling_seconds",
                "Time from request to answer, by type and outcome",
            )
            .const_label("function", function)
            // Up to notify's longest answer: Knative's timeoutSeconds 120 (2 x SMTP_TIMEOUT);
            // 1.5 s is the trickle lateness target, so handling near it is resolved too.
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0,
                15.0, 30.0, 60.0, 90.0, 120.0,
            ]),
            &["type", "outcome"],
        )
        .expect("valid metric");
        let lateness = HistogramVec::new(
            HistogramOpts::new(
                "event_lateness_seconds",
                "Time from when an effect was due (remind_at, occurrence_at) to when it was done",
            )
            .const_label("function", function)
            // Bounds at the lateness targets (p99 <= 1.5 s trickle, <= 10 s burst, <= 30 s from
            // zero; docs/DEPLOYMENT.md "Lateness") with steps around each, then the retry
            // schedule (62 s), the republish safety net (10 m) and beyond.
            .buckets(vec![
                0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
                120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
            &["type"],
        )
        .expect("valid metric");
        let batch_events = HistogramVec::new(
            HistogramOpts::new(
                "batch_events",
                "Events handled together in one batch (one read, one write transaction), by \
                 transport: http (group commit of concurrent requests) or kafka",
            )
            .const_label("function", function)
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            &["transport"],
        )
        .expect("valid metric");
        let early = IntCounterVec::new(
            Opts::new(
                "early_events_total",
                "Events that arrived before their item was due (beyond CLOCK_SKEW_TOLERANCE), \
                 answered skipped with nothing done: a clock far off, or a sender that is not \
                 the scheduler",
            )
            .const_label("function", function),
            &["type"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::with_opts(
            Opts::new("events_in_flight", "Events being handled right now").const_label("function", function),
        )
        .expect("valid metric");
        registry
            .register(Box::new(events.clone()))
            .expect("registers once");
        registry
            .register(Box::new(latency.clone()))
            .expect("registers once");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("registers once");
        registry
            .register(Box::new(lateness.clone()))
            .expect("registers once");
        registry
            .register(Box::new(batch_events.clone()))
            .expect("registers once");
        registry
            .register(Box::new(early.clone()))
            .expect("registers once");
        Self {
            registry,
            events,
            latency,
            lateness,
            batch_events,
            early,
            in_flight,
        }
    }

    /// Registers a function's own metric beside the host's (names get the same
    /// `todo_events_` prefix). A name taken already is logged and left out.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::warn!("a function's metric is not served: {e}");
        }
    }

    /// Counts one event. `ty` must come from a small fixed set (the accepted type or
    /// `other`), never from the request, so the label set stays bounded.
    pub fn observe(&self, ty: &str, outcome: &str, seconds: f64) {
        self.events.with_label_values(&[ty, outcome]).inc();
        self.latency.with_label_values(&[ty, outcome]).observe(seconds);
    }

    /// Records how late an effect happened (negative lateness counts as 0).
    pub fn observe_lateness(&self, ty: &str, seconds: f64) {
        self.lateness.with_label_values(&[ty]).observe(seconds.max(0.0));
    }

    /// Creates the series of the accepted type at 0, so that alerts on early events see
    /// them before the first one.
    pub fn accepts(&self, ty: &str) {
        self.early.with_label_values(&[ty]);
    }

    /// Counts an event that came before its item was due.
    pub fn observe_early(&self, ty: &str) {
        self.early.with_label_values(&[ty]).inc();
    }

    /// Records the size of a batch handed to the function (`transport`: `http` or `kafka`).
    pub fn observe_batch(&self, transport: &str, events: usize) {
        self.batch_events
            .with_label_values(&[transport])
            .observe(events as f64);
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
