use super::*;

fn mail<'a>(title: &'a str, email: &'a str) -> ReminderMail<'a> {
    ReminderMail {
        to_email: email,
        to_name: "Ada",
        timezone: "Europe/Berlin",
        task_id: todo_events_domain::TaskId::new(7).unwrap(),
        task_title: title,
        task_description: "",
        due_at: Some("2026-11-27T17:00:00Z".parse().unwrap()),
        remind_at: "2026-11-27T16:45:00Z".parse().unwrap(),
        // British formats: the expectations below were written for them.
        locale: "en-GB",
        reminder_id: todo_events_domain::ReminderId::new(3).unwrap(),
    }
}

fn composer() -> Composer {
    Composer::from_config(&NotifyConfig::local("outbox".into())).unwrap()
}

#[test]
fn message_shows_local_due_time_and_cannot_gain_headers() {
    let msg = composer()
        .build(&mail("Pay rent\r\nBcc: evil@example.com", "ada@example.test"))
        .unwrap();
    let text = String::from_utf8(msg.formatted()).unwrap();
    assert!(
        text.contains("Due: Friday, 27 November 2026 at 18:00 CET"),
        "{text}"
    );
    assert!(!text.contains("\nBcc:"), "{text}");
    assert!(text.contains("Message-ID: <reminder-3-"), "{text}");
    assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(
        text.contains("Subject: Reminder: Pay rent Bcc: evil@example.com (due today at 18:00)"),
        "{text}"
    );
}

#[test]
fn bad_recipient_is_permanent() {
    let err = composer().build(&mail("x", "not an address")).unwrap_err();
    assert!(matches!(err, MailError::Permanent(_)));
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let (subject, text, html) = composer()
        .render(&mail("<script>alert('x')</script> & more", "a@b.test"))
        .unwrap();
    assert_eq!(
        subject,
        "Reminder: <script>alert('x')</script> & more (due today at 18:00)"
    );
    assert!(
        text.contains("    <script>alert('x')</script> & more\n"),
        "{text}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"),
        "{html}"
    );
    assert!(html.contains(r#"href="http://localhost:3000/tasks/7""#), "{html}");
}

/// A due time, a recipient's zone and the subject they make for a reminder at 20:00 UTC on
/// 27 November 2026.
const DUE_SUBJECTS: &[(Option<&str>, &str, &str)] = &[
    // 23:30 UTC on the 27th is already the 28th in Tokyo, but the 27th in New York.
    (
        Some("2026-11-27T23:30:00Z"),
        "Asia/Tokyo",
        "Reminder: Call (due today at 08:30)",
    ),
    (
        Some("2026-11-27T23:30:00Z"),
        "America/New_York",
        "Reminder: Call (due today at 18:30)",
    ),
    (
        Some("2026-11-28T08:00:00Z"),
        "Europe/Berlin",
        "Reminder: Call (due tomorrow at 09:00)",
    ),
    (
        Some("2026-12-01T08:00:00Z"),
        "Europe/Berlin",
        "Reminder: Call (due on Tuesday at 09:00)",
    ),
    (
        Some("2026-12-24T08:00:00Z"),
        "Europe/Berlin",
        "Reminder: Call (due on Thursday 24 December at 09:00)",
    ),
    (
        Some("2027-01-04T08:00:00Z"),
        "Europe/Berlin",
        "Reminder: Call (due on Monday, 4 January 2027 at 09:00)",
    ),
    (None, "Europe/Berlin", "Reminder: Call"),
];

#[test]
fn times_are_local_and_relative_to_the_reminder() {
    let c = composer();
    let mut m = mail("Call", "a@b.test");
    m.remind_at = "2026-11-27T20:00:00Z".parse().unwrap();
    for &(due_at, timezone, subject) in DUE_SUBJECTS {
        let mut row = m.clone();
        row.due_at = due_at.map(|t| t.parse().unwrap());
        row.timezone = timezone;
        assert_eq!(c.render(&row).unwrap().0, subject, "{due_at:?} in {timezone}");
    }
    // Summer time is summer time.
    m.remind_at = "2026-07-01T08:00:00Z".parse().unwrap();
    m.due_at = Some("2026-07-01T10:00:00Z".parse().unwrap());
    let (_, text, _) = c.render(&m).unwrap();
    assert!(
        text.contains("Due: Wednesday, 1 July 2026 at 12:00 CEST (today at 12:00)"),
        "{text}"
    );
}

#[test]
fn unknown_time_zones_fall_back_to_utc() {
    let mut m = mail("Call", "a@b.test");
    m.timezone = "Mars/Olympus_Mons";
    let msg = composer().build(&m).unwrap();
    let text = String::from_utf8(msg.formatted()).unwrap();
    assert!(text.contains("17:00 UTC"), "{text}");
}

#[test]
fn long_and_control_character_titles_make_a_sane_subject() {
    let long = "x".repeat(500);
    let (subject, _, _) = composer().render(&mail(&long, "a@b.test")).unwrap();
    assert_eq!(subject.chars().count(), MAX_SUBJECT_CHARS);
    assert!(subject.ends_with('…'));
    assert_eq!(single_line(" a\r\n\tb\u{2028}c\u{85}d  "), "a b c d");
    assert_eq!(clean_text("a\r\nb\u{7}\rc\u{2029}"), "a\nb\nc");
}

#[test]
fn templates_can_be_replaced_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SUBJECT), "{{ task.title }} — {{ due.time }}").unwrap();
    let mut cfg = NotifyConfig::local("outbox".into());
    cfg.template_dir = Some(dir.path().to_owned());
    // The subject template uses `due` unconditionally: reminders without a due time
    // would fail, so start-up refuses it.
    let err = Composer::from_config(&cfg).err().expect("refused");
    assert!(err.contains(SUBJECT), "{err}");

    std::fs::write(
        dir.path().join(SUBJECT),
        "{{ task.title }}{% if due %} — {{ due.time }}{% endif %}",
    )
    .unwrap();
    std::fs::write(dir.path().join(HTML), "<p>{{ task.title }}</p>").unwrap();
    let (subject, text, html) = Composer::from_config(&cfg)
        .unwrap()
        .render(&mail("Tea & <cake>", "a@b.test"))
        .unwrap();
    assert_eq!(subject, "Tea & <cake> — 18:00");
    assert_eq!(html, "<p>Tea &amp; &lt;cake&gt;</p>");
    assert!(
        text.contains("Open the task: http://localhost:3000/tasks/7"),
        "{text}"
    );

    std::fs::write(dir.path().join(TEXT), "{{ task.titel }}").unwrap();
    let err = Composer::from_config(&cfg).err().expect("refused");
    assert!(err.contains(TEXT), "{err}");
    std::fs::write(dir.path().join(TEXT), "{% if %}").unwrap();
    let err = Composer::from_config(&cfg).err().expect("refused");
    assert!(err.contains(TEXT), "{err}");
}

