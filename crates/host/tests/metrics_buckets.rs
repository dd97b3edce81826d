//! The histograms' buckets resolve what operations look at (docs/DEPLOYMENT.md,
//! "Lateness"): lateness p99 targets of 1.5 s (a trickle), 10 s (a burst) and 30 s (from
//! zero) are bucket bounds, and handling time reaches notify's longest answer (Knative's
//! `timeoutSeconds: 120` in knative/notify.yaml). tests/system/manifests/check.py checks the same
//! bounds against the manifests and the alert thresholds.

use todo_events_host::metrics::Metrics;

/// The `le` bounds of one histogram in the rendered text, in order.
fn bounds(text: &str, histogram: &str) -> Vec<f64> {
    let prefix = format!("todo_events_{histogram}_bucket{{");
    let mut out: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            (le != "+Inf").then(|| le.parse().expect("numeric le"))
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

fn rendered() -> String {
    let m = Metrics::new("notify");
    m.observe("dev.todo.reminder.due", "sent", 0.2);
    m.observe_lateness("dev.todo.reminder.due", 0.7);
    m.render()
}

#[test]
fn lateness_buckets_have_a_bound_at_every_target() {
    let b = bounds(&rendered(), "event_lateness_seconds");
    for target in [1.5, 10.0, 30.0] {
        assert!(b.contains(&target), "no le=\"{target}\" bound in {b:?}");
    }
    // Steps on both sides of each target, so a quantile near it is interpolated in a
    // narrow bucket rather than a decade-wide one.
    for target in [1.5, 10.0, 30.0] {
        let i = b.iter().position(|x| *x == target).unwrap();
        assert!(
            i > 0 && b[i - 1] >= target / 2.0,
            "the bound below {target} is too far: {b:?}"
        );
        assert!(
            b[i + 1] <= target * 2.0,
            "the bound above {target} is too far: {b:?}"
        );
    }
    // Beyond the targets: the retry schedule (62 s) and the republish safety net (10 m).
    assert!(b.last().copied().unwrap_or(0.0) >= 600.0, "{b:?}");
}

#[test]
fn handling_buckets_reach_notifys_timeout() {
    let b = bounds(&rendered(), "event_handling_seconds");
    assert!(
        b.contains(&120.0),
        "no le=\"120\" bound (Knative timeoutSeconds of notify): {b:?}"
    );
    assert!(
        b.contains(&1.5),
        "no le=\"1.5\" bound (the trickle lateness target): {b:?}"
    );
    assert!(
        b.first().copied().unwrap_or(1.0) <= 0.001,
        "sub-millisecond handling unresolved: {b:?}"
    );
}
