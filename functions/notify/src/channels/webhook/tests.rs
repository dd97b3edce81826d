use super::*;
use todo_events_domain::{ReminderId, TaskId, UserId};

fn notice(title: &str) -> Notice<'_> {
    Notice {
        reminder_id: ReminderId::new(11).unwrap(),
        task_id: TaskId::new(7).unwrap(),
        user_id: UserId::new(3).unwrap(),
        remind_at: "2026-11-30T08:45:00Z".parse().unwrap(),
        task_title: title,
        task_due_at: Some("2026-11-30T09:00:00Z".parse().unwrap()),
        timezone: "Europe/Berlin",
        task_url: "http://localhost:3000/tasks/7".into(),
        language: crate::i18n::tests::english(),
    }
}

#[test]
fn each_format_has_its_receivers_shape() {
    let n = notice("Water <the> plants & co");
    let standard: serde_json::Value = serde_json::from_slice(&shape(Format::Standard, &n).body).unwrap();
    assert_eq!(standard["type"], "reminder.due");
    assert_eq!(standard["data"]["reminder_id"], 11);
    assert_eq!(standard["data"]["task"]["due_local"], "2026-11-30T10:00:00+01:00");
    assert_eq!(standard["data"]["task"]["timezone"], "Europe/Berlin");
    assert_eq!(standard["data"]["task"]["url"], "http://localhost:3000/tasks/7");
    let slack: serde_json::Value = serde_json::from_slice(&shape(Format::Slack, &n).body).unwrap();
    assert_eq!(
        slack["text"],
        "Reminder: Water &lt;the&gt; plants &amp; co (due Monday, November 30, 2026 at 10:00\u{202f}AM CET) \
         <http://localhost:3000/tasks/7|Open the task>"
    );
    let discord: serde_json::Value = serde_json::from_slice(&shape(Format::Discord, &n).body).unwrap();
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    assert!(discord["content"]
        .as_str()
        .unwrap()
        .starts_with("Reminder: Water <the> plants"));
    let ntfy = shape(Format::Ntfy, &notice("Gießen\r\nX-Injected: 1"));
    assert_eq!(ntfy.content_type, "text/plain; charset=utf-8");
    let title = &ntfy.headers.iter().find(|(k, _)| *k == "title").unwrap().1;
    assert!(
        title.starts_with("=?UTF-8?B?") && !title.contains('\n'),
        "{title}"
    );
    assert_eq!(
        String::from_utf8(ntfy.body).unwrap(),
        "Reminder: Gießen X-Injected: 1 (due Monday, November 30, 2026 at 10:00\u{202f}AM CET)"
    );
}

#[test]
fn secrets_and_url_paths_never_show() {
    let guard = Guard::strict();
    let e = WebhookEndpoint::new(
        5,
        "https://hooks.slack.com/services/T0/B0/pathsecret",
        Format::Slack,
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        &guard,
    )
    .unwrap();
    let debug = format!("{e:?}");
    assert!(
        !debug.contains("pathsecret") && !debug.contains("MfKQ9r8"),
        "{debug}"
    );
    assert!(e.signs());
    for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!"] {
        let err = WebhookEndpoint::new(5, "https://example.com/h", Format::Standard, Some(bad), &guard)
            .unwrap_err()
            .0;
        assert!(err.contains("whsec_") && !err.contains(bad), "{err}");
    }
}

#[test]
fn the_specifications_test_vector_signs_as_it_says() {
    // From the Standard Webhooks specification: what every receiver's library checks.
    let signer = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(
        signer
            .sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
            .unwrap(),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn the_texts_are_in_the_user_s_language() {
    for (tag, sentence, heading) in [
        (
            "de",
            "Erinnerung: Gießen (fällig Montag, 30. November 2026 um 10:00 CET)",
            "Erinnerung: Gießen",
        ),
        (
            "ja",
            "リマインダー: Gießen（期限: 2026年11月30日月曜日 10:00 CET）",
            "リマインダー: Gießen",
        ),
    ] {
        let n = Notice {
            language: crate::i18n::tests::language(tag),
            ..notice("Gießen")
        };
        assert_eq!(n.sentence(), sentence, "{tag}");
        assert_eq!(n.heading(), heading, "{tag}");
        let ntfy = shape(Format::Ntfy, &n);
        assert_eq!(String::from_utf8(ntfy.body).unwrap(), n.sentence(), "{tag}");
    }
}
