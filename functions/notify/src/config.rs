//! notify's settings, read from the environment (see the configuration table in the README
//! and docs/EMAIL.md). Only reading and checking them is here: what `SMTP_URL` means is the
//! mailer's ([`crate::mail::smtp_url`]).
//!
//! The SMTP password lives in `SMTP_URL`; it is never printed: the `Debug` of every settings
//! type and every error message shows `***` in its place.

use crate::channels::guard::{AllowedPorts, DenyList};
use crate::channels::webpush::Vapid;
use crate::mail::smtp_url::SmtpUrl;
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::time::Duration;
use todo_events_domain::HumanDuration;
use todo_events_host::config::{
    clock_skew_tolerance, env_var, required_secret, var, var_or, ConfigError, Flag,
    DEFAULT_CLOCK_SKEW_TOLERANCE,
};

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailerKind {
    /// `.eml` files in `OUTBOX_DIR`.
    File,
    /// The formatted message on standard output.
    Stdout,
    /// An SMTP relay (`SMTP_URL`).
    Smtp,
}

impl std::str::FromStr for MailerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "file" => Ok(Self::File),
            "stdout" => Ok(Self::Stdout),
            "smtp" => Ok(Self::Smtp),
            other => Err(format!("unknown mailer {other:?} (smtp, file or stdout)")),
        }
    }
}

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

/// The channels beside e-mail (docs/CHANNELS.md).
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// `WEBHOOK_ALLOW_PRIVATE`: webhook and push targets may be `http://` and loopback or
    /// private addresses (tests, local use; notify says so at start). Off by default.
    pub allow_private: bool,
    /// `WEBHOOK_ALLOWED_PORTS`: the ports a target may name. Unset: 443, or any port when
    /// `allow_private`; a list set applies in both cases.
    pub allowed_ports: AllowedPorts,
    /// `WEBHOOK_DENY_CIDRS`: ranges never reached, `allow_private` or not (e.g. the cluster's
    /// pod and service ranges where those are public addresses).
    pub deny_cidrs: DenyList,
    /// `WEBHOOK_TIMEOUT`: the longest one webhook or push request may take, connecting
    /// included.
    pub timeout: Duration,
    /// `VAPID_PRIVATE_KEY` and `VAPID_SUBJECT`: Web Push is on when both are set.
    pub vapid: Option<VapidSettings>,
    /// `PUSH_TTL`: how long a push service keeps a message for a browser that is offline
    /// (RFC 8030 `TTL`); a reminder later than that is no longer worth showing.
    pub push_ttl: Duration,
    /// `CHANNEL_RETRY_FIRST`: how long a webhook or push delivery that failed transiently
    /// waits before its first retry (or the receiver's `Retry-After`, if longer); each
    /// further retry waits twice as long, at most [`CHANNEL_RETRY_CAP`].
    pub retry_first: Duration,
    /// `CHANNEL_RETRY_ATTEMPTS`: attempts of one webhook or push delivery, the first
    /// included, before it is given up (recorded `failed`, "gave up after N attempts").
    pub retry_attempts: i32,
    /// How long a batch waits for its webhooks and pushes before leaving those still going
    /// on to finish alone (`crate::handler`'s send step): [`PATIENCE`]. Not read from the
    /// environment; embedders and tests may change it.
    pub patience: Duration,
}

/// A batch's patience with its webhooks and pushes: endpoints that answer at all mostly do
/// well within it, and a partition's next events wait at most this long for a slow one.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// The longest wait between two retries of one webhook or push delivery.
pub const CHANNEL_RETRY_CAP: Duration = Duration::from_secs(3600);
/// `CHANNEL_RETRY_ATTEMPTS`' bounds.
const RETRY_ATTEMPTS: std::ops::RangeInclusive<i32> = 1..=50;

/// The application server's VAPID key (never shown: `SecretString`) and contact.
#[derive(Debug, Clone)]
pub struct VapidSettings {
    pub private_key: SecretString,
    pub subject: String,
}

