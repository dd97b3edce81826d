//! Why a step of the SMTP conversation failed, in words and as an outcome: which step it
//! was decides whether a `5xx` is for good (the module's table). Apart from the conversation
//! because every step, connecting as well as sending, is judged by these same rules.

use super::SmtpMailer;
use crate::mail::MailError;
use lettre::Address;

/// A step of the SMTP conversation (for classifying and explaining failures).
#[derive(Debug, Clone, Copy)]
pub(super) enum Step<'a> {
    Connect,
    StartTls,
    Login,
    Sender(Option<&'a Address>),
    Recipient(&'a Address),
    Data,
    Message,
}

impl SmtpMailer {
    /// Words and outcome for a failed step: `5xx` on the recipient or the message is
    /// permanent, everything else transient.
    pub(super) fn classify(&self, step: Step<'_>, e: &lettre::transport::smtp::Error) -> MailError {
        let server = self.url.server();
        let answer = answer(e);
        let text = match step {
            Step::Connect => format!("could not talk to the SMTP server {server}: {answer}"),
            Step::StartTls => format!("STARTTLS with the SMTP server {server} failed: {answer}"),
            Step::Login => format!(
                "the SMTP server {server} refused the login of {:?}: {answer}",
                self.url.username.as_deref().unwrap_or_default()
            ),
            Step::Sender(from) => format!(
                "the SMTP server {server} refused the sender <{}> (MAIL_FROM): {answer}",
                from.map(|a| a.to_string()).unwrap_or_default()
            ),
            Step::Recipient(to) => format!("the SMTP server {server} refused the recipient <{to}>: {answer}"),
            Step::Data | Step::Message => format!("the SMTP server {server} refused the message: {answer}"),
        };
        let text = self.scrub(&text);
        match step {
            Step::Recipient(_) | Step::Data | Step::Message if e.is_permanent() => MailError::Permanent(text),
            _ => MailError::Transient(text),
        }
    }
}

/// The server's answer (`550 5.1.1 …`), or what went wrong on the way.
fn answer(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) => {
            let text = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            format!("{code} {text}").trim_end().to_owned()
        }
        None if e.is_timeout() => format!("timed out ({e})"),
        None => e.to_string(),
    }
}
