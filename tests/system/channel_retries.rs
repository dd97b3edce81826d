//! A user's failing webhook holds up only itself: the scheduler publishing to the real notify
//! over its HTTP sink, a real webhook receiver, the file mailer, on SQLite and PostgreSQL.
//! One endpoint of the user's fails (answers 503, hangs past `WEBHOOK_TIMEOUT`, or names a
//! host that does not resolve), another is fine: the event is answered 2xx at once with the
//! e-mail and the healthy webhook sent; the failing endpoint is retried by the scheduler's
//! pass at its own time (`CHANNEL_RETRY_FIRST` doubling) and given up after
//! `CHANNEL_RETRY_ATTEMPTS` with the reason recorded; nothing is sent twice. Counted where a
//! user sees it: files in the outbox, requests at the receiver, rows in `deliveries`.
//! Skipped, with a message, where the test virtualenv cannot be made (`require::receiver`).

use chrono::{Duration, SubsecRound, Utc};
use scheduler_cron::{HttpPublisher, Scheduler, SchedulerConfig};
use std::time::{Duration as StdDuration, Instant};
use todo_events_domain::HumanDuration;
use todo_events_store::seed::NewEndpoint;
use todo_events_store::{Channel, DeliveryStatus, ReminderState};
use todo_events_testkit as kit;
use todo_events_testkit::webhook::{Endpoint, Options, WebhookReceiver};

const ATTEMPTS: i32 = 3;