impl VapidSettings {
    /// The signing key, checked.
    pub fn vapid(&self) -> Result<Vapid, String> {
        Vapid::new(self.private_key.expose_secret(), &self.subject)
    }
}

/// `PUSH_TTL`'s longest: the four weeks push services keep a message at most.
const MAX_PUSH_TTL: Duration = Duration::from_secs(28 * 24 * 3600);

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            allowed_ports: AllowedPorts::DEFAULT,
            deny_cidrs: DenyList::default(),
            timeout: Duration::from_secs(10),
            vapid: None,
            push_ttl: Duration::from_secs(3600),
            retry_first: Duration::from_secs(30),
            retry_attempts: 8,
            patience: PATIENCE,
        }
    }
}

impl ChannelSettings {
    /// Reads `WEBHOOK_ALLOW_PRIVATE`, `WEBHOOK_ALLOWED_PORTS`, `WEBHOOK_DENY_CIDRS`, `WEBHOOK_TIMEOUT`,
    /// `VAPID_PRIVATE_KEY`, `VAPID_SUBJECT`, `PUSH_TTL`, `CHANNEL_RETRY_FIRST` and `CHANNEL_RETRY_ATTEMPTS`. `WEBHOOK_TIMEOUT`'s default is 10 s, or a third of
    /// `lease` (`DELIVERY_LEASE`) when that is shorter, so that a short lease set alone
    /// still starts.
    pub fn from_env(lease: Duration) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let allow_private: Flag = var_or("WEBHOOK_ALLOW_PRIVATE", Flag(defaults.allow_private))?;
        let allowed_ports: AllowedPorts = var_or("WEBHOOK_ALLOWED_PORTS", defaults.allowed_ports)?;
        let deny_cidrs: DenyList = var_or("WEBHOOK_DENY_CIDRS", defaults.deny_cidrs)?;
        let default_timeout = match lease.is_zero() {
            true => defaults.timeout,
            false => defaults.timeout.min(lease / 3),
        };
        let timeout: HumanDuration = var_or("WEBHOOK_TIMEOUT", HumanDuration(default_timeout))?;
        let push_ttl: HumanDuration = var_or("PUSH_TTL", HumanDuration(defaults.push_ttl))?;
        let retry_first: HumanDuration = var_or("CHANNEL_RETRY_FIRST", HumanDuration(defaults.retry_first))?;
        let retry_attempts: i32 = var_or("CHANNEL_RETRY_ATTEMPTS", defaults.retry_attempts)?;
        // Read as it is (never parsed, so no message can quote it).
        let key = env_var("VAPID_PRIVATE_KEY").ok().filter(|k| !k.trim().is_empty());
        let subject: Option<String> = var("VAPID_SUBJECT")?;
        let vapid = match (key, subject) {
            (None, None) => None,
            (Some(key), Some(subject)) => Some(VapidSettings {
                private_key: SecretString::from(key),
                subject,
            }),
            (None, Some(_)) => {
                return Err(ConfigError(
                    "VAPID_SUBJECT is set but VAPID_PRIVATE_KEY is not: Web Push needs both \
                     (`notify vapid-keys` makes a key pair)"
                        .into(),
                ))
            }
            (Some(_), None) => {
                return Err(ConfigError(
                    "VAPID_SUBJECT is not set: Web Push needs, beside VAPID_PRIVATE_KEY, a contact \
                     for push services (mailto:… or https://…)"
                        .into(),
                ))
            }
        };
        let settings = Self {
            allow_private: allow_private.0,
            allowed_ports,
            deny_cidrs,
            timeout: timeout.0,
            vapid,
            push_ttl: push_ttl.0,
            retry_first: retry_first.0,
            retry_attempts,
            patience: defaults.patience,
        };
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError("WEBHOOK_TIMEOUT must be longer than 0s".into()));
        }
        if self.push_ttl > MAX_PUSH_TTL {
            return Err(ConfigError(format!(
                "PUSH_TTL={} is too long: push services keep a message 28d at most",
                HumanDuration(self.push_ttl)
            )));
        }
        if self.retry_first < Duration::from_secs(1) || self.retry_first > CHANNEL_RETRY_CAP {
            return Err(ConfigError(format!(
                "CHANNEL_RETRY_FIRST={} is out of bounds: from 1s to 1h",
                HumanDuration(self.retry_first)
            )));
        }
        if !RETRY_ATTEMPTS.contains(&self.retry_attempts) {
            return Err(ConfigError(format!(
                "CHANNEL_RETRY_ATTEMPTS={} is out of bounds: from {} to {}",
                self.retry_attempts,
                RETRY_ATTEMPTS.start(),
                RETRY_ATTEMPTS.end()
            )));
        }
        if let Some(vapid) = &self.vapid {
            vapid.vapid().map_err(ConfigError)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub mailer: MailerKind,
    pub outbox_dir: PathBuf,
    /// `MAIL_FROM`: the sender address.
    pub mail_from: String,
    /// `DELIVERY_LEASE`: how long a claimed delivery stays with its claimer before another
    /// delivery of the same event may take it over (after a crash).
    pub delivery_lease: HumanDuration,
    /// `APP_URL`: the todo app, for links in messages.
    pub app_url: String,
    /// `MAIL_TEMPLATE_DIR`: templates that replace the built-in ones (file by file).
    pub template_dir: Option<PathBuf>,
    /// The SMTP relay; required when `mailer` is [`MailerKind::Smtp`].
    pub smtp: Option<SmtpSettings>,
    /// Webhooks and Web Push.
    pub channels: ChannelSettings,
    /// `CLOCK_SKEW_TOLERANCE`: how long before its `remind_at` a reminder event may arrive
    /// and still be sent (see `todo_events_host::config::clock_skew_tolerance`).
    pub clock_skew: chrono::Duration,
}

