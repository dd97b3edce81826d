//! One mail transaction on an open session: `MAIL FROM` with the parameters the message
//! needs, `RCPT TO` for each recipient, `DATA` and the message. Apart from the session
//! because it runs once per message, and its error says whether the session survived it.

use super::failure::Step;
use super::SmtpMailer;
use crate::mail::MailError;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

impl SmtpMailer {
    /// One mail transaction. The error says whether the server answered (the session is
    /// still usable) or the connection failed.
    pub(super) async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<Response, (MailError, bool)> {
        let options = self.mail_options(conn, envelope, bytes)?;
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

    /// The `MAIL FROM` parameters the message needs (SMTPUTF8 for non-ASCII addresses,
    /// 8BITMIME for a non-ASCII body); a server without them cannot take it at all.
    fn mail_options(
        &self,
        conn: &AsyncSmtpConnection,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<Vec<MailParameter>, (MailError, bool)> {
        let mut options = vec![];
        let ascii_addresses = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        if !ascii_addresses {
            self.require(conn, Extension::SmtpUtfEight, "non-ASCII addresses (no SMTPUTF8)")?;
            options.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii() {
            self.require(conn, Extension::EightBitMime, "8-bit messages (no 8BITMIME)")?;
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        Ok(options)
    }

    /// Fails for good (the server answered: the session is fine) when the server does not
    /// offer `extension`, which the message needs to carry `what`.
    fn require(
        &self,
        conn: &AsyncSmtpConnection,
        extension: Extension,
        what: &str,
    ) -> Result<(), (MailError, bool)> {
        if conn.server_info().supports_feature(extension) {
            return Ok(());
        }
        Err((
            MailError::Permanent(format!(
                "the SMTP server {} cannot take {what}",
                self.url.server()
            )),
            true,
        ))
    }
}
