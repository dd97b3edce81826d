//! The reminder message and the mailers that carry it.
//!
//! Messages are built with lettre, which encodes headers (non-ASCII subjects, names) and
//! refuses CR/LF in them, so task titles cannot inject headers.

use crate::config::{MailerKind, NotifyConfig};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Try again later (connection failed, disk full, server said 4xx).
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Will never work (bad recipient address, server said 5xx for the recipient).
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// What the reminder says.
#[derive(Debug, Clone)]
pub struct ReminderMail<'a> {
    pub to_email: &'a str,
    pub to_name: &'a str,
    pub timezone: &'a str,
    pub task_id: i64,
    pub task_title: &'a str,
    pub task_description: &'a str,
    pub due_at: Option<DateTime<Utc>>,
    pub remind_at: DateTime<Utc>,
    pub reminder_id: i64,
}

/// The deterministic Message-ID of a delivery: a duplicate is recognisable as one.
pub fn message_id(reminder_id: i64, remind_at: DateTime<Utc>) -> String {
    format!(
        "<reminder-{reminder_id}-{}@todo-events>",
        remind_at.timestamp_micros()
    )
}

/// Builds the reminder e-mail. A recipient address that cannot be parsed is permanent.
pub fn build_message(cfg: &NotifyConfig, mail: &ReminderMail<'_>) -> Result<Message, MailError> {
    let from: Mailbox = cfg
        .mail_from
        .parse()
        .map_err(|e| MailError::Permanent(format!("MAIL_FROM is invalid: {e}")))?;
    let address = mail.to_email.parse().map_err(|e| {
        MailError::Permanent(format!("recipient address {:?} is invalid: {e}", mail.to_email))
    })?;
    let name = mail.to_name.replace(['\r', '\n'], " ");
    let to = Mailbox::new((!name.trim().is_empty()).then_some(name), address);
    let tz: Tz = mail.timezone.parse().unwrap_or(Tz::UTC);
    let when = |t: DateTime<Utc>| t.with_timezone(&tz).format("%A %-d %B %Y, %H:%M %Z").to_string();
    let title = mail.task_title.replace(['\r', '\n'], " ");
    let mut body = format!("Reminder: {title}\n\n");
    if let Some(due) = mail.due_at {
        body.push_str(&format!("Due: {}\n", when(due)));
    }
    if !mail.task_description.trim().is_empty() {
        body.push_str(&format!("\n{}\n", mail.task_description.trim()));
    }
    body.push_str(&format!(
        "\nOpen the task: {}/tasks/{}\n",
        cfg.app_url.trim_end_matches('/'),
        mail.task_id
    ));
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Reminder: {title}"))
        .message_id(Some(message_id(mail.reminder_id, mail.remind_at)))
        .date(mail.remind_at.into())
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Permanent(format!("the message could not be built: {e}")))
}

/// A way of delivering messages.
pub enum Mailer {
    File {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
    Stdout,
}

impl Mailer {
    pub fn from_config(cfg: &NotifyConfig) -> Result<Self, String> {
        match cfg.mailer {
            MailerKind::File => {
                std::fs::create_dir_all(&cfg.outbox_dir)
                    .map_err(|e| format!("OUTBOX_DIR={} cannot be created: {e}", cfg.outbox_dir.display()))?;
                Ok(Self::File {
                    transport: AsyncFileTransport::new(&cfg.outbox_dir),
                    dir: cfg.outbox_dir.clone(),
                })
            }
            MailerKind::Stdout => Ok(Self::Stdout),
        }
    }

    /// Sends one message; on success returns where it went (for the log).
    pub async fn send(&self, message: Message) -> Result<String, MailError> {
        match self {
            Self::File { transport, dir } => {
                let id = transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Transient(format!("writing to the outbox failed: {e}")))?;
                Ok(dir.join(format!("{id}.eml")).display().to_string())
            }
            Self::Stdout => {
                use std::io::Write;
                let text = String::from_utf8_lossy(&message.formatted()).into_owned();
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}\n.")
                    .map_err(|e| MailError::Transient(format!("writing to stdout failed: {e}")))?;
                Ok("standard output".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail<'a>(title: &'a str, email: &'a str) -> ReminderMail<'a> {
        ReminderMail {
            to_email: email,
            to_name: "Ada",
            timezone: "Europe/Berlin",
            task_id: 7,
            task_title: title,
            task_description: "",
            due_at: Some("2026-11-27T17:00:00Z".parse().unwrap()),
            remind_at: "2026-11-27T16:45:00Z".parse().unwrap(),
            reminder_id: 3,
        }
    }

    #[test]
    fn message_shows_local_due_time_and_cannot_gain_headers() {
        let cfg = NotifyConfig::local("outbox".into());
        let msg = build_message(
            &cfg,
            &mail("Pay rent\r\nBcc: evil@example.com", "ada@example.test"),
        )
        .unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("Due: Friday 27 November 2026, 18:00 CET"), "{text}");
        assert!(!text.contains("\nBcc:"), "{text}");
        assert!(text.contains("Message-ID: <reminder-3-"), "{text}");
    }

    #[test]
    fn bad_recipient_is_permanent() {
        let cfg = NotifyConfig::local("outbox".into());
        let err = build_message(&cfg, &mail("x", "not an address")).unwrap_err();
        assert!(matches!(err, MailError::Permanent(_)));
    }
}