impl NotifyConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mailer = var_or("MAILER", MailerKind::File)?;
        let delivery_lease: HumanDuration = var_or(
            "DELIVERY_LEASE",
            HumanDuration(std::time::Duration::from_secs(120)),
        )?;
        let smtp = match mailer {
            MailerKind::Smtp => Some(SmtpSettings::from_env()?),
            MailerKind::File | MailerKind::Stdout => None,
        };
        let cfg = Self {
            mailer,
            outbox_dir: var_or("OUTBOX_DIR", PathBuf::from("outbox"))?,
            mail_from: var_or(
                "MAIL_FROM",
                "todo-events <reminders@todo-events.localhost>".to_owned(),
            )?,
            delivery_lease,
            app_url: var_or("APP_URL", "http://localhost:3000".to_owned())?,
            template_dir: var("MAIL_TEMPLATE_DIR")?,
            smtp,
            channels: ChannelSettings::from_env(delivery_lease.0)?,
            clock_skew: clock_skew_tolerance()?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mail_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError(format!("MAIL_FROM={:?} is invalid: {e}", self.mail_from)))?;
        if self.delivery_lease.0.is_zero() {
            return Err(ConfigError("DELIVERY_LEASE must be longer than 0s".into()));
        }
        match url::Url::parse(&self.app_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(ConfigError(format!(
                    "APP_URL={:?} is invalid: expected an http:// or https:// URL",
                    self.app_url
                )))
            }
        }
        if let Some(dir) = &self.template_dir {
            if !dir.is_dir() {
                return Err(ConfigError(format!(
                    "MAIL_TEMPLATE_DIR={} is not a directory",
                    dir.display()
                )));
            }
        }
        match (&self.mailer, &self.smtp) {
            (MailerKind::Smtp, None) => {
                return Err(ConfigError(
                    "SMTP_URL is not set: MAILER=smtp needs the relay".into(),
                ))
            }
            (_, Some(smtp)) => {
                smtp.validate()?;
                // A delivery may wait SMTP_TIMEOUT for a session and then talk for up to
                // SMTP_TIMEOUT; its claim must outlive both, or a redelivery could send again.
                if smtp.timeout * 2 >= self.delivery_lease.0 {
                    return Err(ConfigError(format!(
                        "SMTP_TIMEOUT={} is too long for DELIVERY_LEASE={}: the lease must be longer than \
                         twice the timeout",
                        HumanDuration(smtp.timeout),
                        self.delivery_lease
                    )));
                }
            }
            _ => {}
        }
        self.channels.validate()?;
        // A webhook or push request may take WEBHOOK_TIMEOUT; its claim must outlive it with
        // room to record the outcome, or a redelivery could send again.
        if self.channels.timeout * 2 >= self.delivery_lease.0 {
            return Err(ConfigError(format!(
                "WEBHOOK_TIMEOUT={} is too long for DELIVERY_LEASE={}: the lease must be longer than \
                 twice the timeout",
                HumanDuration(self.channels.timeout),
                self.delivery_lease
            )));
        }
        Ok(())
    }

    /// Local defaults: file mailer into `outbox_dir`.
    pub fn local(outbox_dir: PathBuf) -> Self {
        Self {
            mailer: MailerKind::File,
            outbox_dir,
            mail_from: "todo-events <reminders@todo-events.localhost>".into(),
            delivery_lease: HumanDuration(std::time::Duration::from_secs(120)),
            app_url: "http://localhost:3000".into(),
            template_dir: None,
            smtp: None,
            channels: ChannelSettings::default(),
            clock_skew: DEFAULT_CLOCK_SKEW_TOLERANCE,
        }
    }

    /// Local defaults with the SMTP mailer (tests, embedding).
    pub fn smtp(settings: SmtpSettings) -> Self {
        Self {
            mailer: MailerKind::Smtp,
            smtp: Some(settings),
            ..Self::local(PathBuf::from("outbox"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_password() {
        let s = SmtpSettings::new("smtp://relay-user:hunter2@mail.example.com:587").unwrap();
        let cfg = NotifyConfig::smtp(s);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("smtp://relay-user:***@mail.example.com:587"),
            "{debug}"
        );
        assert_eq!(
            cfg.smtp.as_ref().unwrap().url.to_string(),
            "smtp://relay-user:***@mail.example.com:587"
        );
    }

    #[test]
    fn from_env_reads_smtp_settings_and_never_echoes_the_password() {
        // One test touches these variables, so tests in parallel do not race on them.
        let set = |k: &str, v: &str| std::env::set_var(k, v);
        set("MAILER", "smtp");
        set("SMTP_URL", "smtp://u:hunter2@relay.example.com?tls=bogus");
        let err = NotifyConfig::from_env().unwrap_err().to_string();
        assert!(err.contains("SMTP_URL") && !err.contains("hunter2"), "{err}");

        set("SMTP_URL", "smtp://u:hunter2@relay.example.com");
        set("SMTP_TIMEOUT", "10s");
        set("SMTP_MAX_SESSIONS", "2");
        let cfg = NotifyConfig::from_env().unwrap();
        let smtp = cfg.smtp.as_ref().unwrap();
        assert_eq!((smtp.timeout, smtp.max_sessions), (Duration::from_secs(10), 2));

        set("SMTP_TIMEOUT", "1m");
        let err = NotifyConfig::from_env().unwrap_err().to_string();
        assert!(err.contains("DELIVERY_LEASE"), "{err}");
        set("SMTP_TIMEOUT", "10s");

        set("SMTP_MAX_SESSIONS", "0");
        let err = NotifyConfig::from_env().unwrap_err().to_string();
        assert!(err.contains("SMTP_MAX_SESSIONS"), "{err}");
        set("SMTP_MAX_SESSIONS", "2");

        set("APP_URL", "javascript:alert(1)");
        let err = NotifyConfig::from_env().unwrap_err().to_string();
        assert!(err.contains("APP_URL"), "{err}");
        std::env::remove_var("APP_URL");

        std::env::remove_var("SMTP_URL");
        let err = NotifyConfig::from_env().unwrap_err().to_string();
        assert!(err.contains("SMTP_URL is not set"), "{err}");

        for k in ["MAILER", "SMTP_TIMEOUT", "SMTP_MAX_SESSIONS"] {
            std::env::remove_var(k);
        }
        assert_eq!(NotifyConfig::from_env().unwrap().mailer, MailerKind::File);
    }
}
