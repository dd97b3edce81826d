//! The reminder message and the mailers that carry it.
//!
//! - [`compose`] — the message: subject, text and HTML parts rendered from templates
//!   (built in, or from `MAIL_TEMPLATE_DIR`) in the recipient's time zone.
//! - [`smtp`] — the SMTP mailer: sessions, TLS, login, and which failures are worth a retry.
//! - [`smtp_url`] — `SMTP_URL`: relay, TLS mode and login, the password kept secret.
//!
//! Messages are built with lettre, which encodes headers (non-ASCII subjects, names); task
//! titles are made single-line before they reach a header, so they cannot add headers.

pub mod compose;
pub mod smtp;
pub mod smtp_url;

use crate::config::{MailerKind, NotifyConfig};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use lettre::message::Message;
use todo_events_domain::{ReminderId, TaskId};

use std::path::PathBuf;

pub use compose::Composer;
pub use smtp::SmtpMailer;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Try again later (connection failed, disk full, server said 4xx, login refused).
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Will never work (bad recipient address, server said 5xx for the recipient or the
    /// message).
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// What the reminder says.
#[derive(Debug, Clone)]
pub struct ReminderMail<'a> {
    pub to_email: &'a str,
    pub to_name: &'a str,
    pub timezone: &'a str,
    pub task_id: TaskId,
    pub task_title: &'a str,
    pub task_description: &'a str,
    pub due_at: Option<DateTime<Utc>>,
    pub remind_at: DateTime<Utc>,
    pub reminder_id: ReminderId,
    /// The recipient's locale (BCP 47): the language of the message ([`crate::i18n`]).
    pub locale: &'a str,
}

/// The deterministic Message-ID of a delivery: a duplicate is recognisable as one.
pub fn message_id(reminder_id: ReminderId, remind_at: DateTime<Utc>) -> String {
    format!(
        "<reminder-{reminder_id}-{}@todo-events>",
        remind_at.timestamp_micros()
    )
}

/// Builds the reminder e-mail with the built-in (or `cfg.template_dir`) templates. A
/// recipient address that cannot be parsed is permanent. (The handler keeps one
/// [`Composer`]; this is for one-off use.)
pub fn build_message(cfg: &NotifyConfig, mail: &ReminderMail<'_>) -> Result<Message, MailError> {
    Composer::from_config(cfg)
        .map_err(MailError::Transient)?
        .build(mail)
}

/// A way of delivering messages.
pub enum Mailer {
    /// `.eml` files named after the Message-ID, written atomically: a message sent again
    /// (after a crash between writing and recording it) replaces its first copy instead of
    /// becoming a second one.
    File {
        dir: PathBuf,
    },
    Stdout,
    Smtp(Box<SmtpMailer>),
}

impl Mailer {
    pub fn from_config(cfg: &NotifyConfig) -> Result<Self, String> {
        match cfg.mailer {
            MailerKind::File => {
                std::fs::create_dir_all(&cfg.outbox_dir)
                    .map_err(|e| format!("OUTBOX_DIR={} cannot be created: {e}", cfg.outbox_dir.display()))?;
                remove_stale_partials(&cfg.outbox_dir);
                Ok(Self::File {
                    dir: cfg.outbox_dir.clone(),
                })
            }
            MailerKind::Stdout => Ok(Self::Stdout),
            MailerKind::Smtp => {
                let settings = cfg
                    .smtp
                    .as_ref()
                    .ok_or("SMTP_URL is not set: MAILER=smtp needs the relay")?;
                Ok(Self::Smtp(Box::new(SmtpMailer::new(settings)?)))
            }
        }
    }

    /// Sends one message; on success returns where it went (for the log).
    pub async fn send(&self, message: Message) -> Result<String, MailError> {
        self.send_all(vec![message])
            .await
            .pop()
            .expect("one result per message")
    }

    /// Sends several messages (a consumer batch): one result per message, in order. The
    /// file mailer writes them all in one trip to the blocking pool (a trip per mail cost a
    /// thread hand-off each, more than the write); SMTP sends up to [`SENDS_AT_ONCE`] at a
    /// time over its session pool.
    pub async fn send_all(&self, messages: Vec<Message>) -> Vec<Result<String, MailError>> {
        match self {
            Self::File { dir } => {
                let files: Vec<OutboxFile> = messages.iter().map(|m| OutboxFile::new(dir, m)).collect();
                match tokio::task::spawn_blocking(move || files.into_iter().map(OutboxFile::write).collect())
                    .await
                {
                    Ok(written) => written,
                    Err(e) => messages.iter().map(|_| Err(outbox_failed(&e))).collect(),
                }
            }
            Self::Stdout => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                messages
                    .iter()
                    .map(|m| {
                        let text = String::from_utf8_lossy(&m.formatted()).into_owned();
                        writeln!(out, "{text}\n.")
                            .map(|()| "standard output".to_owned())
                            .map_err(|e| MailError::Transient(format!("writing to stdout failed: {e}")))
                    })
                    .collect()
            }
            Self::Smtp(smtp) => {
                stream::iter(messages)
                    .map(|m| async move { smtp.send(&m).await })
                    .buffered(SENDS_AT_ONCE)
                    .collect()
                    .await
            }
        }
    }
}

/// Messages a batch sends over SMTP at once (each needs a session; `SMTP_MAX_SESSIONS`
/// bounds those).
pub const SENDS_AT_ONCE: usize = 64;

/// One message on its way to the outbox: `<Message-ID>.eml`, written to a partial file
/// first and renamed, so a reader never sees half a message and a message sent again
/// replaces its first copy.
struct OutboxFile {
    path: PathBuf,
    partial: PathBuf,
    bytes: Vec<u8>,
}

impl OutboxFile {
    fn new(dir: &std::path::Path, message: &Message) -> Self {
        let id = message.headers().get_raw("Message-ID").unwrap_or("message");
        let name: String = id
            .trim_matches(|c| c == '<' || c == '>')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            path: dir.join(format!("{name}.eml")),
            partial: dir.join(format!(".{name}.{}.partial", std::process::id())),
            bytes: message.formatted(),
        }
    }

    fn write(self) -> Result<String, MailError> {
        std::fs::write(&self.partial, &self.bytes)
            .and_then(|()| std::fs::rename(&self.partial, &self.path))
            .map(|()| self.path.display().to_string())
            .map_err(|e| outbox_failed(&e))
    }
}

fn outbox_failed(e: &dyn std::fmt::Display) -> MailError {
    MailError::Transient(format!("writing to the outbox failed: {e}"))
}

/// Removes `.partial` files a crashed writer left in the outbox (older than a minute, so a
/// write in progress in another process is left alone).
fn remove_stale_partials(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 60));
        if name.to_string_lossy().ends_with(".partial") && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
