//! The Web Push channel against a push-service stand-in on loopback (`testkit::webhook`, which
//! is also the subscribing browser): it makes each subscription's keys itself, checks every
//! VAPID token with Python's `cryptography` and decrypts every message with `http_ece`,
//! Mozilla's RFC 8291 implementation; nothing of notify's code is shared with it. Also: what
//! the push service's answers mean (`201`; `404`/`410` gone; `429` with `Retry-After`; `413`)
//! and that a subscription's target passes the guard.
//! Skipped, with a message, where the test virtualenv cannot be made (`require::receiver`).

use std::time::Duration;
use todo_events_testkit::webhook::{Options, WebhookReceiver};

use notify::channels::guard::Guard;
use notify::channels::webpush::{Subscription, Vapid, WebPush};
use notify::channels::SendError;

use crate::channels::notice;
use notice::{notice, now};

const OPEN: Guard = Guard::open();

fn service(names: &[&str]) -> WebhookReceiver {
    WebhookReceiver::start(
        &[],
        &Options {
            push: names.iter().map(|n| n.to_string()).collect(),
            ..Options::default()
        },
    )
}

fn pusher(timeout: Duration) -> WebPush {
    let (private, _) = Vapid::generate();
    let vapid = Vapid::new(&private, "mailto:ops@todo-events.test").unwrap();
    WebPush::new(OPEN, timeout, vapid, Duration::from_secs(3600))
}

fn subscription(receiver: &WebhookReceiver, name: &str, id: i64) -> Subscription {
    let s = receiver.subscription(name);
    Subscription::new(id, &s.endpoint, &s.p256dh, &s.auth, &OPEN).unwrap()
}

#[tokio::test]
async fn the_browser_decrypts_what_was_sent_and_the_push_service_accepts_the_vapid_token() {
    if !todo_events_testkit::require::receiver() {
        return;
    }
    let receiver = service(&["phone", "laptop"]);
    let push = pusher(Duration::from_secs(5));
    for (id, name) in [(1, "phone"), (2, "laptop")] {
        push.send(&subscription(&receiver, name, id), &notice(), now())
            .await
            .unwrap();
    }
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "one message per subscription");
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.vapid_valid, Some(true), "{:?}", r.vapid_problem);
        assert_eq!(r.push_problem, None);
        assert_eq!(r.header("urgency"), Some("high"));
        assert_eq!(r.header("ttl"), Some("3600"));
        let plain = r.decrypted.as_ref().expect("the message decrypts");
        let shown: serde_json::Value = serde_json::from_slice(plain).unwrap();
        assert_eq!(shown["title"], "Reminder: Water the plants");
        assert_eq!(shown["url"], "http://localhost:3000/tasks/7");
        assert!(shown["body"]
            .as_str()
            .unwrap()
            .contains("due Monday, November 30, 2026 at 10:00\u{202f}AM CET"));
    }
    // Each message has its own key and salt: the same notice twice is two different bodies.
    assert_ne!(got[0].body, got[1].body);

    // Encrypted for another browser's keys, the message does not decrypt: the check can fail.
    let other = service(&["a", "b"]);
    let (a, b) = (other.subscription("a"), other.subscription("b"));
    let crossed = Subscription::new(3, &a.endpoint, &b.p256dh, &b.auth, &OPEN).unwrap();
    push.send(&crossed, &notice(), now()).await.unwrap();
    let r = &other.requests()[0];
    assert!(r.decrypted.is_none(), "{:?}", r.push_problem);
}

#[tokio::test]
async fn a_gone_subscription_is_said_so_and_a_busy_service_is_tried_again_later() {
    if !todo_events_testkit::require::receiver() {
        return;
    }
    let mut receiver = service(&["phone"]);
    let push = pusher(Duration::from_secs(5));
    let phone = subscription(&receiver, "phone", 1);
    let cases: [(&str, &str); 5] = [
        ("410", "gone"),
        ("404", "gone"),
        ("429;Retry-After: 30", "again in 30 s"),
        ("503", "again"),
        ("413", "for good"),
    ];
    for (reply, expected) in cases {
        receiver.command(&format!("reply phone:1={reply}"));
        let got = push.send(&phone, &notice(), now()).await.unwrap_err();
        let ok = match (&got, expected) {
            (SendError::Gone(_), "gone") => true,
            (SendError::Transient { retry_after, .. }, "again in 30 s") => {
                *retry_after == Some(Duration::from_secs(30))
            }
            (SendError::Transient { .. }, "again") => true,
            (SendError::Permanent(_), "for good") => true,
            _ => false,
        };
        assert!(ok, "{reply}: expected {expected}, got {got:?}");
    }
    push.send(&phone, &notice(), now())
        .await
        .expect("204 is delivered");
    assert_eq!(receiver.requests().len(), cases.len() + 1);
}

#[tokio::test]
async fn a_push_endpoint_must_be_https_and_public() {
    if !todo_events_testkit::require::receiver() {
        return;
    }
    let receiver = service(&["phone"]);
    let s = receiver.subscription("phone");
    let strict = Guard::strict();
    let err = Subscription::new(1, &s.endpoint, &s.p256dh, &s.auth, &strict).unwrap_err();
    assert!(err.0.contains("only https://"), "{}", err.0);
    assert!(!err.0.contains("/push/phone"), "the path is not shown: {}", err.0);
}
