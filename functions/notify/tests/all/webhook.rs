//! The webhook channel against a real receiver on loopback (`testkit::webhook`, Python's
//! `http.server`), which checks every Standard Webhooks signature itself with Python's own
//! HMAC: each format's shape and signature, what each answer means (2xx; 408, 429 and 5xx
//! with `Retry-After`; other 4xx; redirects, never followed; a receiver too slow or not
//! there), and the target guard. Every request is counted where it arrives.
//! Skipped, with a message, where the test virtualenv cannot be made (`require::receiver`).

use std::time::Duration;
use todo_events_testkit::webhook::{Endpoint, Options, WebhookReceiver};

use notify::channels::guard::{AllowedPorts, Guard};
use notify::channels::webhook::{Format, WebhookEndpoint, Webhooks};
use notify::channels::SendError;

use crate::channels::notice;
use notice::{notice, now};

/// The Standard Webhooks specification's example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OPEN: Guard = Guard::open();

fn hooks(timeout: Duration) -> Webhooks {
    Webhooks::new(OPEN, timeout)
}

#[tokio::test]
async fn every_format_arrives_in_its_shape_signed_so_that_the_receiver_can_check_it() {
    if !todo_events_testkit::require::receiver() {
        return;
    }
    let formats = [
        ("standard", Format::Standard),
        ("slack", Format::Slack),
        ("discord", Format::Discord),
        ("ntfy", Format::Ntfy),
    ];
    let endpoints: Vec<Endpoint<'_>> = formats
        .iter()
        .map(|(name, _)| Endpoint {
            name,
            secret: Some(SECRET),
        })
        .collect();
    let receiver = WebhookReceiver::start(&endpoints, &Options::default());
    let hooks = hooks(Duration::from_secs(5));
    for (i, (name, format)) in formats.iter().enumerate() {
        let endpoint =
            WebhookEndpoint::new(i as i64 + 1, &receiver.url(name), *format, Some(SECRET), &OPEN).unwrap();
        hooks.send(&endpoint, &notice(), now()).await.unwrap();
    }
    let got = receiver.requests();
    assert_eq!(got.len(), formats.len(), "one request per endpoint");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.signature_valid,
            Some(true),
            "{:?}: {:?}",
            r.endpoint,
            r.signature_problem
        );
        assert_eq!(
            r.header("webhook-id"),
            Some(format!("msg_reminder-11-{}-endpoint-{}", 1_796_028_300_000_000i64, i + 1).as_str())
        );
    }
    let by = |name: &str| got.iter().find(|r| r.endpoint.as_deref() == Some(name)).unwrap();
    let standard = by("standard");
    assert_eq!(standard.header("content-type"), Some("application/json"));
    let body = standard.json();
    assert_eq!(body["type"], "reminder.due");
    assert_eq!(body["data"]["task"]["title"], "Water the plants");
    assert_eq!(body["data"]["task"]["due_local"], "2026-11-30T10:00:00+01:00");
    assert_eq!(
        by("slack").json()["text"]
            .as_str()
            .unwrap()
            .matches("<http")
            .count(),
        1
    );
    assert!(by("discord").json()["content"]
        .as_str()
        .unwrap()
        .ends_with("http://localhost:3000/tasks/7"));
    let ntfy = by("ntfy");
    assert_eq!(ntfy.header("title"), Some("Reminder: Water the plants"));
    assert_eq!(ntfy.header("click"), Some("http://localhost:3000/tasks/7"));
    assert!(String::from_utf8_lossy(&ntfy.body).starts_with("Reminder: Water the plants (due Monday"));

    // Sent again (a retry), the delivery keeps its id: the receiver sees one id twice.
    let again = WebhookEndpoint::new(
        1,
        &receiver.url("standard"),
        Format::Standard,
        Some(SECRET),
        &OPEN,
    )
    .unwrap();
    hooks.send(&again, &notice(), now()).await.unwrap();
    let delivered = receiver.delivered();
    assert_eq!(
        delivered.get(&format!(
            "msg_reminder-11-{}-endpoint-1",
            1_796_028_300_000_000i64
        )),
        Some(&2)
    );
    // A receiver with another secret finds the signature wrong: the check can fail.
    let other = WebhookReceiver::start(
        &[Endpoint {
            name: "a",
            secret: Some("whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ="),
        }],
        &Options::default(),
    );
    let endpoint = WebhookEndpoint::new(1, &other.url("a"), Format::Standard, Some(SECRET), &OPEN).unwrap();
    hooks.send(&endpoint, &notice(), now()).await.unwrap();
    assert_eq!(other.requests()[0].signature_valid, Some(false));
}

