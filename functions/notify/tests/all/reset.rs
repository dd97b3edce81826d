//! A client that hangs up mid-batch cancels nothing: notify over real HTTP, a raw TCP client
//! that sends one event and then resets its connection (SO_LINGER 0: the close sends a TCP
//! RST, as a crashed or impatient sender's kernel does) while the delivery is being sent,
//! with the peer (the test SMTP server, the webhook receiver) holding its answer. Afterwards
//! each delivery is `sent` once and recorded (rows), one copy arrived (counted at the SMTP
//! server and at the receiver), and a redelivery of the same event is answered `duplicate`
//! with nothing more sent. On a fresh SQLite file and a fresh PostgreSQL database.
//! Skipped, with a message, where the test virtualenv cannot be made (`require`); under
//! `CI=true` that fails instead.

use chrono::{Duration, SubsecRound, Utc};
use notify::config::SmtpSettings;
use notify::{Notify, NotifyConfig};
use std::time::Instant;
use todo_events_store::{DeliveryStatus, ReminderState};
use todo_events_testkit::smtp::{Options as SmtpOptions, SmtpServer};
use todo_events_testkit::webhook::{Endpoint, Options as HookOptions, WebhookReceiver};
use todo_events_testkit::{self as kit, reply, ReminderFixture, TestApp, TestDb};
use tokio::io::AsyncWriteExt;

const REMINDER: &str = "dev.todo.reminder.due";
/// The Standard Webhooks specification's example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long the peer holds its answer: long enough that the reset lands mid-send.
const HOLD_SECONDS: f64 = 1.5;

/// Sends the event on a raw connection, waits until `mid_send` says the delivery is being
/// sent, then resets the connection (no answer read).
async fn post_then_reset(app: &TestApp, r: &ReminderFixture, mid_send: impl AsyncFn() -> bool) {
    let address = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connected");
    let body = r.data().to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {address}\r\nce-specversion: 1.0\r\nce-id: {}\r\n\
         ce-source: /todo/scheduler-cron\r\nce-type: {REMINDER}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        r.event_id(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let started = Instant::now();
    while !mid_send().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the delivery never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stream.set_zero_linger().expect("SO_LINGER 0");
    drop(stream); // RST
}

/// Whether a delivery of `r` is being sent now (its row says `sending`).
async fn sending(db: &TestDb, r: &ReminderFixture) -> bool {
    let rows = db.store.deliveries_of(r.reminder_id).await.unwrap();
    rows.iter().any(|d| d.status == DeliveryStatus::Sending)
}

/// Waits (up to 10 s) until every delivery of `r` is `sent`, then checks there are `rows`
/// of them, each sent with one attempt, and the reminder `sent`.
async fn assert_sent_once(db: &TestDb, r: &ReminderFixture, rows: usize) {
    let b = db.backend;
    let started = Instant::now();
    loop {
        let got = db.store.deliveries_of(r.reminder_id).await.unwrap();
        if got.len() == rows && got.iter().all(|d| d.status == DeliveryStatus::Sent) {
            assert!(got.iter().all(|d| d.attempts == 1), "{b}: {got:?}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{b}: the deliveries were not all recorded sent: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        db.store.reminder_state(r.reminder_id).await.unwrap(),
        Some(ReminderState::Sent),
        "{b}"
    );
}

/// A redelivery of the same event is `duplicate`.
async fn assert_redelivery_duplicate(app: &TestApp, db: &TestDb, r: &ReminderFixture) {
    let (status, ty, body) = reply(app.post_binary(REMINDER, &r.event_id(), &r.data()).await).await;
    assert_eq!(
        (status, ty.as_str()),
        (200, "dev.todo.notification.duplicate"),
        "{}: {body}",
        db.backend
    );
}

#[tokio::test]
async fn an_email_whose_request_is_reset_mid_send_goes_out_once_and_is_recorded() {
    if !kit::require::smtp() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        let mut smtp = SmtpServer::start(&SmtpOptions::default());
        // The server stores each message, then holds its `250`: the reset lands while the
        // mail is at the server and notify waits for its answer.
        smtp.command(&format!("accept-delay {HOLD_SECONDS}"));
        let mut settings = SmtpSettings::new(&format!("smtp://127.0.0.1:{}?tls=none", smtp.port)).unwrap();
        settings.timeout = std::time::Duration::from_secs(10);
        let config = NotifyConfig::smtp(settings);
        let app = kit::spawn(Notify::new(db.store.clone(), config).unwrap()).await;
        let due = Utc::now().trunc_subsecs(0) - Duration::seconds(1);
        let r = kit::reminder(&db.store, "Pay the rent", due).await;

        post_then_reset(&app, &r, async || smtp.accepted() == 1 && sending(&db, &r).await).await;

        assert_sent_once(&db, &r, 1).await;
        assert_eq!(smtp.accepted(), 1, "{b}: one copy at the SMTP server");
        smtp.command("accept-delay 0");
        assert_redelivery_duplicate(&app, &db, &r).await;
        assert_eq!(smtp.accepted(), 1, "{b}: nothing more sent");
        assert_sent_once(&db, &r, 1).await;
        checked += 1;
    }
    assert_eq!(checked, 2, "both backends checked");
}

#[tokio::test]
async fn a_webhook_whose_request_is_reset_mid_send_goes_out_once_and_is_recorded() {
    if !kit::require::receiver() {
        return;
    }
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        // The receiver holds each answer: the reset lands while notify waits for it.
        let receiver = WebhookReceiver::start(
            &[Endpoint {
                name: "hook",
                secret: Some(SECRET),
            }],
            &HookOptions {
                delay: Some(HOLD_SECONDS),
                ..HookOptions::default()
            },
        );
        let outbox = tempfile::tempdir().unwrap();
        let mut config = NotifyConfig::local(outbox.path().to_owned());
        config.channels.allow_private = true;
        config.channels.timeout = std::time::Duration::from_secs(10);
        let app = kit::spawn(Notify::new(db.store.clone(), config).unwrap()).await;
        let hook = receiver.url("hook");
        let r =
            kit::reminder_with_webhook(&db.store, "Water the plants", "webhook", &hook, Some(SECRET)).await;

        post_then_reset(&app, &r, async || sending(&db, &r).await).await;

        assert_sent_once(&db, &r, 1).await;
        assert_eq!(receiver.received(), 1, "{b}: one request at the receiver");
        let copies: Vec<u32> = receiver.delivered().into_values().collect();
        assert_eq!(copies, [1], "{b}: the delivery's webhook-id arrived once");
        assert_redelivery_duplicate(&app, &db, &r).await;
        assert_eq!(receiver.received(), 1, "{b}: nothing more sent");
        assert_sent_once(&db, &r, 1).await;
        checked += 1;
    }
    assert_eq!(checked, 2, "both backends checked");
}
