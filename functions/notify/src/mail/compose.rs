//! The reminder message: a subject and a `multipart/alternative` text + HTML body rendered
//! with minijinja (HTML auto-escaped), times in the recipient's IANA time zone.
//!
//! Zone data is jiff's bundled copy of the IANA database, the same recur computes
//! occurrences with ([`todo_events_domain::recurrence::TZDB_VERSION`]), never the machine's
//! `/usr/share/zoneinfo`: a reminder shows the local time its task was scheduled for.
//!
//! Three templates, built in from `functions/notify/templates/` and each replaceable by a
//! file of the same name in `MAIL_TEMPLATE_DIR` (read at start-up; a broken template stops
//! start-up naming the file):
//! - `reminder.subject.txt` — the subject line (made single-line and trimmed afterwards),
//! - `reminder.txt` — the text part,
//! - `reminder.html` — the HTML part (every `{{ … }}` is HTML-escaped).
//!
//! What the templates see:
//! - `subject` (text and HTML only), `timezone` (the IANA name used), `app_url`,
//! - `recipient.name`, `recipient.email`,
//! - `task.id`, `task.title` (one line), `task.description`, `task.url`,
//! - `due` (absent when the task has no due time) and `remind_at`, each with `local`
//!   ("Friday 27 November 2026, 18:00 CET"), `date`, `time`, `zone` (abbreviation),
//!   `relative` ("today at 18:00", "tomorrow at 09:30", "on Monday at 08:00",
//!   "on Friday 4 December at 18:00", relative to the reminder's own time) and `iso`
//!   (RFC 3339 with the local offset).

use super::{message_id, MailError, ReminderMail};
use crate::config::NotifyConfig;
use chrono::{DateTime, Utc};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::ZonedDateTime;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use minijinja::value::Value;
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior};
use std::path::Path;
use std::sync::OnceLock;

/// The template files, by name.
pub const SUBJECT: &str = "reminder.subject.txt";
pub const TEXT: &str = "reminder.txt";
pub const HTML: &str = "reminder.html";

const BUILT_IN: [(&str, &str); 3] = [
    (SUBJECT, include_str!("../../templates/reminder.subject.txt")),
    (TEXT, include_str!("../../templates/reminder.txt")),
    (HTML, include_str!("../../templates/reminder.html")),
];

/// Longest subject, in characters; longer ones are cut with an ellipsis.
const MAX_SUBJECT_CHARS: usize = 200;

/// `Auto-Submitted: auto-generated` (RFC 3834): auto-responders do not answer reminders.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Builds reminder messages. Made once at start-up (templates parsed and test-rendered).
pub struct Composer {
    env: Environment<'static>,
    from: Mailbox,
    app_url: String,
}

impl Composer {
    pub fn from_config(cfg: &NotifyConfig) -> Result<Self, String> {
        let from: Mailbox = cfg
            .mail_from
            .parse()
            .map_err(|e| format!("MAIL_FROM={:?} is invalid: {e}", cfg.mail_from))?;
        let composer = Self {
            env: environment(cfg.template_dir.as_deref())?,
            from,
            app_url: cfg.app_url.trim_end_matches('/').to_owned(),
        };
        composer.check()?;
        Ok(composer)
    }

    /// Renders every template with and without the optional parts, so a template that
    /// names something that does not exist fails now, not at the first reminder.
    fn check(&self) -> Result<(), String> {
        let due: DateTime<Utc> = "2026-11-27T17:00:00Z".parse().expect("valid instant");
        for (due_at, description) in [(Some(due), "Bring the forms."), (None, "")] {
            let mail = ReminderMail {
                to_email: "someone@example.com",
                to_name: "Someone",
                timezone: "Europe/Berlin",
                task_id: todo_events_domain::TaskId::new(1).expect("1 is an id"),
                task_title: "Example task",
                task_description: description,
                due_at,
                remind_at: due,
                reminder_id: todo_events_domain::ReminderId::new(1).expect("1 is an id"),
            };
            self.render(&mail)
                .map_err(|e| format!("the mail templates do not render: {e}"))?;
        }
        Ok(())
    }

