//! The system over HTTP: the scheduler publishing to the real notify and recur functions
//! through HTTP sinks (the local stack's event path), on SQLite and PostgreSQL.

use chrono::{Duration, SubsecRound, Utc};
use recur::Recur;
use scheduler_cron::{HttpPublisher, Scheduler, SchedulerConfig};
use todo_events_domain::HumanDuration;
use todo_events_testkit as kit;

fn config(owner: &str, batch: i64, lease_secs: u64) -> SchedulerConfig {
    let mut c = SchedulerConfig::local(String::new(), String::new());
    c.owner = owner.into();
    c.batch = batch;
    c.lease = HumanDuration(std::time::Duration::from_secs(lease_secs));
    c
}

#[tokio::test]
async fn http_sinks_deliver_to_the_functions_and_rows_are_marked_after_the_ack() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let notify = kit::spawn(
            notify::Notify::new(
                db.store.clone(),
                notify::NotifyConfig::local(outbox.path().into()),
            )
            .unwrap(),
        )
        .await;
        let recur = kit::spawn(Recur::new(db.store.clone())).await;
        let now = Utc::now().trunc_subsecs(0);
        let r = kit::reminder(&db.store, "Through the sink", now - Duration::seconds(1)).await;
        let occ = now - Duration::seconds(1);
        let dtstart = occ.format("%Y-%m-%dT%H:%M:%S").to_string();
        let rt = kit::recurring(&db.store, "FREQ=HOURLY", &dtstart, "UTC", occ, "latest", &[]).await;

        let publisher = HttpPublisher::new(
            Some(format!("{}/", notify.url)),
            Some(format!("{}/", recur.url)),
            std::time::Duration::from_secs(5),
        );
        let scheduler = Scheduler::new(db.store.clone(), publisher, config("s", 100, 60));
        let report = scheduler.pass().await.unwrap();
        assert_eq!(
            (
                report.reminders_published,
                report.occurrences_published,
                report.failed
            ),
            (1, 1, 0),
            "{}",
            db.backend
        );
        // notify's "sent" is not overwritten by the scheduler's "published".
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("sent")
        );
        assert_eq!(std::fs::read_dir(outbox.path()).unwrap().count(), 1);
        assert_eq!(db.store.instances_of(rt.id).await.unwrap().len(), 1);
        let next = db
            .store
            .recurring_task(rt.id)
            .await
            .unwrap()
            .unwrap()
            .next_occurrence
            .unwrap();
        assert_eq!(next, occ + Duration::hours(1));
        assert_eq!(scheduler.pass().await.unwrap().published(), 0, "nothing left");
    }
}

#[tokio::test]
async fn a_sink_that_is_down_leaves_rows_claimed_until_the_lease_ends_then_they_are_republished() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let r = kit::reminder(
            &db.store,
            "Sink down",
            Utc::now().trunc_subsecs(0) - Duration::seconds(1),
        )
        .await;
        // Nothing listens on port 9.
        let down = HttpPublisher::new(
            Some("http://127.0.0.1:9/".into()),
            Some("http://127.0.0.1:9/".into()),
            std::time::Duration::from_secs(2),
        );
        let first = Scheduler::new(db.store.clone(), down, config("first", 100, 1));
        let report = first.pass().await.unwrap();
        assert_eq!(
            (report.reminders_published, report.failed),
            (0, 1),
            "{}",
            db.backend
        );
        assert!(report.first_error.unwrap().contains("unreachable"));
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("publishing")
        );

        let notify = kit::spawn(
            notify::Notify::new(
                db.store.clone(),
                notify::NotifyConfig::local(outbox.path().into()),
            )
            .unwrap(),
        )
        .await;
        let up = HttpPublisher::new(
            Some(format!("{}/", notify.url)),
            None,
            std::time::Duration::from_secs(5),
        );
        let second = Scheduler::new(db.store.clone(), up, config("second", 100, 60));
        assert_eq!(
            second.pass().await.unwrap().published(),
            0,
            "{}: the lease still holds",
            db.backend
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(
            second.pass().await.unwrap().reminders_published,
            1,
            "{}: republished after the lease",
            db.backend
        );
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("sent")
        );
        assert_eq!(std::fs::read_dir(outbox.path()).unwrap().count(), 1);
    }
}

