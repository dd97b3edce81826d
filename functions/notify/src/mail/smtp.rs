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

use super::smtp_url::{SmtpSecurity, SmtpUrl};
use super::MailError;
use crate::config::SmtpSettings;
use lettre::address::Envelope;
use lettre::message::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::Address;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long an idle session is kept for reuse (servers drop idle clients after 5 minutes
/// or so; RFC 5321 §4.5.3.2.7).
pub const IDLE_FOR: Duration = Duration::from_secs(60);

/// A step of the SMTP conversation (for classifying and explaining failures).
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Connect,
    StartTls,
    Login,
    Sender(Option<&'a Address>),
    Recipient(&'a Address),
    Data,
    Message,
}

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
        let tls = match url.security {
            SmtpSecurity::None => None,
            _ => {
                let mut builder = TlsParameters::builder(url.host.clone());
                if let Some(path) = &settings.ca_file {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("SMTP_CA_FILE={} cannot be read: {e}", path.display()))?;
                    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                        return Err(format!(
                            "SMTP_CA_FILE={} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            path.display()
                        ));
                    }
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| format!("SMTP_CA_FILE={} is not valid PEM: {e}", path.display()))?;
                    builder = builder.add_root_certificate(cert);
                }
                Some(builder.build_rustls().map_err(|e| {
                    format!(
                        "the TLS settings for {} are invalid (SMTP_CA_FILE?): {e}",
                        url.server()
                    )
                })?)
            }
        };
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

    /// One mail transaction. The error says whether the server answered (the session is
    /// still usable) or the connection failed.
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<Response, (MailError, bool)> {
        let mut options = vec![];
        let ascii_addresses = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        if !ascii_addresses {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err((
                    MailError::Permanent(format!(
                        "the SMTP server {} cannot take non-ASCII addresses (no SMTPUTF8)",
                        self.url.server()
                    )),
                    true,
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err((
                    MailError::Permanent(format!(
                        "the SMTP server {} cannot take 8-bit messages (no 8BITMIME)",
                        self.url.server()
                    )),
                    true,
                ));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let step = |step: Step<'_>, e: lettre::transport::smtp::Error| {
            let answered = e.status().is_some();
            (self.classify(step, &e), answered)
        };
        conn.command(Mail::new(envelope.from().cloned(), options))
            .await
            .map_err(|e| step(Step::Sender(envelope.from()), e))?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![]))
                .await
                .map_err(|e| step(Step::Recipient(to), e))?;
        }
        conn.command(Data).await.map_err(|e| step(Step::Data, e))?;
        conn.message(bytes).await.map_err(|e| step(Step::Message, e))
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

    /// Connects, says EHLO, upgrades with STARTTLS as configured and logs in.
    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let implicit = match self.url.security {
            SmtpSecurity::ImplicitTls => self.tls.clone(),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.url.host.as_str(), self.url.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| self.classify(Step::Connect, &e))?;
        if let (SmtpSecurity::StartTlsRequired | SmtpSecurity::StartTlsOpportunistic, Some(tls)) =
            (self.url.security, &self.tls)
        {
            if conn.can_starttls() {
                if let Err(e) = conn.starttls(tls.clone(), &self.hello).await {
                    // Not `abort`: after a failed handshake lettre has no stream left to
                    // say QUIT on (and asserts so in debug builds). Dropping closes it.
                    drop(conn);
                    return Err(self.classify(Step::StartTls, &e));
                }
            } else if self.url.security == SmtpSecurity::StartTlsRequired {
                conn.abort().await;
                return Err(MailError::Transient(format!(
                    "the SMTP server {} does not offer STARTTLS, which SMTP_URL requires \
                     (use ?tls=opportunistic or ?tls=none only for a relay you trust)",
                    self.url.server()
                )));
            }
        }
        if let Some(credentials) = &self.credentials {
            if !conn.is_encrypted() && !self.url.is_loopback() {
                conn.abort().await;
                return Err(MailError::Transient(format!(
                    "the SMTP server {} did not offer STARTTLS; the password is not sent in plain text",
                    self.url.server()
                )));
            }
            if let Err(e) = conn
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
            {
                conn.abort().await;
                return Err(self.classify(Step::Login, &e));
            }
        }
        tracing::debug!(
            "SMTP session opened with {} (encrypted: {}, logged in: {})",
            self.url.server(),
            conn.is_encrypted(),
            self.credentials.is_some()
        );
        Ok(conn)
    }

    /// Words and outcome for a failed step: `5xx` on the recipient or the message is
    /// permanent, everything else transient.
    fn classify(&self, step: Step<'_>, e: &lettre::transport::smtp::Error) -> MailError {
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

    /// Replaces every secret in `text` with `***`.
    /// Not `todo_events_domain::redact::passwords`, which finds passwords only inside URLs:
    /// a server's answer may repeat the password it was given anywhere, so the known text goes.
    fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |t, secret| {
            t.replace(secret.expose_secret(), "***")
        })
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

fn describe_response(r: &Response) -> String {
    format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "))
        .trim_end()
        .to_owned()
}

fn humanize(d: Duration) -> String {
    todo_events_domain::HumanDuration(d).to_string()
}