    /// The subject, text and HTML of a reminder, in the recipient's time zone (UTC when
    /// the zone is unknown).
    pub fn render(&self, mail: &ReminderMail<'_>) -> Result<(String, String, String), String> {
        let (zone_name, tz) = match tzdb().get(mail.timezone) {
            Ok(tz) => (mail.timezone, tz),
            Err(_) => {
                tracing::warn!(
                    reminder_id = mail.reminder_id.get(),
                    "time zone {:?} is unknown; the reminder shows UTC",
                    mail.timezone
                );
                ("UTC", TimeZone::UTC)
            }
        };
        let reference = local(mail.remind_at, &tz)?;
        let title = single_line(mail.task_title);
        let task_url = format!("{}/tasks/{}", self.app_url, mail.task_id);
        let base = context! {
            timezone => zone_name,
            app_url => self.app_url.clone(),
            recipient => context! { name => single_line(mail.to_name), email => mail.to_email },
            task => context! {
                id => mail.task_id.get(),
                title => title.clone(),
                description => clean_text(mail.task_description),
                url => task_url,
            },
            due => mail.due_at.map(|t| when(t, &tz, &reference)).transpose()?,
            remind_at => when(mail.remind_at, &tz, &reference)?,
        };
        let render = |name: &str, ctx: Value| -> Result<String, String> {
            self.env
                .get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| describe(name, &e))
        };
        let mut subject = single_line(&render(SUBJECT, base.clone())?);
        if subject.is_empty() {
            subject = format!("Reminder: {title}");
        }
        if subject.chars().count() > MAX_SUBJECT_CHARS {
            subject = subject.chars().take(MAX_SUBJECT_CHARS - 1).collect::<String>() + "…";
        }
        let with_subject = context! { subject => subject.clone(), ..base };
        let text = render(TEXT, with_subject.clone())?;
        let html = render(HTML, with_subject)?;
        Ok((subject, text, html))
    }

    /// Builds the reminder e-mail. A recipient address that cannot be parsed is permanent;
    /// a template that fails to render is transient (an operator can fix it).
    pub fn build(&self, mail: &ReminderMail<'_>) -> Result<Message, MailError> {
        let address = mail.to_email.trim().parse().map_err(|e| {
            MailError::Permanent(format!("recipient address {:?} is invalid: {e}", mail.to_email))
        })?;
        let name = single_line(mail.to_name);
        let to = Mailbox::new((!name.is_empty()).then_some(name), address);
        let (subject, text, html) = self.render(mail).map_err(MailError::Transient)?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id(mail.reminder_id, mail.remind_at)))
            .date(mail.remind_at.into())
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Permanent(format!("the message could not be built: {e}")))
    }
}

fn environment(dir: Option<&Path>) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") || name.ends_with(".htm") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // HTML escaping of & < > " ' only: minijinja's default also writes `/` as `&#x2f;`,
    // which turns every link into entity soup that spam filters count as obfuscation.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if *state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            out.write_str(&escape_html(text)).map_err(minijinja::Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    });
    for (name, built_in) in BUILT_IN {
        let source = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
            Some(path) => {
                tracing::info!("mail template {name} from {}", path.display());
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("MAIL_TEMPLATE_DIR: {} cannot be read: {e}", path.display()))?
            }
            None => built_in.to_owned(),
        };
        env.add_template_owned(name, source)
            .map_err(|e| format!("mail template {name}: {}", describe(name, &e)))?;
    }
    Ok(env)
}