fn endpoints(names: &[&'static str]) -> Vec<Endpoint<'static>> {
    names
        .iter()
        .map(|&name| Endpoint { name, secret: None })
        .collect()
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_on_its_own_schedule_and_given_up_while_the_rest_goes_out() {
    if !kit::require::receiver() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        let receiver = WebhookReceiver::start(
            &endpoints(&["good", "bad"]),
            &Options {
                replies: vec!["bad=503;Retry-After: 1".into()],
                ..Options::default()
            },
        );
        // Hangs past notify's 1 s webhook timeout.
        let hanging = WebhookReceiver::start(
            &endpoints(&["bad"]),
            &Options {
                delay: Some(3.0),
                ..Options::default()
            },
        );
        // One notify per database (a function's pool connections live on its runtimes).
        let outbox_dir = tempfile::tempdir().unwrap();
        let mut config = notify::NotifyConfig::local(outbox_dir.path().into());
        config.channels.allow_private = true;
        config.channels.timeout = StdDuration::from_secs(1);
        config.channels.retry_first = StdDuration::from_secs(1);
        config.channels.retry_attempts = ATTEMPTS;
        let outbox = config.outbox_dir.clone();
        let notify = kit::spawn(notify::Notify::new(db.store.clone(), config).unwrap()).await;
        let count = |r: &WebhookReceiver, name: &str| {
            r.requests()
                .iter()
                .filter(|q| q.endpoint.as_deref() == Some(name))
                .count()
        };
        let mails = || std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
        for kind in ["503", "timeout", "unresolvable"] {
            let case = format!("{b}, endpoint {kind}");
            let bad_url = match kind {
                "503" => receiver.url("bad"),
                "timeout" => hanging.url("bad"),
                _ => "http://no-such-host.invalid/hooks/bad".to_owned(),
            };
            let metric =
                |text: &str, labels: &[&str]| kit::metric(text, "todo_events_deliveries_total", labels);
            let before = notify.metrics().await;
            let (mails_before, good_before) = (mails(), count(&receiver, "good"));
            let bad_before = (count(&receiver, "bad"), hanging.received());

            let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
            let r = kit::reminder(&db.store, "Retried on its own", due).await;
            db.store
                .set_reminder_channels(r.reminder_id, "email,webhook")
                .await
                .unwrap();
            let good_url = receiver.url("good");
            for target in [&good_url, &bad_url] {
                db.store
                    .insert_endpoint(&NewEndpoint {
                        user_id: r.user_id,
                        channel: Channel::Webhook,
                        target,
                        format: "standard",
                        secret: None,
                        p256dh: None,
                        auth: None,
                    })
                    .await
                    .unwrap();
            }
            let mut sc = SchedulerConfig::local(String::new(), String::new());
            sc.owner = "retries".into();
            sc.lease = HumanDuration(StdDuration::from_secs(30));
            let publisher = HttpPublisher::new(
                Some(format!("{}/", notify.url)),
                Some(format!("{}/", notify.url)),
                StdDuration::from_secs(10),
            );
            let scheduler = Scheduler::new(db.store.clone(), publisher, sc);
            let bad_requests = || match kind {
                "503" => count(&receiver, "bad") - bad_before.0,
                "timeout" => hanging.received() - bad_before.1,
                _ => 0,
            };
            let good = || count(&receiver, "good") - good_before;
            // The first pass: the event is acknowledged (2xx) at once, the e-mail and the
            // good webhook are out, the bad one waits for its retry time.
            let started = Instant::now();
            let report = scheduler.pass().await.unwrap();
            let took = started.elapsed();
            assert_eq!(
                (report.reminders_published, report.failed),
                (1, 0),
                "{case}: acknowledged"
            );
            assert!(
                took < StdDuration::from_secs(3),
                "{case}: answered at once ({took:?})"
            );
            assert_eq!(mails() - mails_before, 1, "{case}");
            assert_eq!(good(), 1, "{case}");
            assert_eq!(
                db.store.reminder_state(r.reminder_id).await.unwrap(),
                Some(ReminderState::Published),
                "{case}: a delivery waits"
            );
            // Not before its time.
            assert_eq!(scheduler.pass().await.unwrap().published(), 0, "{case}: not yet");

            // Attempts 2 and 3 come from the scheduler's pass at their times (1 s, then 2 s).
            for (attempt, wait_ms) in [(2, 1_300), (3, 2_300)] {
                tokio::time::sleep(StdDuration::from_millis(wait_ms)).await;
                let report = scheduler.pass().await.unwrap();
                assert_eq!(
                    (report.reminders_published, report.republished, report.failed),
                    (1, 0, 0),
                    "{case}: attempt {attempt} published by the retry pass"
                );
                assert_eq!(scheduler.pass().await.unwrap().published(), 0, "{case}: once");
            }
            let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
            let seen: Vec<_> = rows.iter().map(|d| (d.channel, d.status, d.attempts)).collect();
            assert_eq!(
                seen,
                [
                    (Channel::Email, DeliveryStatus::Sent, 1),
                    (Channel::Webhook, DeliveryStatus::Sent, 1),
                    (Channel::Webhook, DeliveryStatus::Failed, ATTEMPTS),
                ],
                "{case}"
            );
            let detail = rows[2].detail.clone().unwrap_or_default();
            let why = match kind {
                "503" => "503",
                "timeout" => "timed out",
                _ => "could not be reached",
            };
            assert!(
                detail.starts_with(&format!("gave up after {ATTEMPTS} attempts over "))
                    && detail.contains(why),
                "{case}: {detail}"
            );
            if kind != "unresolvable" {
                // The hanging receiver writes a request down when it answers (3 s after it).
                let deadline = Instant::now() + StdDuration::from_secs(4);
                while bad_requests() < ATTEMPTS as usize && Instant::now() < deadline {
                    tokio::time::sleep(StdDuration::from_millis(100)).await;
                }
                assert_eq!(
                    bad_requests(),
                    ATTEMPTS as usize,
                    "{case}: one request per attempt"
                );
            }
            assert_eq!(good(), 1, "{case}: the good webhook is not repeated");
            assert_eq!(mails() - mails_before, 1, "{case}: one e-mail");
            assert_eq!(
                db.store.reminder_state(r.reminder_id).await.unwrap(),
                Some(ReminderState::Sent),
                "{case}"
            );
            tokio::time::sleep(StdDuration::from_millis(1_200)).await;
            assert_eq!(
                scheduler.pass().await.unwrap().published(),
                0,
                "{case}: given up, no more"
            );
            let after = notify.metrics().await;
            let m = |labels: &[&str]| metric(&after, labels) - metric(&before, labels);
            assert_eq!(
                (
                    m(&["webhook", "scheduled"]),
                    m(&["webhook", "failed"]),
                    m(&["webhook", "retry"])
                ),
                (f64::from(ATTEMPTS - 1), 1.0, 0.0),
                "{case}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "three kinds on at least SQLite, got {checked}");
}
