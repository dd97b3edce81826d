//! Opening an SMTP session: connect and EHLO, STARTTLS as `SMTP_URL` asks, and the login,
//! never in plain text to another machine. Apart from the mail transaction because a session
//! is opened once and then reused for many messages (the pool in the parent module).

use super::failure::Step;
use super::SmtpMailer;
use crate::mail::smtp_url::SmtpSecurity;
use crate::mail::MailError;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::AsyncSmtpConnection;

impl SmtpMailer {
    /// Connects, says EHLO, upgrades with STARTTLS as configured and logs in.
    pub(super) async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let mut conn = self.secure(self.open().await?).await?;
        self.login(&mut conn).await?;
        tracing::debug!(
            "SMTP session opened with {} (encrypted: {}, logged in: {})",
            self.url.server(),
            conn.is_encrypted(),
            self.credentials.is_some()
        );
        Ok(conn)
    }

    /// Connects and says EHLO, in TLS from the first byte for `smtps://`.
    async fn open(&self) -> Result<AsyncSmtpConnection, MailError> {
        let implicit = match self.url.security {
            SmtpSecurity::ImplicitTls => self.tls.clone(),
            _ => None,
        };
        AsyncSmtpConnection::connect_tokio1(
            (self.url.host.as_str(), self.url.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| self.classify(Step::Connect, &e))
    }

    /// Upgrades the connection with STARTTLS as `SMTP_URL` says: when offered, and refused
    /// without it when required.
    async fn secure(&self, mut conn: AsyncSmtpConnection) -> Result<AsyncSmtpConnection, MailError> {
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
        Ok(conn)
    }

    /// Logs in when `SMTP_URL` names a user, never in plain text to a host that is not this
    /// machine.
    async fn login(&self, conn: &mut AsyncSmtpConnection) -> Result<(), MailError> {
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
        Ok(())
    }
}