/// A minijinja error with its causes, on one line.
fn describe(name: &str, e: &minijinja::Error) -> String {
    let mut text = format!("{name}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn tzdb() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// `t` in the zone named `timezone`, with the name of the zone used: UTC when the zone is
/// unknown (the other channels show times as the mail does).
pub(crate) fn zoned(t: DateTime<Utc>, timezone: &str) -> Result<(ZonedDateTime, &str), String> {
    match tzdb().get(timezone) {
        Ok(tz) => Ok((local(t, &tz)?, timezone)),
        Err(_) => Ok((local(t, &TimeZone::UTC)?, "UTC")),
    }
}

fn local(t: DateTime<Utc>, tz: &TimeZone) -> Result<ZonedDateTime, String> {
    jiff::Timestamp::from_microsecond(t.timestamp_micros())
        .map(|ts| ts.to_zoned_datetime(tz.clone()))
        .map_err(|e| format!("{t} cannot be shown as a local time: {e}"))
}

/// A local time as the templates see it.
fn when(t: DateTime<Utc>, tz: &TimeZone, reference: &ZonedDateTime) -> Result<Value, String> {
    let local = local(t, tz)?;
    let time = local.strftime("%H:%M").to_string();
    let days = local
        .date()
        .since(reference.date())
        .map_err(|e| format!("{t}: {e}"))?
        .get_days();
    let relative = match days {
        0 => format!("today at {time}"),
        1 => format!("tomorrow at {time}"),
        -1 => format!("yesterday at {time}"),
        2..=6 => format!("on {} at {time}", local.strftime("%A")),
        _ if local.year() == reference.year() => format!("on {} at {time}", local.strftime("%A %-d %B")),
        _ => format!("on {} at {time}", local.strftime("%A %-d %B %Y")),
    };
    Ok(context! {
        local => local.strftime("%A %-d %B %Y, %H:%M %Z").to_string(),
        date => local.strftime("%A %-d %B %Y").to_string(),
        time => time,
        zone => local.strftime("%Z").to_string(),
        relative => relative,
        iso => local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    })
}

/// One line: control characters (CR, LF, tab, NEL, line/paragraph separators, …) become
/// spaces, runs of spaces become one, and the ends are trimmed.
pub fn single_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Multi-line text: line breaks kept (as `\n`), other control characters dropped.
fn clean_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
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
        assert!(text.contains("Due: Friday 27 November 2026, 18:00 CET"), "{text}");
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

    #[test]
    fn times_are_local_and_relative_to_the_reminder() {
        let c = composer();
        let mut m = mail("Call", "a@b.test");
        fn subject(c: &Composer, m: &ReminderMail<'_>, timezone: &str) -> String {
            let mut m = m.clone();
            m.timezone = timezone;
            c.render(&m).unwrap().0
        }
        let due = |m: &ReminderMail<'_>, timezone: &str| subject(&c, m, timezone);
        // 23:30 UTC on the 27th is already the 28th in Tokyo, but the 27th in New York.
        m.remind_at = "2026-11-27T20:00:00Z".parse().unwrap();
        m.due_at = Some("2026-11-27T23:30:00Z".parse().unwrap());
        assert_eq!(due(&m, "Asia/Tokyo"), "Reminder: Call (due today at 08:30)");
        assert_eq!(due(&m, "America/New_York"), "Reminder: Call (due today at 18:30)");
        m.due_at = Some("2026-11-28T08:00:00Z".parse().unwrap());
        assert_eq!(due(&m, "Europe/Berlin"), "Reminder: Call (due tomorrow at 09:00)");
        m.due_at = Some("2026-12-01T08:00:00Z".parse().unwrap());
        assert_eq!(
            due(&m, "Europe/Berlin"),
            "Reminder: Call (due on Tuesday at 09:00)"
        );
        m.due_at = Some("2026-12-24T08:00:00Z".parse().unwrap());
        assert_eq!(
            due(&m, "Europe/Berlin"),
            "Reminder: Call (due on Thursday 24 December at 09:00)"
        );
        m.due_at = Some("2027-01-04T08:00:00Z".parse().unwrap());
        assert_eq!(
            due(&m, "Europe/Berlin"),
            "Reminder: Call (due on Monday 4 January 2027 at 09:00)"
        );
        m.due_at = None;
        assert_eq!(due(&m, "Europe/Berlin"), "Reminder: Call");
        // Summer time is summer time.
        m.remind_at = "2026-07-01T08:00:00Z".parse().unwrap();
        m.due_at = Some("2026-07-01T10:00:00Z".parse().unwrap());
        let (_, text, _) = c.render(&m).unwrap();
        assert!(
            text.contains("Due: Wednesday 1 July 2026, 12:00 CEST (today at 12:00)"),
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
}
