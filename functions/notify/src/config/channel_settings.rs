//! The settings of the channels beside e-mail (webhooks and Web Push, docs/CHANNELS.md):
//! the target policy, the timeouts, the VAPID key, the retries. Apart from the mail settings
//! because they are read and checked whatever the mailer.

use crate::channels::guard::{AllowedPorts, DenyList};
use crate::channels::webpush::Vapid;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use todo_events_domain::HumanDuration;
use todo_events_host::config::{env_var, var, var_or, ConfigError, Flag};

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
    /// Reads `VAPID_PRIVATE_KEY` and `VAPID_SUBJECT`: Web Push off when neither is set, an
    /// error naming the other when only one is.
    fn from_env() -> Result<Option<Self>, ConfigError> {
        // Read as it is (never parsed, so no message can quote it).
        let key = env_var("VAPID_PRIVATE_KEY").ok().filter(|k| !k.trim().is_empty());
        let subject: Option<String> = var("VAPID_SUBJECT")?;
        match (key, subject) {
            (None, None) => Ok(None),
            (Some(key), Some(subject)) => Ok(Some(VapidSettings {
                private_key: SecretString::from(key),
                subject,
            })),
            (None, Some(_)) => Err(ConfigError(
                "VAPID_SUBJECT is set but VAPID_PRIVATE_KEY is not: Web Push needs both \
                 (`notify vapid-keys` makes a key pair)"
                    .into(),
            )),
            (Some(_), None) => Err(ConfigError(
                "VAPID_SUBJECT is not set: Web Push needs, beside VAPID_PRIVATE_KEY, a contact \
                 for push services (mailto:… or https://…)"
                    .into(),
            )),
        }
    }

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
        let vapid = VapidSettings::from_env()?;
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

    /// Checks `WEBHOOK_TIMEOUT`, `PUSH_TTL`, the retry settings and the VAPID key.
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
