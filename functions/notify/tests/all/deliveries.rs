//! notify over real HTTP delivering one reminder on every channel it names: e-mail (the file
//! mailer), two webhooks and a Web Push subscription at a real receiver on loopback
//! (`testkit::webhook`: it checks every Standard Webhooks signature and VAPID token and
//! decrypts every push by itself), on a fresh SQLite file and a fresh PostgreSQL database.
//! Each copy is counted where it arrives: files in the outbox, requests at the receiver,
//! rows in `deliveries`.
//! Skipped, with a message, where the test virtualenv cannot be made (`require::receiver`).

use app::{mails, outcomes};
use chrono::{Duration, SubsecRound, Utc};
use todo_events_store::seed::NewEndpoint;
use todo_events_store::{Channel, DeliveryStatus, ReminderState};
use todo_events_testkit::webhook::{Endpoint, Options, Request, WebhookReceiver};
use todo_events_testkit::{self as kit, reply, ReminderFixture, TestDb};

use crate::channels::app;

const REMINDER: &str = "dev.todo.reminder.due";
/// The Standard Webhooks specification's example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn receiver(replies: &[&str]) -> WebhookReceiver {
    WebhookReceiver::start(
        &[
            Endpoint {
                name: "hook",
                secret: Some(SECRET),
            },
            Endpoint {
                name: "phone",
                secret: None,
            },
        ],
        &Options {
            replies: replies.iter().map(|r| r.to_string()).collect(),
            push: vec!["browser".into()],
            ..Options::default()
        },
    )
}

/// A reminder on `channels` whose user has a signed `standard` webhook ("hook"), an `ntfy`
/// one ("phone") and a push subscription ("browser") at `receiver`.
async fn reminder(db: &TestDb, receiver: &WebhookReceiver, channels: &str) -> (ReminderFixture, [i64; 3]) {
    let s = &db.store;
    let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
    let r = kit::reminder(s, "Water the plants", due).await;
    s.set_reminder_channels(r.reminder_id, channels).await.unwrap();
    let (hook, phone) = (receiver.url("hook"), receiver.url("phone"));
    let browser = receiver.subscription("browser");
    let endpoints = [
        NewEndpoint {
            user_id: r.user_id,
            channel: Channel::Webhook,
            target: &hook,
            format: "standard",
            secret: Some(SECRET),
            p256dh: None,
            auth: None,
        },
        NewEndpoint {
            user_id: r.user_id,
            channel: Channel::Webhook,
            target: &phone,
            format: "ntfy",
            secret: None,
            p256dh: None,
            auth: None,
        },
        NewEndpoint {
            user_id: r.user_id,
            channel: Channel::WebPush,
            target: &browser.endpoint,
            format: "standard",
            secret: None,
            p256dh: Some(&browser.p256dh),
            auth: Some(&browser.auth),
        },
    ];
    let mut ids = [0; 3];
    for (i, e) in endpoints.iter().enumerate() {
        ids[i] = s.insert_endpoint(e).await.unwrap().get();
    }
    (r, ids)
}

fn at<'r>(requests: &'r [Request], name: &str) -> Vec<&'r Request> {
    requests
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some(name))
        .collect()
}

