//! The daily agenda's message (docs/PREFERENCES.md, "The daily agenda"): the open tasks due
//! that local day and those overdue, in the recipient's language and zone, from three more
//! templates that follow the reminder's rules (built in, replaceable in `MAIL_TEMPLATE_DIR`
//! and per language in `MAIL_TEMPLATE_DIR/<tag>/`, checked at start-up).
//!
//! What the templates see besides the reminder's `lang`, `text`, `timezone`, `app_url` and
//! `recipient`: `date` (the day, written in full), `count` (tasks due that day or overdue),
//! `more` (those beyond the ones listed), and `overdue` and `today`, lists of tasks each with
//! `id`, `title` (one line), `url` and `due` (as a reminder's `due`: `local`, `time`,
//! `relative`, ...).

use super::local_time::{local, tzdb, wall, when};
use super::{single_line, texts, AutoSubmitted, Composer};
use crate::i18n::Language;
use crate::mail::MailError;
use chrono::{DateTime, NaiveDate, Utc};
use fluent_bundle::FluentArgs;
use jiff::tz::TimeZone;
use lettre::message::{Mailbox, Message, MultiPart};
use minijinja::context;
use minijinja::value::Value;
use todo_events_domain::{TaskId, UserId};

pub const AGENDA_SUBJECT: &str = "agenda.subject.txt";
pub const AGENDA_TEXT: &str = "agenda.txt";
pub const AGENDA_HTML: &str = "agenda.html";

/// A task the agenda lists.
#[derive(Debug, Clone)]
pub struct AgendaItem<'a> {
    pub id: TaskId,
    pub title: &'a str,
    pub due_at: DateTime<Utc>,
}

/// What a user's agenda of one day says.
#[derive(Debug, Clone)]
pub struct AgendaMail<'a> {
    pub to_email: &'a str,
    pub to_name: &'a str,
    pub timezone: &'a str,
    pub locale: &'a str,
    pub user_id: UserId,
    /// The local date.
    pub date: NaiveDate,
    /// When it goes out: "today" in the times' words is this instant's day.
    pub agenda_at: DateTime<Utc>,
    /// The tasks listed, earliest first.
    pub tasks: &'a [AgendaItem<'a>],
    /// The tasks due that day or overdue, listed or not.
    pub count: i64,
}

/// The deterministic Message-ID of a user's agenda of a date.
pub fn agenda_message_id(user_id: UserId, date: NaiveDate) -> String {
    format!("<agenda-{user_id}-{}@todo-events>", date.format("%Y%m%d"))
}

impl Composer {
    /// The subject, text and HTML of an agenda, in the recipient's zone (UTC when unknown).
    pub fn render_agenda(&self, mail: &AgendaMail<'_>) -> Result<(String, String, String), String> {
        let language = self.languages.pick(mail.locale);
        let base = self.agenda_context(mail, language)?;
        let tag = language.tag();
        let subject = single_line(&self.template(tag, AGENDA_SUBJECT, base.clone())?);
        let with_subject = context! { subject => subject.clone(), ..base };
        let text = self.template(tag, AGENDA_TEXT, with_subject.clone())?;
        let html = self.template(tag, AGENDA_HTML, with_subject)?;
        Ok((subject, text, html))
    }

    /// What the agenda's templates see (the subject aside).
    fn agenda_context(&self, mail: &AgendaMail<'_>, language: &Language) -> Result<Value, String> {
        let (zone_name, tz) = match tzdb().get(mail.timezone) {
            Ok(tz) => (mail.timezone, tz),
            Err(_) => ("UTC", TimeZone::UTC),
        };
        let reference = local(mail.agenda_at, &tz)?;
        let date = language
            .formats(wall(&reference))
            .map(|f| f.date)
            .unwrap_or_else(|| mail.date.to_string());
        let (overdue, today) = self.items(mail, &tz, &reference, language)?;
        let more = (mail.count - mail.tasks.len() as i64).max(0);
        let mut args = FluentArgs::new();
        args.set("name", single_line(mail.to_name));
        args.set("date", date.clone());
        args.set("count", mail.count);
        args.set("more", more);
        args.set("url", self.app_url.clone());
        args.set("timezone", zone_name.to_owned());
        Ok(context! {
            lang => language.tag(),
            text => texts(language, &args),
            timezone => zone_name,
            app_url => self.app_url.clone(),
            recipient => context! { name => single_line(mail.to_name), email => mail.to_email },
            date => date,
            count => mail.count,
            more => more,
            overdue => overdue,
            today => today,
        })
    }

    /// The listed tasks as the templates see them: those due before the agenda's day
    /// (overdue), and the day's.
    fn items(
        &self,
        mail: &AgendaMail<'_>,
        tz: &TimeZone,
        reference: &jiff::ZonedDateTime,
        language: &Language,
    ) -> Result<(Vec<Value>, Vec<Value>), String> {
        let day_start = reference.start_of_day().map_err(|e| e.to_string())?;
        let (mut overdue, mut today) = (Vec::new(), Vec::new());
        for task in mail.tasks {
            let item = context! {
                id => task.id.get(),
                title => single_line(task.title),
                url => format!("{}/tasks/{}", self.app_url, task.id),
                due => when(task.due_at, tz, reference, language)?,
            };
            match task.due_at.timestamp() < day_start.timestamp().as_second() {
                true => overdue.push(item),
                false => today.push(item),
            }
        }
        Ok((overdue, today))
    }

    /// Builds the agenda e-mail. A recipient address that cannot be parsed is permanent; a
    /// template that fails to render is transient (an operator can fix it).
    pub fn build_agenda(&self, mail: &AgendaMail<'_>) -> Result<Message, MailError> {
        let address = mail.to_email.trim().parse().map_err(|e| {
            MailError::Permanent(format!("recipient address {:?} is invalid: {e}", mail.to_email))
        })?;
        let name = single_line(mail.to_name);
        let to = Mailbox::new((!name.is_empty()).then_some(name), address);
        let (subject, text, html) = self.render_agenda(mail).map_err(MailError::Transient)?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(agenda_message_id(mail.user_id, mail.date)))
            .date(mail.agenda_at.into())
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Permanent(format!("the message could not be built: {e}")))
    }

    /// Renders the agenda in every language, with overdue and today's tasks, so a template
    /// or message that names something missing fails at start-up.
    pub(super) fn check_agenda(&self) -> Result<(), String> {
        let at: DateTime<Utc> = "2026-11-27T06:00:00Z".parse().expect("valid instant");
        let tasks = [
            AgendaItem {
                id: TaskId::new(1).expect("1 is an id"),
                title: "Overdue task",
                due_at: "2026-11-25T17:00:00Z".parse().expect("valid instant"),
            },
            AgendaItem {
                id: TaskId::new(2).expect("2 is an id"),
                title: "Today's task",
                due_at: "2026-11-27T17:00:00Z".parse().expect("valid instant"),
            },
        ];
        for locale in self.languages.tags() {
            let mail = AgendaMail {
                to_email: "someone@example.com",
                to_name: "Someone",
                timezone: "Europe/Berlin",
                locale,
                user_id: UserId::new(1).expect("1 is an id"),
                date: at.date_naive(),
                agenda_at: at,
                tasks: &tasks,
                count: 3,
            };
            self.render_agenda(&mail)
                .map_err(|e| format!("the agenda templates do not render in {locale}: {e}"))?;
        }
        Ok(())
    }
}