/// Runs scheduler passes (delivering to recur over HTTP) until nothing more is published.
async fn drain(scheduler: &Scheduler<HttpPublisher>) -> usize {
    let mut total = 0;
    for _ in 0..50 {
        let n = scheduler.pass().await.unwrap().published();
        if n == 0 {
            return total;
        }
        total += n;
    }
    panic!("the scheduler never went quiet");
}

#[tokio::test]
async fn three_days_of_downtime_catch_up_latest_gives_one_instance_and_all_gives_three() {
    for db in kit::backends().await {
        let recur = kit::spawn(Recur::new(db.store.clone())).await;
        let publisher = HttpPublisher::new(
            None,
            Some(format!("{}/", recur.url)),
            std::time::Duration::from_secs(5),
        );
        let scheduler = Scheduler::new(db.store.clone(), publisher, config("catch-up", 100, 60));
        // Daily at this minute of the day; the system was down for the last three occurrences.
        let now = Utc::now().trunc_subsecs(0);
        let first_missed = now - Duration::days(3) + Duration::minutes(1);
        let dtstart = (first_missed - Duration::days(10))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let latest = kit::recurring(
            &db.store,
            "FREQ=DAILY",
            &dtstart,
            "UTC",
            first_missed,
            "latest",
            &[],
        )
        .await;
        let all = kit::recurring(&db.store, "FREQ=DAILY", &dtstart, "UTC", first_missed, "all", &[]).await;

        drain(&scheduler).await;

        let latest_instances = db.store.instances_of(latest.id).await.unwrap();
        let all_instances = db.store.instances_of(all.id).await.unwrap();
        assert_eq!(latest_instances.len(), 1, "{}: latest", db.backend);
        assert_eq!(
            latest_instances[0].1,
            first_missed + Duration::days(2),
            "the latest missed occurrence"
        );
        assert_eq!(all_instances.len(), 3, "{}: all", db.backend);
        let times: Vec<_> = all_instances.iter().map(|(_, t)| *t).collect();
        assert_eq!(
            times,
            [
                first_missed,
                first_missed + Duration::days(1),
                first_missed + Duration::days(2)
            ]
        );
        for id in [latest.id, all.id] {
            let rt = db.store.recurring_task(id).await.unwrap().unwrap();
            assert_eq!(
                rt.next_occurrence,
                Some(first_missed + Duration::days(3)),
                "{}: back on schedule",
                db.backend
            );
        }
    }
}

/// An event that comes before its item is due (a forged or early sender) changes nothing: the
/// reminder stays pending and the recurring task where it was, so the scheduler still sends the
/// reminder and creates the instance at their time, once.
#[tokio::test]
async fn an_early_event_changes_nothing_and_the_scheduler_still_acts_at_the_items_time() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let notify = kit::spawn(
            notify::Notify::new(
                db.store.clone(),
                notify::NotifyConfig::local(outbox.path().into()),
            )
            .unwrap(),
        )
        .await;
        let recur = kit::spawn(Recur::new(db.store.clone())).await;
        // Due a little more than the clock-skew tolerance (10 s) from now.
        let due = Utc::now().trunc_subsecs(0) + Duration::seconds(12);
        let r = kit::reminder(&db.store, "Early bird", due).await;
        let dtstart = due.format("%Y-%m-%dT%H:%M:%S").to_string();
        let rt = kit::recurring(&db.store, "FREQ=HOURLY", &dtstart, "UTC", due, "latest", &[]).await;

        let (status, ty, _) = kit::reply(
            notify
                .post_binary("dev.todo.reminder.due", &r.event_id(), &r.data())
                .await,
        )
        .await;
        assert_eq!((status, ty.as_str()), (200, "dev.todo.notification.skipped"));
        let (status, ty, _) = kit::reply(
            recur
                .post_binary("dev.todo.recurring-task.due", "recurring-task/x", &rt.data(due))
                .await,
        )
        .await;
        assert_eq!((status, ty.as_str()), (200, "dev.todo.task-instance.skipped"));
        assert_eq!(
            std::fs::read_dir(outbox.path()).map(|d| d.count()).unwrap_or(0),
            0
        );
        assert!(db.store.instances_of(rt.id).await.unwrap().is_empty());

        let publisher = HttpPublisher::new(
            Some(format!("{}/", notify.url)),
            Some(format!("{}/", recur.url)),
            std::time::Duration::from_secs(5),
        );
        let scheduler = Scheduler::new(db.store.clone(), publisher, config("s", 100, 60));
        assert_eq!(
            scheduler.pass().await.unwrap().published(),
            0,
            "{}: nothing due yet",
            db.backend
        );
        let wait = (due - Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_millis(200);
        tokio::time::sleep(wait).await;
        let report = scheduler.pass().await.unwrap();
        assert_eq!(
            (
                report.reminders_published,
                report.occurrences_published,
                report.failed
            ),
            (1, 1, 0),
            "{}",
            db.backend
        );
        assert_eq!(
            std::fs::read_dir(outbox.path()).unwrap().count(),
            1,
            "{}: one mail, at its time",
            db.backend
        );
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("sent")
        );
        let instances = db.store.instances_of(rt.id).await.unwrap();
        assert_eq!(instances.len(), 1, "{}", db.backend);
        assert_eq!(instances[0].1, due);
    }
}