#[tokio::test]
async fn a_reminder_reaches_every_channel_it_names_once_however_often_it_is_delivered() {
    if !kit::require::receiver() {
        return;
    }
    for db in kit::backends().await {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let receiver = receiver(&[]);
        let app = app::notify(&db, outbox.path(), true, true).await;
        let (r, _) = reminder(&db, &receiver, "email,webhook,webpush").await;

        let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{b}: {body}"
        );
        assert_eq!(
            outcomes(&body),
            [
                ("email", "sent"),
                ("webhook", "sent"),
                ("webhook", "sent"),
                ("webpush", "sent")
            ],
            "{b}: {body}"
        );
        for _ in 0..2 {
            let (status, ty, body) =
                reply(app.post_structured(REMINDER, &r.event_id(), &r.data()).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.duplicate"),
                "{b}: {body}"
            );
        }

        // Each copy, where it arrived: one mail, one request per endpoint.
        assert_eq!(mails(outbox.path()), 1, "{b}: one e-mail");
        let got = receiver.requests();
        assert_eq!(got.len(), 3, "{b}: one request per endpoint: {got:?}");
        let hook = at(&got, "hook");
        assert_eq!(
            hook[0].signature_valid,
            Some(true),
            "{b}: {:?}",
            hook[0].signature_problem
        );
        assert_eq!(hook[0].json()["data"]["task"]["title"], "Water the plants");
        let phone = at(&got, "phone");
        assert_eq!(
            phone[0].header("title"),
            Some("Reminder: Water the plants"),
            "{b}"
        );
        let push = at(&got, "browser");
        assert_eq!(
            push[0].vapid_valid,
            Some(true),
            "{b}: {:?}",
            push[0].vapid_problem
        );
        let shown: serde_json::Value = serde_json::from_slice(push[0].decrypted.as_ref().unwrap()).unwrap();
        assert_eq!(shown["title"], "Reminder: Water the plants", "{b}: {shown}");
        let signed: Vec<u32> = receiver
            .delivered()
            .into_iter()
            .filter(|(id, _)| id != "(none)")
            .map(|(_, n)| n)
            .collect();
        assert_eq!(signed, [1], "{b}: the signed webhook's delivery id arrived once");

        let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(rows.len(), 4, "{b}");
        assert!(
            rows.iter()
                .all(|d| d.status == DeliveryStatus::Sent && d.attempts == 1),
            "{b}: {rows:?}"
        );
        assert_eq!(
            db.store.reminder_state(r.reminder_id).await.unwrap(),
            Some(ReminderState::Sent)
        );
        // The redeliveries were answered from the reminder's state (`sent`), before any
        // delivery was looked for: duplicates of the event, no delivery counted again.
        let metrics = app.metrics().await;
        for (channel, n) in [("email", 1.0), ("webhook", 2.0), ("webpush", 1.0)] {
            let sent = kit::metric(&metrics, "todo_events_deliveries_total", &[channel, "sent"]);
            assert_eq!(sent, n, "{b}: {channel}");
            let dup = kit::metric(&metrics, "todo_events_deliveries_total", &[channel, "duplicate"]);
            assert_eq!(dup, 0.0, "{b}: {channel}");
        }
        let dup = kit::metric(&metrics, "todo_events_events_total", &[REMINDER, "duplicate"]);
        assert_eq!(dup, 2.0, "{b}: the event twice a duplicate");
    }
}

#[tokio::test]
async fn a_channel_that_fails_neither_holds_back_nor_repeats_the_others() {
    if !kit::require::receiver() {
        return;
    }
    for db in kit::backends().await {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        // The signed webhook is down for one request (503, try again in 6 s), the ntfy
        // server refuses for good (400), the browser unsubscribed (410).
        let receiver = receiver(&["hook:1=503;Retry-After: 6", "phone=400", "browser=410"]);
        let app = app::notify(&db, outbox.path(), true, true).await;
        let (r, [_, _, push]) = reminder(&db, &receiver, "email,webhook,webpush").await;

        // The e-mail went out, the failing webhook does not hold the event up: 2xx at
        // once, the webhook retried on its own schedule (not before its Retry-After).
        let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{b}: {body}"
        );
        let scheduled: Vec<_> = body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["outcome"] == "scheduled")
            .map(|d| d["detail"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(scheduled.len(), 1, "{b}: {body}");
        assert!(
            scheduled[0].contains("webhook endpoint") && scheduled[0].contains("503"),
            "{b}: {scheduled:?}"
        );
        assert_eq!(mails(outbox.path()), 1, "{b}: the e-mail went out meanwhile");
        let state = db.store.reminder_state(r.reminder_id).await.unwrap();
        assert_eq!(
            state,
            Some(ReminderState::Pending),
            "{b}: not done while the webhook is pending"
        );
        let push_id = todo_events_domain::EndpointId::new(push).unwrap();
        assert_eq!(
            db.store.endpoint_active(push_id).await.unwrap(),
            Some(false),
            "{b}: gone"
        );

        // Again at once: the webhook waits for its retry time (6 s, as the receiver asked),
        // so nothing is delivered now and nothing is sent to it before then; 2xx.
        let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.skipped"),
            "{b}: {body}"
        );
        assert!(
            body["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("retried on its own schedule")
                || body.to_string().contains("retried on its own schedule"),
            "{b}: {body}"
        );
        assert_eq!(
            at(&receiver.requests(), "hook").len(),
            1,
            "{b}: Retry-After honoured"
        );

        tokio::time::sleep(std::time::Duration::from_millis(6_100)).await;
        let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{b}: {body}"
        );
        let got = receiver.requests();
        let count = |name| at(&got, name).len();
        assert_eq!(
            (count("hook"), count("phone"), count("browser")),
            (2, 1, 1),
            "{b}: {got:?}"
        );
        assert_eq!(mails(outbox.path()), 1, "{b}: the e-mail is not repeated");
        assert_eq!(
            db.store.reminder_state(r.reminder_id).await.unwrap(),
            Some(ReminderState::Sent)
        );
        let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
        let seen: Vec<_> = rows.iter().map(|d| (d.channel, d.status, d.attempts)).collect();
        assert_eq!(
            seen,
            [
                (Channel::Email, DeliveryStatus::Sent, 1),
                (Channel::Webhook, DeliveryStatus::Sent, 2),
                (Channel::Webhook, DeliveryStatus::Failed, 1),
                (Channel::WebPush, DeliveryStatus::Failed, 1),
            ],
            "{b}"
        );
        let (_, ty, _) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        assert_eq!(ty, "dev.todo.notification.duplicate", "{b}");
        let metrics = app.metrics().await;
        let m = |labels: &[&str]| kit::metric(&metrics, "todo_events_deliveries_total", labels);
        // Scheduled twice: the 503, and the redelivery that found the claim held until its
        // retry time; no retry of the event.
        let ends = (
            m(&["webhook", "scheduled"]),
            m(&["webhook", "retry"]),
            m(&["webpush", "gone"]),
            m(&["webhook", "failed"]),
        );
        assert_eq!(ends, (2.0, 0.0, 1.0, 1.0), "{b}");
    }
}

