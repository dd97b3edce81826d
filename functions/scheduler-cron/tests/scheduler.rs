//! scheduler-cron against real databases: concurrent claims, HTTP sinks, leases, catch-up.

use chrono::{Duration, SubsecRound, Utc};
use scheduler_cron::publish::PublishError;
use scheduler_cron::{Publisher, Scheduler, SchedulerConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use todo_events_domain::events::Outgoing;
use todo_events_domain::HumanDuration;
use todo_events_testkit as kit;

/// Acknowledges everything and remembers what it saw.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<String>>>);

impl Publisher for Recording {
    async fn publish(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        // Slow enough that two schedulers' passes overlap.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.0.lock().unwrap().extend(events.iter().map(|e| e.id.clone()));
        events.iter().map(|_| Ok(())).collect()
    }
}

fn config(owner: &str, batch: i64, lease_secs: u64) -> SchedulerConfig {
    let mut c = SchedulerConfig::local(String::new(), String::new());
    c.owner = owner.into();
    c.batch = batch;
    c.lease = HumanDuration(std::time::Duration::from_secs(lease_secs));
    c
}

#[tokio::test]
async fn two_schedulers_at_once_publish_every_due_item_exactly_once() {
    for db in kit::backends().await {
        let due = Utc::now().trunc_subsecs(0) - Duration::seconds(5);
        db.store
            .seed_bulk(&todo_events_store::seed::Bulk {
                users: 20,
                reminders: 600,
                recurring: 150,
                due_at: due,
                recurring_rule: "FREQ=DAILY",
                recurring_dtstart: &due.format("%Y-%m-%dT%H:%M:%S").to_string(),
            })
            .await
            .unwrap();
        let seen = Recording::default();
        // Two schedulers, each with several claim loops of its own (SCHEDULER_WORKERS).
        let mut ca = config("scheduler-a", 25, 60);
        ca.workers = 4;
        let mut cb = config("scheduler-b", 25, 60);
        cb.workers = 3;
        let a = Scheduler::new(db.store.clone(), seen.clone(), ca);
        let b = Scheduler::new(db.store.clone(), seen.clone(), cb);
        let (ra, rb) = tokio::join!(a.pass(), b.pass());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // Passes again: nothing is left, nothing is republished.
        let again = a.pass().await.unwrap();
        assert_eq!(again.published(), 0, "{}", db.backend);

        let ids = seen.0.lock().unwrap().clone();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &ids {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(doubled.is_empty(), "{}: published twice: {doubled:?}", db.backend);
        assert_eq!(counts.len(), 750, "{}: every due item", db.backend);
        assert_eq!(ra.published() + rb.published(), 750);
        if db.backend == "postgres" {
            assert!(
                ra.published() > 0 && rb.published() > 0,
                "both schedulers took a share: {ra:?} {rb:?}"
            );
        }
    }
}