/// A plain HTTP deployment with a shared token: the functions take events only with
/// `AUTH_TOKEN`, and scheduler-cron's HTTP sinks send it. A scheduler without the token is
/// answered `401`, publishes nothing and leaves its rows to a later pass; with it, both effects
/// happen once.
#[tokio::test]
async fn with_a_shared_token_only_the_scheduler_that_sends_it_is_heard() {
    let token = "0123456789abcdef0123456789abcdef-shared";
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let opts = || todo_events_host::HostOptions {
            workers: 2,
            auth: todo_events_host::Auth::new(Some(token.to_owned().into()), None).unwrap(),
            ..Default::default()
        };
        let notify = kit::spawn_with(
            notify::Notify::new(
                db.store.clone(),
                notify::NotifyConfig::local(outbox.path().into()),
            )
            .unwrap(),
            opts(),
        )
        .await;
        let recur = kit::spawn_with(Recur::new(db.store.clone()), opts()).await;
        let now = Utc::now().trunc_subsecs(0);
        let r = kit::reminder(&db.store, "Only with the token", now - Duration::seconds(1)).await;
        let occ = now - Duration::seconds(1);
        let dtstart = occ.format("%Y-%m-%dT%H:%M:%S").to_string();
        let rt = kit::recurring(&db.store, "FREQ=HOURLY", &dtstart, "UTC", occ, "latest", &[]).await;
        let publisher = |token: Option<&str>| {
            HttpPublisher::new(
                Some(format!("{}/", notify.url)),
                Some(format!("{}/", recur.url)),
                std::time::Duration::from_secs(5),
            )
            .with_token(token.map(|t| t.to_owned().into()))
        };
        // What the user sees: mails in the outbox, task instances.
        let effects = || async {
            let mails = std::fs::read_dir(outbox.path()).unwrap().count();
            (mails, db.store.instances_of(rt.id).await.unwrap().len())
        };
        // Without the token (lease 1 s, so that the next pass may take the rows again).
        let without = Scheduler::new(db.store.clone(), publisher(None), config("a", 100, 1));
        let report = without.pass().await.unwrap();
        assert_eq!((report.published(), report.failed), (0, 2), "{}", db.backend);
        assert_eq!(effects().await, (0, 0), "{}: mails and instances", db.backend);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        // With it.
        let with = Scheduler::new(db.store.clone(), publisher(Some(token)), config("b", 100, 60));
        let report = with.pass().await.unwrap();
        assert_eq!((report.published(), report.failed), (2, 0), "{}", db.backend);
        let state = db.store.reminder_state(r.reminder_id).await.unwrap();
        assert_eq!(state.map(|s| s.as_str()), Some("sent"), "{}", db.backend);
        assert_eq!(effects().await, (1, 1), "{}: mails and instances", db.backend);
    }
}