#[tokio::test]
async fn web_push_without_a_key_waits_and_the_other_channels_go_out() {
    if !kit::require::receiver() {
        return;
    }
    for db in kit::backends().await {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let receiver = receiver(&[]);
        let app = app::notify(&db, outbox.path(), true, false).await;
        let (r, _) = reminder(&db, &receiver, "webpush,email,fax").await;
        let response = app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
        assert_eq!(response.status(), 503, "{b}");
        let detail = response.text().await.unwrap();
        assert!(detail.contains("VAPID_PRIVATE_KEY"), "{b}: {detail}");
        assert_eq!(mails(outbox.path()), 1, "{b}");
        assert!(receiver.requests().is_empty(), "{b}");
        let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(rows.len(), 1, "{b}: the push delivery is not claimed");
        assert_eq!(
            db.store.reminder_state(r.reminder_id).await.unwrap(),
            Some(ReminderState::Sent),
            "{b}: its only claimed delivery is done"
        );
    }
}

/// A webhook slower than its batch's patience holds the event up only that long: the event
/// is answered with the other deliveries made (the e-mail) and the webhook `sending`; its
/// request goes on alone, arrives once, and records its own outcome (the reminder settles).
#[tokio::test]
async fn a_webhook_slower_than_its_batch_goes_on_alone_and_records_itself() {
    if !kit::require::receiver() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let slow = WebhookReceiver::start(
            &[Endpoint {
                name: "slow",
                secret: None,
            }],
            &Options {
                delay: Some(3.0),
                ..Options::default()
            },
        );
        let app = app::notify_with(&db, outbox.path(), true, false, |c| {
            c.patience = std::time::Duration::from_secs(1)
        })
        .await;
        let url = slow.url("slow");
        let r = kit::reminder_with_webhook(&db.store, "Slow hook", "email,webhook", &url, None).await;

        let started = std::time::Instant::now();
        let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
        let answered_in = started.elapsed();
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{b}: {body}"
        );
        assert_eq!(
            outcomes(&body),
            [("email", "sent"), ("webhook", "sending")],
            "{b}: {body}"
        );
        assert!(
            answered_in < std::time::Duration::from_millis(2500),
            "{b}: answered after {answered_in:?}, not after the 1 s patience"
        );
        assert_eq!(mails(outbox.path()), 1, "{b}");
        assert_eq!(
            db.store.reminder_state(r.reminder_id).await.unwrap(),
            Some(ReminderState::Pending),
            "{b}: not done while the webhook is on its way"
        );

        // The request ends (3 s) and records itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let webhook_sent = || async {
            let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
            rows.iter()
                .any(|d| d.channel == Channel::Webhook && d.status == DeliveryStatus::Sent)
        };
        while !webhook_sent().await {
            assert!(
                std::time::Instant::now() < deadline,
                "{b}: the webhook's outcome was never recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(slow.received(), 1, "{b}: one copy at the receiver");
        assert_eq!(
            db.store.reminder_state(r.reminder_id).await.unwrap(),
            Some(ReminderState::Sent),
            "{b}: settled by the webhook's own record"
        );
        checked += 1;
    }
    assert!(checked >= 1, "at least SQLite");
}

