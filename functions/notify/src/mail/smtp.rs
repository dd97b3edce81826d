//! The SMTP mailer: lettre's async SMTP client on tokio, with rustls.
//!
//! Sessions are limited to `SMTP_MAX_SESSIONS` at once (a semaphore); idle sessions are kept
//! for reuse (at most that many, for [`IDLE_FOR`]) and checked with `RSET` before reuse.
//! Each step of the conversation is classified on its own, because what a `5xx` means
//! depends on when it comes:
//!
//! | step | failure | outcome |
//! |---|---|---|
//! | connect, greeting, EHLO, STARTTLS, TLS handshake | any | transient |
//! | AUTH | any (a wrong password is fixed by an operator, not by giving up) | transient |
//! | `MAIL FROM` | any (the sender is configuration) | transient |
//! | `RCPT TO` | `4xx` transient, `5xx` **permanent** (the recipient) | |
//! | `DATA`, end of data | `4xx` transient, `5xx` **permanent** (the message) | |
//! | waiting for a session, or the whole conversation, longer than `SMTP_TIMEOUT` | | transient |
//!
//! No text this module produces contains the password: the URL is never handed to lettre
//! (it is parsed in [`super::smtp_url`]), and every error text is scrubbed of the password anyway.
//!
//! The mailer and its pool of sessions are here; opening a session (`session`), one mail
//! transaction (`transaction`) and the judging of a failed step (`failure`) each have a file
//! of their own.

mod failure;
mod session;
mod transaction;

use super::smtp_url::{SmtpSecurity, SmtpUrl};
use super::MailError;
use crate::config::SmtpSettings;
use lettre::address::Envelope;
use lettre::message::Message;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::Rset;
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long an idle session is kept for reuse (servers drop idle clients after 5 minutes
/// or so; RFC 5321 §4.5.3.2.7).
pub const IDLE_FOR: Duration = Duration::from_secs(60);

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

pub struct SmtpMailer {
    url: SmtpUrl,
    credentials: Option<Credentials>,
    tls: Option<TlsParameters>,
    hello: ClientId,
    timeout: Duration,
    max_sessions: usize,
    sessions: Semaphore,
    idle: Mutex<Vec<Idle>>,
    /// Texts that must never leave this module (the password).
    secrets: Vec<SecretString>,
}

impl SmtpMailer {
    /// Prepares the mailer (reads `SMTP_CA_FILE`, builds the TLS configuration); connects
    /// only when the first message is sent.
    pub fn new(settings: &SmtpSettings) -> Result<Self, String> {
        let url = settings.url.clone();
        let tls = tls_parameters(&url, settings.ca_file.as_deref())?;
        let credentials = url.username.as_ref().map(|user| {
            let password = url.expose_password().unwrap_or_default().to_owned();
            Credentials::new(user.clone(), password)
        });
        let secrets = url
            .expose_password()
            .filter(|p| !p.is_empty())
            .map(SecretString::from)
            .into_iter()
            .collect();
        let hello = match &url.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        Ok(Self {
            credentials,
            tls,
            hello,
            timeout: settings.timeout,
            max_sessions: settings.max_sessions,
            sessions: Semaphore::new(settings.max_sessions),
            idle: Mutex::new(Vec::new()),
            secrets,
            url,
        })
    }

    /// Sends one message; on success says which server took it and its answer.
    pub async fn send(&self, message: &Message) -> Result<String, MailError> {
        let envelope = message.envelope();
        let bytes = message.formatted();
        let Ok(permit) = tokio::time::timeout(self.timeout, self.sessions.acquire()).await else {
            return Err(MailError::Transient(format!(
                "all {} SMTP sessions to {} stayed busy for {} (SMTP_MAX_SESSIONS, SMTP_TIMEOUT)",
                self.max_sessions,
                self.url.server(),
                humanize(self.timeout)
            )));
        };
        let _permit = permit.map_err(|_| MailError::Transient("the SMTP mailer is shut down".into()))?;
        match tokio::time::timeout(self.timeout, self.deliver(envelope, &bytes)).await {
            Ok(Ok(response)) => Ok(format!(
                "SMTP server {} answered {}",
                self.url.server(),
                self.scrub(&describe_response(&response))
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MailError::Transient(format!(
                "the SMTP server {} did not finish within {} (SMTP_TIMEOUT)",
                self.url.server(),
                humanize(self.timeout)
            ))),
        }
    }

    async fn deliver(&self, envelope: &Envelope, bytes: &[u8]) -> Result<Response, MailError> {
        let mut conn = self.checkout().await?;
        match self.transaction(&mut conn, envelope, bytes).await {
            Ok(response) => {
                self.checkin(conn).await;
                Ok(response)
            }
            Err((error, answered)) => {
                // After a negative answer the session itself is fine: reset it and keep it.
                if answered && !conn.has_broken() && conn.command(Rset).await.is_ok() {
                    self.checkin(conn).await;
                } else {
                    conn.abort().await;
                }
                Err(error)
            }
        }
    }

    /// An idle session (checked with `RSET`) or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, MailError> {
        loop {
            let idle = self.idle.lock().expect("idle pool lock").pop();
            let Some(Idle { mut conn, since }) = idle else {
                return self.connect().await;
            };
            if since.elapsed() < IDLE_FOR && conn.command(Rset).await.is_ok() {
                tracing::debug!("reusing an SMTP session with {}", self.url.server());
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    async fn checkin(&self, conn: AsyncSmtpConnection) {
        let kept = {
            let mut idle = self.idle.lock().expect("idle pool lock");
            if idle.len() < self.max_sessions {
                idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
                None
            } else {
                Some(conn)
            }
        };
        if let Some(mut conn) = kept {
            conn.abort().await;
        }
    }

    /// Replaces every secret in `text` with `***`.
    /// Not `todo_events_domain::redact::passwords`, which finds passwords only inside URLs:
    /// a server's answer may repeat the password it was given anywhere, so the known text goes.
    fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |t, secret| {
            t.replace(secret.expose_secret(), "***")
        })
    }
}

/// The TLS settings for the relay of `url` (none for `tls=none`), trusting the certificates
/// of `ca_file` (`SMTP_CA_FILE`) besides the usual roots.
fn tls_parameters(url: &SmtpUrl, ca_file: Option<&Path>) -> Result<Option<TlsParameters>, String> {
    match url.security {
        SmtpSecurity::None => Ok(None),
        _ => {
            let mut builder = TlsParameters::builder(url.host.clone());
            if let Some(path) = ca_file {
                builder = builder.add_root_certificate(ca_certificate(path)?);
            }
            Ok(Some(builder.build_rustls().map_err(|e| {
                format!(
                    "the TLS settings for {} are invalid (SMTP_CA_FILE?): {e}",
                    url.server()
                )
            })?))
        }
    }
}

/// The certificate of the PEM file `path` (`SMTP_CA_FILE`).
fn ca_certificate(path: &Path) -> Result<Certificate, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("SMTP_CA_FILE={} cannot be read: {e}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "SMTP_CA_FILE={} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Certificate::from_pem(&pem).map_err(|e| format!("SMTP_CA_FILE={} is not valid PEM: {e}", path.display()))
}

fn describe_response(r: &Response) -> String {
    format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "))
        .trim_end()
        .to_owned()
}

fn humanize(d: Duration) -> String {
    todo_events_domain::HumanDuration(d).to_string()
}