#[tokio::test]
async fn the_answer_decides_between_another_try_and_failing_for_good() {
    if !todo_events_testkit::require::receiver() {
        return;
    }
    let mut receiver = WebhookReceiver::start(
        &[Endpoint {
            name: "a",
            secret: Some(SECRET),
        }],
        &Options::default(),
    );
    let hooks = hooks(Duration::from_secs(5));
    let endpoint =
        WebhookEndpoint::new(1, &receiver.url("a"), Format::Standard, Some(SECRET), &OPEN).unwrap();
    let cases: [(&str, Result<Option<u64>, &str>); 8] = [
        ("503;Retry-After: 7", Ok(Some(7))),
        ("500", Ok(None)),
        ("429;Retry-After: 120", Ok(Some(120))),
        ("408", Ok(None)),
        ("410", Err("410 Gone")),
        ("400", Err("400 Bad Request")),
        ("404", Err("404 Not Found")),
        (
            "301;Location: http://127.0.0.1:9/elsewhere",
            Err("a redirect (not followed)"),
        ),
    ];
    for (reply, expected) in cases {
        receiver.command(&format!("reply a:1={reply}"));
        let got = hooks.send(&endpoint, &notice(), now()).await.unwrap_err();
        match (expected, &got) {
            (Ok(wait), SendError::Transient { retry_after, .. }) => {
                assert_eq!(*retry_after, wait.map(Duration::from_secs), "{reply}: {got:?}")
            }
            (Err(needle), SendError::Permanent(reason)) => {
                assert!(reason.contains(needle), "{reply}: {reason}")
            }
            _ => panic!("{reply}: expected {expected:?}, got {got:?}"),
        }
    }
    hooks
        .send(&endpoint, &notice(), now())
        .await
        .expect("204 is delivered");
    // Each send was one request: the redirect was not followed, nothing was retried inside.
    assert_eq!(receiver.requests().len(), cases.len() + 1);
}

#[tokio::test]
async fn a_receiver_too_slow_or_not_there_is_tried_again_later() {
    if !todo_events_testkit::require::receiver() {
        return;
    }
    let receiver = WebhookReceiver::start(
        &[Endpoint {
            name: "slow",
            secret: None,
        }],
        &Options {
            delay: Some(3.0),
            ..Options::default()
        },
    );
    let hooks = hooks(Duration::from_millis(500));
    let slow = WebhookEndpoint::new(1, &receiver.url("slow"), Format::Ntfy, None, &OPEN).unwrap();
    match hooks.send(&slow, &notice(), now()).await {
        Err(SendError::Transient { reason, .. }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("a slow receiver must be transient: {other:?}"),
    }
    // Nobody listens on port 9 of loopback (discard is not served here).
    let gone = WebhookEndpoint::new(2, "http://127.0.0.1:9/hooks/x", Format::Standard, None, &OPEN).unwrap();
    match hooks.send(&gone, &notice(), now()).await {
        Err(SendError::Transient { reason, .. }) => {
            assert!(reason.contains("could not be reached"), "{reason}")
        }
        other => panic!("a refused connection must be transient: {other:?}"),
    }
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed_even_behind_a_name() {
    if !todo_events_testkit::require::receiver() {
        return;
    }
    let receiver = WebhookReceiver::start(
        &[Endpoint {
            name: "a",
            secret: None,
        }],
        &Options::default(),
    );
    let strict = Guard::strict();
    let err = WebhookEndpoint::new(1, &receiver.url("a"), Format::Standard, None, &strict).unwrap_err();
    assert!(err.0.contains("only https://"), "{}", err.0);
    // A name is checked where it is resolved: localhost is loopback (the receiver's port is
    // listed, or the port would be refused first, as it is by default).
    let named = format!("https://localhost:{}/hooks/a", receiver.port);
    let err = WebhookEndpoint::new(1, &named, Format::Standard, None, &strict).unwrap_err();
    assert!(err.0.contains("WEBHOOK_ALLOWED_PORTS"), "{}", err.0);
    let strict = Guard {
        ports: AllowedPorts(Some(vec![443, receiver.port])),
        ..Guard::strict()
    };
    let endpoint = WebhookEndpoint::new(1, &named, Format::Standard, None, &strict).unwrap();
    let hooks = Webhooks::new(strict, Duration::from_secs(5));
    match hooks.send(&endpoint, &notice(), now()).await {
        Err(SendError::Permanent(reason)) => {
            assert!(
                reason.contains("not allowed") && reason.contains("loopback"),
                "{reason}"
            )
        }
        other => panic!("a loopback target must fail for good: {other:?}"),
    }
    assert!(receiver.requests().is_empty(), "nothing reached the receiver");
}