/// The daily agenda on every channel of its user's preferences (docs/PREFERENCES.md, "The
/// daily agenda"): the e-mail, each webhook in its shape (the standard one signed, listing the
/// tasks), the push; once however often its event comes.
#[tokio::test]
async fn a_daily_agenda_reaches_every_channel_of_its_user_once() {
    if !kit::require::receiver() {
        return;
    }
    for db in kit::backends().await {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let receiver = receiver(&[]);
        let app = app::notify(&db, outbox.path(), true, true).await;
        // The reminder's user and endpoints; its task is due in 15 minutes (today, in most
        // of the day's seconds: the agenda is of the date those 15 minutes fall on).
        let (r, _) = reminder(&db, &receiver, "email").await;
        let now = Utc::now().trunc_subsecs(0);
        let zone = todo_events_domain::recurrence::Zone::parse("Europe/Berlin").unwrap();
        let at = now - Duration::seconds(2);
        let date = zone.wall_time(now + Duration::minutes(15)).date();
        let local = zone.wall_time(at).format("%H:%M:%S");
        let sql = format!(
            "INSERT INTO user_preferences (user_id, agenda_at, channels) VALUES ({}, '{local}', 'email,webhook,webpush')",
            r.user_id
        );
        db.execute(&sql, None).await.unwrap();
        let data =
            serde_json::json!({"user_id": r.user_id, "date": date.to_string(), "agenda_at": at.to_rfc3339()});
        let id = format!("agenda/{}/{date}", r.user_id);
        if zone.wall_time(at).date() != date {
            return; // the last 15 minutes of a Berlin day: the task is tomorrow's
        }
        let (status, ty, body) = reply(app.post_binary("dev.todo.agenda.due", &id, &data).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{b}: {body}"
        );
        assert_eq!(
            outcomes(&body),
            [
                ("email", "sent"),
                ("webhook", "sent"),
                ("webhook", "sent"),
                ("webpush", "sent")
            ],
            "{b}: {body}"
        );
        for _ in 0..2 {
            let (status, ty, body) =
                reply(app.post_structured("dev.todo.agenda.due", &id, &data).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.duplicate"),
                "{b}: {body}"
            );
        }
        assert_eq!(mails(outbox.path()), 1, "{b}: one e-mail");
        let got = receiver.requests();
        assert_eq!(got.len(), 3, "{b}: one request per endpoint: {got:?}");
        let hook = at_endpoint(&got, "hook");
        assert_eq!(
            hook[0].signature_valid,
            Some(true),
            "{b}: {:?}",
            hook[0].signature_problem
        );
        let standard = hook[0].json();
        assert_eq!(standard["type"], "agenda.due", "{b}");
        assert_eq!(
            standard["data"]["tasks"][0]["title"], "Water the plants",
            "{b}: {standard}"
        );
        assert_eq!(standard["data"]["count"], 1, "{b}");
        let phone = at_endpoint(&got, "phone");
        assert!(
            phone[0].header("title").unwrap().starts_with("Your agenda for "),
            "{b}"
        );
        let push = at_endpoint(&got, "browser");
        assert_eq!(
            push[0].vapid_valid,
            Some(true),
            "{b}: {:?}",
            push[0].vapid_problem
        );
        let shown: serde_json::Value = serde_json::from_slice(push[0].decrypted.as_ref().unwrap()).unwrap();
        assert!(
            shown["body"].as_str().unwrap().ends_with("1 task due or overdue"),
            "{b}: {shown}"
        );
        let rows = db
            .texts("SELECT status FROM agenda_deliveries ORDER BY channel, endpoint_id")
            .await;
        assert_eq!(rows, ["sent"; 4], "{b}");
    }
}

fn at_endpoint<'r>(requests: &'r [Request], name: &str) -> Vec<&'r Request> {
    at(requests, name)
}