#[test]
fn each_language_writes_the_subject_and_its_times_its_own_way() {
    let c = composer();
    let mut m = mail("Steuererklärung", "a@b.test");
    m.remind_at = "2026-11-27T20:00:00Z".parse().unwrap();
    m.due_at = Some("2026-12-24T08:00:00Z".parse().unwrap());
    for (locale, subject) in [
        (
            "de-DE",
            "Erinnerung: Steuererklärung (fällig am Donnerstag, 24. Dezember um 09:00)",
        ),
        (
            "fr",
            "Rappel : Steuererklärung (échéance le jeudi 24 décembre à 09:00)",
        ),
        (
            "es-MX",
            "Recordatorio: Steuererklärung (vence el jueves, 24 de diciembre a las 09:00)",
        ),
        (
            "ja-JP",
            "リマインダー: Steuererklärung（期限: 12月24日木曜日 9:00）",
        ),
        // American formats; the narrow no-break space before AM is one space in a subject.
        (
            "en",
            "Reminder: Steuererklärung (due on Thursday, December 24 at 9:00 AM)",
        ),
        (
            "xx-unknown",
            "Reminder: Steuererklärung (due on Thursday, December 24 at 9:00 AM)",
        ),
    ] {
        m.locale = locale;
        let (got, text, html) = c.render(&m).unwrap();
        assert_eq!(got, subject, "{locale}");
        assert!(html.contains("<html lang=\""), "{locale}");
        assert!(
            !text.contains("this is your reminder") || locale.starts_with("en") || locale == "xx-unknown",
            "{locale}: {text}"
        );
    }
    m.locale = "de-DE";
    let (_, text, html) = c.render(&m).unwrap();
    assert!(
        text.contains("Fällig: Donnerstag, 24. Dezember 2026 um 09:00 CET"),
        "{text}"
    );
    assert!(
        html.contains("<html lang=\"de\">") && html.contains("Aufgabe öffnen"),
        "{html}"
    );
}

#[test]
fn the_templates_get_the_messages_this_mail_can_fill_and_no_others() {
    let languages = crate::i18n::Languages::load(None).unwrap();
    let english = languages.pick("en");
    let mut args = FluentArgs::new();
    args.set("title", "Call");
    args.set("name", "Ada");
    args.set("url", "https://todo.example/tasks/1");
    args.set("timezone", "UTC");
    // Without a due time: formatting the others would fail (and log an error for each mail).
    let texts = texts(english, &args);
    assert_eq!(texts["greeting"], "Hello Ada,");
    assert!(
        !texts.contains_key("due-line") && !texts.contains_key("when-today"),
        "{texts:?}"
    );
}
