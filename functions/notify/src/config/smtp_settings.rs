//! The SMTP mailer's settings (`MAILER=smtp`): `SMTP_URL` and the limits around it. Apart
//! from the rest of the configuration because they are read only for that mailer, and hold
//! the one password notify has.

use crate::mail::smtp_url::SmtpUrl;
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::time::Duration;
use todo_events_domain::HumanDuration;
use todo_events_host::config::{required_secret, var, var_or, ConfigError};

/// The SMTP mailer's settings (`MAILER=smtp`).
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `SMTP_URL`.
    pub url: SmtpUrl,
    /// `SMTP_CA_FILE`: extra trusted CA certificates (PEM), e.g. a private relay's own CA.
    pub ca_file: Option<PathBuf>,
    /// `SMTP_TIMEOUT`: the longest one delivery may wait for a free session, and again the
    /// longest the SMTP conversation for one message may take.
    pub timeout: Duration,
    /// `SMTP_MAX_SESSIONS`: SMTP sessions open at once, at most (also the idle pool size).
    pub max_sessions: usize,
}

impl SmtpSettings {
    /// For tests and embedding: `url` with the defaults of the other settings.
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(Self {
            url: SmtpUrl::parse(url)?,
            ca_file: None,
            timeout: Duration::from_secs(30),
            max_sessions: 4,
        })
    }

    /// Reads `SMTP_URL` (required), `SMTP_CA_FILE`, `SMTP_TIMEOUT`, `SMTP_MAX_SESSIONS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        // Not through `required`: its error message repeats the value, and this one holds a
        // password.
        let raw = required_secret(
            "SMTP_URL",
            "MAILER=smtp needs the relay, e.g. smtp://user:password@mail.example.com:587",
        )?;
        let url = SmtpUrl::parse(raw.expose_secret())
            .map_err(|e| ConfigError(format!("SMTP_URL is invalid: {e}")))?;
        let timeout: HumanDuration = var_or("SMTP_TIMEOUT", HumanDuration(Duration::from_secs(30)))?;
        let max_sessions: usize = var_or("SMTP_MAX_SESSIONS", 4)?;
        let settings = Self {
            url,
            ca_file: var::<PathBuf>("SMTP_CA_FILE")?,
            timeout: timeout.0,
            max_sessions,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks `SMTP_TIMEOUT` (longer than 0s) and `SMTP_MAX_SESSIONS` (1 to 1000).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError("SMTP_TIMEOUT must be longer than 0s".into()));
        }
        if !(1..=1000).contains(&self.max_sessions) {
            return Err(ConfigError(format!(
                "SMTP_MAX_SESSIONS={} is invalid: expected 1 to 1000",
                self.max_sessions
            )));
        }
        Ok(())
    }
}
