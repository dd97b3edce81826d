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
//!
//! The message is built here; the template environment (`templates`: settings, sources,
//! errors) and the local times (`local_time`: zones, the words for a time) each have a file
//! of their own.

pub(crate) mod agenda;
mod local_time;
mod templates;
#[cfg(test)]
mod tests;

pub(crate) use local_time::{wall, zoned};

use super::{message_id, MailError, ReminderMail};
use crate::config::NotifyConfig;
use crate::i18n::{Language, Languages};
use chrono::{DateTime, Utc};
use fluent_bundle::FluentArgs;
use jiff::tz::TimeZone;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use local_time::{local, tzdb, when};
use minijinja::value::Value;
use minijinja::{context, Environment};
use templates::{describe, environment};

/// The template files, by name.
pub const SUBJECT: &str = "reminder.subject.txt";
pub const TEXT: &str = "reminder.txt";
pub const HTML: &str = "reminder.html";

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
    languages: Languages,
    from: Mailbox,
    app_url: String,
}

impl Composer {
    pub fn from_config(cfg: &NotifyConfig) -> Result<Self, String> {
        let from: Mailbox = cfg
            .mail_from
            .parse()
            .map_err(|e| format!("MAIL_FROM={:?} is invalid: {e}", cfg.mail_from))?;
        let languages = Languages::load(cfg.template_dir.as_deref())?;
        let composer = Self {
            env: environment(cfg.template_dir.as_deref(), &languages)?,
            languages,
            from,
            app_url: cfg.app_url.trim_end_matches('/').to_owned(),
        };
        composer.check()?;
        composer.check_agenda()?;
        Ok(composer)
    }

    /// The languages messages are written in (the other channels' texts too).
    pub fn languages(&self) -> &Languages {
        &self.languages
    }

    /// Renders every template with and without the optional parts, in every language, so
    /// a template that names something that does not exist fails now, not at the first
    /// reminder.
    fn check(&self) -> Result<(), String> {
        let due: DateTime<Utc> = "2026-11-27T17:00:00Z".parse().expect("valid instant");
        let cases = self
            .languages
            .tags()
            .flat_map(|locale| [(Some(due), "Bring the forms.", locale), (None, "", locale)]);
        for (due_at, description, locale) in cases {
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
                locale,
            };
            self.render(&mail)
                .map_err(|e| format!("the mail templates do not render in {locale}: {e}"))?;
        }
        Ok(())
    }

    /// The subject, text and HTML of a reminder, in the recipient's time zone (UTC when
    /// the zone is unknown).
    pub fn render(&self, mail: &ReminderMail<'_>) -> Result<(String, String, String), String> {
        let title = single_line(mail.task_title);
        let language = self.languages.pick(mail.locale);
        let base = self.context(mail, &title, language)?;
        let tag = language.tag();
        let subject = self.template(tag, SUBJECT, base.clone())?;
        let subject = fitted_subject(&subject, &title, language);
        let with_subject = context! { subject => subject.clone(), ..base };
        let text = self.template(tag, TEXT, with_subject.clone())?;
        let html = self.template(tag, HTML, with_subject)?;
        Ok((subject, text, html))
    }

    /// What every template sees (the subject aside): the recipient, the task with its
    /// one-line `title`, and the times in the recipient's zone.
    fn context(&self, mail: &ReminderMail<'_>, title: &str, language: &Language) -> Result<Value, String> {
        let (zone_name, tz) = recipient_zone(mail);
        let reference = local(mail.remind_at, &tz)?;
        let task_url = format!("{}/tasks/{}", self.app_url, mail.task_id);
        let due = mail
            .due_at
            .map(|t| when(t, &tz, &reference, language))
            .transpose()?;
        let name = single_line(mail.to_name);
        let mut args = FluentArgs::new();
        args.set("title", title.to_owned());
        args.set("name", name.clone());
        args.set("url", task_url.clone());
        args.set("timezone", zone_name.to_owned());
        if let Some(due) = &due {
            args.set(
                "due",
                due.get_attr("relative")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            );
            args.set(
                "due-full",
                due.get_attr("local").map(|v| v.to_string()).unwrap_or_default(),
            );
        }
        Ok(context! {
            lang => language.tag(),
            text => texts(language, &args),
            timezone => zone_name,
            app_url => self.app_url.clone(),
            recipient => context! { name => single_line(mail.to_name), email => mail.to_email },
            task => context! {
                id => mail.task_id.get(),
                title => title.to_owned(),
                description => clean_text(mail.task_description),
                url => task_url,
            },
            due => due,
            remind_at => when(mail.remind_at, &tz, &reference, language)?,
        })
    }

    /// The template `name` rendered with `ctx`: the language's own (`<tag>/<name>` from
    /// `MAIL_TEMPLATE_DIR`) when there is one, else the common one.
    fn template(&self, tag: &str, name: &str, ctx: Value) -> Result<String, String> {
        let own = format!("{tag}/{name}");
        let template = self
            .env
            .get_template(&own)
            .or_else(|_| self.env.get_template(name));
        template
            .and_then(|t| t.render(ctx))
            .map_err(|e| describe(name, &e))
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

/// The recipient's zone and its name: UTC (with a warning) when the zone is unknown.
fn recipient_zone<'a>(mail: &ReminderMail<'a>) -> (&'a str, TimeZone) {
    match tzdb().get(mail.timezone) {
        Ok(tz) => (mail.timezone, tz),
        Err(_) => {
            tracing::warn!(
                reminder_id = mail.reminder_id.get(),
                "time zone {:?} is unknown; the reminder shows UTC",
                mail.timezone
            );
            ("UTC", TimeZone::UTC)
        }
    }
}

/// Every message of `language` with `args`, by id, for the templates (`text["greeting"]`).
/// Only those `args` can fill: the words around a time (`when-*`) need the time's own
/// pieces and are not for the templates, and the due line is absent without a due time (a
/// template asking for a missing one fails at start-up, as for any variable).
fn texts(language: &Language, args: &FluentArgs) -> std::collections::BTreeMap<String, String> {
    language
        .ids()
        .filter_map(|id| Some((id.to_owned(), language.try_text(id, args).ok()?)))
        .collect()
}

/// The subject as rendered, made one line: the language's `reminder-subject` when that leaves
/// nothing, cut with an ellipsis when longer than [`MAX_SUBJECT_CHARS`].
fn fitted_subject(rendered: &str, title: &str, language: &Language) -> String {
    let mut subject = single_line(rendered);
    if subject.is_empty() {
        let mut args = FluentArgs::new();
        args.set("title", title.to_owned());
        subject = single_line(&language.text("reminder-subject", &args));
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        subject = subject.chars().take(MAX_SUBJECT_CHARS - 1).collect::<String>() + "…";
    }
    subject
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
