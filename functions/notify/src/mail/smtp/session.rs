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
    ///
    /// Why the TCP connection is ours for `smtp://` (plain or STARTTLS): lettre 0.11.23 opens
    /// its sockets with Nagle's algorithm on and writes a message's body and its closing
    /// `<CRLF>.<CRLF>` as two writes, so the five bytes wait for the server's delayed ACK
    /// (40 ms on Linux) on every message sent: measured against the tests' aiosmtpd server,
    /// 44 ms a message on one session, 1.5 ms with `TCP_NODELAY`. lettre fixed it upstream
    /// (lettre/lettre#1159, merged, not yet released); `connect_with_transport` is its way to
    /// hand it a socket of our own. `smtps://` still goes through lettre's own connect (the
    /// TLS handshake is inside it) and pays the 40 ms until that release.
    async fn open(&self) -> Result<AsyncSmtpConnection, MailError> {
        if let SmtpSecurity::ImplicitTls = self.url.security {
            return AsyncSmtpConnection::connect_tokio1(
                (self.url.host.as_str(), self.url.port),
                Some(self.timeout),
                &self.hello,
                self.tls.clone(),
                None,
            )
            .await
            .map_err(|e| self.classify(Step::Connect, &e));
        }
        let stream = self.tcp().await?;
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
            .await
            .map_err(|e| self.classify(Step::Connect, &e))
    }

    /// A TCP connection to the server, Nagle off: each address the host resolves to in turn,
    /// each within `SMTP_TIMEOUT`, as lettre's own connect does.
    async fn tcp(&self) -> Result<tokio::net::TcpStream, MailError> {
        let server = self.url.server();
        let failed = |why: String| {
            MailError::Transient(self.scrub(&format!("could not talk to the SMTP server {server}: {why}")))
        };
        let addresses = tokio::time::timeout(
            self.timeout,
            tokio::net::lookup_host((self.url.host.as_str(), self.url.port)),
        )
        .await
        .map_err(|_| failed("resolving its name timed out".into()))?
        .map_err(|e| failed(format!("resolving its name failed: {e}")))?;
        let mut last = failed("its name resolves to no address".into());
        for address in addresses {
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    stream
                        .set_nodelay(true)
                        .map_err(|e| failed(format!("setting TCP_NODELAY failed: {e}")))?;
                    return Ok(stream);
                }
                Ok(Err(e)) => last = failed(format!("connecting to {address} failed: {e}")),
                Err(_) => last = failed(format!("connecting to {address} timed out")),
            }
        }
        Err(last)
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

#[cfg(test)]
mod tests {
    use crate::config::SmtpSettings;
    use crate::mail::smtp::SmtpMailer;

    /// The socket notify hands lettre has Nagle off (what keeps each message from waiting
    /// for the relay's delayed ACK; docs/PERFORMANCE.md item 19).
    #[tokio::test]
    async fn sessions_run_without_nagle() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let settings = SmtpSettings::new(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
        let mailer = SmtpMailer::new(&settings).unwrap();
        let stream = mailer.tcp().await.unwrap();
        assert!(stream.nodelay().unwrap(), "TCP_NODELAY is off");
    }

    /// A server that is not there: the error names it and is transient (tried again later).
    #[tokio::test]
    async fn no_server_is_a_transient_error_naming_it() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let settings = SmtpSettings::new(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
        let mailer = SmtpMailer::new(&settings).unwrap();
        match mailer.tcp().await {
            Err(crate::mail::MailError::Transient(text)) => assert!(
                text.contains(&format!("could not talk to the SMTP server 127.0.0.1:{port}"))
                    && text.contains("refused"),
                "{text}"
            ),
            other => panic!("expected a transient error, got {other:?}"),
        }
    }
}
