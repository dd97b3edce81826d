//! notify's settings, read from the environment (see the configuration table in the README
//! and docs/EMAIL.md). Only reading and checking them is here: what `SMTP_URL` means is the
//! mailer's ([`crate::mail::smtp_url`]).
//!
//! The SMTP password lives in `SMTP_URL`; it is never printed: the `Debug` of every settings
//! type and every error message shows `***` in its place.
//!
//! Each group of settings has a file of its own, read and checked there; this module holds
//! the whole ([`NotifyConfig`]) and the checks across groups (a timeout against the lease):
//! - `smtp_settings` — the SMTP relay ([`SmtpSettings`]);
//! - `channel_settings` — webhooks and Web Push ([`ChannelSettings`], [`VapidSettings`]).

mod channel_settings;
mod smtp_settings;
#[cfg(test)]
mod tests;

pub use channel_settings::{ChannelSettings, VapidSettings, CHANNEL_RETRY_CAP, PATIENCE};
pub use smtp_settings::SmtpSettings;

use std::path::PathBuf;
use std::time::Duration;
use todo_events_domain::HumanDuration;
use todo_events_host::config::{
    clock_skew_tolerance, var, var_or, ConfigError, DEFAULT_CLOCK_SKEW_TOLERANCE,
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
    /// `SECRETS_KEYS`: the keys that open the endpoints' secrets stored sealed
    /// (docs/CHANNELS.md, "Secrets at rest"); none by default.
    pub secrets_keys: todo_events_store::sealed::Keys,
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
            secrets_keys: todo_events_host::config::secrets_keys()?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every setting: the mail's, then the SMTP relay's, then the channels'.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_mail()?;
        self.validate_smtp()?;
        self.validate_channels()
    }

    /// Checks `MAIL_FROM`, `DELIVERY_LEASE`, `APP_URL` and `MAIL_TEMPLATE_DIR`.
    fn validate_mail(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// Checks the SMTP settings: present when `MAILER=smtp`, valid, and short enough for
    /// the lease.
    fn validate_smtp(&self) -> Result<(), ConfigError> {
        match (&self.mailer, &self.smtp) {
            (MailerKind::Smtp, None) => Err(ConfigError(
                "SMTP_URL is not set: MAILER=smtp needs the relay".into(),
            )),
            (_, Some(smtp)) => {
                smtp.validate()?;
                // A delivery may wait SMTP_TIMEOUT for a session and then talk for up to
                // SMTP_TIMEOUT; its claim must outlive both, or a redelivery could send again.
                self.within_lease("SMTP_TIMEOUT", smtp.timeout)
            }
            _ => Ok(()),
        }
    }

    /// Checks the channels' settings and that `WEBHOOK_TIMEOUT` is short enough for the lease.
    fn validate_channels(&self) -> Result<(), ConfigError> {
        self.channels.validate()?;
        // A webhook or push request may take WEBHOOK_TIMEOUT; its claim must outlive it with
        // room to record the outcome, or a redelivery could send again.
        self.within_lease("WEBHOOK_TIMEOUT", self.channels.timeout)
    }

    /// Refuses a timeout (the variable `name`) that twice over does not fit in `DELIVERY_LEASE`.
    fn within_lease(&self, name: &str, timeout: Duration) -> Result<(), ConfigError> {
        if timeout * 2 >= self.delivery_lease.0 {
            return Err(ConfigError(format!(
                "{name}={} is too long for DELIVERY_LEASE={}: the lease must be longer than \
                 twice the timeout",
                HumanDuration(timeout),
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
            secrets_keys: Default::default(),
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
