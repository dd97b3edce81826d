//! notify's settings (see the configuration table in the README).

use std::path::PathBuf;
use todo_events_domain::HumanDuration;
use todo_events_host::config::{var_or, ConfigError};

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailerKind {
    /// `.eml` files in `OUTBOX_DIR`.
    File,
    /// The formatted message on standard output.
    Stdout,
}

impl std::str::FromStr for MailerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "file" => Ok(Self::File),
            "stdout" => Ok(Self::Stdout),
            "smtp" => Err("smtp is not built into this version yet; use file or stdout".into()),
            other => Err(format!("unknown mailer {other:?} (file or stdout)")),
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
}

impl NotifyConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let cfg = Self {
            mailer: var_or("MAILER", MailerKind::File)?,
            outbox_dir: var_or("OUTBOX_DIR", PathBuf::from("outbox"))?,
            mail_from: var_or(
                "MAIL_FROM",
                "todo-events <reminders@todo-events.localhost>".to_owned(),
            )?,
            delivery_lease: var_or(
                "DELIVERY_LEASE",
                HumanDuration(std::time::Duration::from_secs(120)),
            )?,
            app_url: var_or("APP_URL", "http://localhost:3000".to_owned())?,
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
        }
    }
}
