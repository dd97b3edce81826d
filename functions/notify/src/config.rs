//! notify's settings (see the configuration table in the README and docs/EMAIL.md).
//!
//! The SMTP password lives in `SMTP_URL`; it is kept in a [`Secret`] and never printed: the
//! `Debug` of every settings type and every error message shows `***` in its place.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use todo_events_domain::HumanDuration;
use todo_events_host::config::{var, var_or, ConfigError};

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

/// A value that must never be shown: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for the one place that needs it (the SMTP login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    ImplicitTls,
    /// `smtp://` (default) or `smtp://…?tls=required`: STARTTLS, and no mail without it
    /// (port 587 by default).
    StartTlsRequired,
    /// `smtp://…?tls=opportunistic`: STARTTLS when the server offers it, plain text
    /// otherwise — but never a password in plain text (port 587 by default).
    StartTlsOpportunistic,
    /// `smtp://…?tls=none`: plain text, for a relay on the same host or pod (port 25 by
    /// default). A password is accepted only for a loopback host.
    None,
}

/// `SMTP_URL`, parsed: `smtp://[user[:password]@]host[:port][/ehlo-name][?tls=required|opportunistic|none]`
/// or `smtps://[user[:password]@]host[:port][/ehlo-name]`. User and password are
/// percent-decoded. `Debug` and `Display` show the URL with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The name sent with EHLO (the URL's path); the machine's host name when absent.
    pub hello_name: Option<String>,
}

impl SmtpUrl {
    /// Parses `SMTP_URL`. Error messages never contain the password (nor the URL as given,
    /// which may carry it).
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("{} is not a URL ({e})", redact_url_text(text.trim())))?;
        let shown = redact_url(&url);
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        if let Some((k, _)) = url.query_pairs().find(|(k, _)| k != "tls") {
            return Err(format!(
                "{shown}: unknown parameter {k:?} (the only one is tls=required|opportunistic|none)"
            ));
        }
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => (SmtpSecurity::ImplicitTls, 465),
            ("smtps", Some(_)) => {
                return Err(format!(
                    "{shown}: smtps:// is always TLS; tls= only applies to smtp://"
                ))
            }
            ("smtp", None | Some("required")) => (SmtpSecurity::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (SmtpSecurity::StartTlsOpportunistic, 587),
            ("smtp", Some("none")) => (SmtpSecurity::None, 25),
            ("smtp", Some(other)) => {
                return Err(format!(
                    "{shown}: tls={other:?} is unknown (required, opportunistic or none)"
                ))
            }
            (scheme, _) => {
                return Err(format!(
                    "{shown}: the scheme must be smtp or smtps, not {scheme:?}"
                ))
            }
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(format!("{shown}: no host")),
        };
        let decode = |s: &str| -> Result<String, String> {
            percent_decode(s).ok_or_else(|| format!("{shown}: the user or password is not valid UTF-8"))
        };
        let username = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?.map(Secret);
        if password.is_some() && username.is_none() {
            return Err(format!("{shown}: a password needs a user name"));
        }
        let path = url.path().trim_matches('/');
        let hello_name = (!path.is_empty()).then(|| path.to_owned());
        let parsed = Self {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            username,
            password,
            hello_name,
        };
        if parsed.security == SmtpSecurity::None && parsed.username.is_some() && !parsed.is_loopback() {
            return Err(format!(
                "{shown}: tls=none would send the password in plain text to a host that is not \
                 this machine; use STARTTLS (tls=required) or smtps://"
            ));
        }
        Ok(parsed)
    }

    /// Is the relay on this machine (where plain text never crosses a network)?
    pub fn is_loopback(&self) -> bool {
        match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        }
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.security == SmtpSecurity::ImplicitTls {
            "smtps"
        } else {
            "smtp"
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.username {
            write!(f, "{user}")?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.server())?;
        if let Some(name) = &self.hello_name {
            write!(f, "/{name}")?;
        }
        match self.security {
            SmtpSecurity::StartTlsOpportunistic => f.write_str("?tls=opportunistic"),
            SmtpSecurity::None => f.write_str("?tls=none"),
            SmtpSecurity::ImplicitTls | SmtpSecurity::StartTlsRequired => Ok(()),
        }
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with its password replaced by `***`.
fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Redacts `scheme://user:password@…` in text that did not even parse as a URL.
fn redact_url_text(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let rest = &text[start..];
    let Some(at) = rest.rfind('@') else {
        return text.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &text[..start], &rest[..colon], &rest[at..]),
        None => text.to_owned(),
    }
}

/// The SMTP mailer's settings (`MAILER=smtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
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
        // Not through `var`: its error message repeats the value, and this one holds a password.
        let raw = match std::env::var("SMTP_URL") {
            Ok(v) if !v.trim().is_empty() => v,
            Ok(_) | Err(std::env::VarError::NotPresent) => {
                return Err(ConfigError(
                    "SMTP_URL is not set: MAILER=smtp needs the relay, e.g. smtp://user:password@mail.example.com:587"
                        .into(),
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError("SMTP_URL is not valid UTF-8".into()))
            }
        };
        let url = SmtpUrl::parse(&raw).map_err(|e| ConfigError(format!("SMTP_URL is invalid: {e}")))?;
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
}

impl NotifyConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mailer = var_or("MAILER", MailerKind::File)?;
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
            delivery_lease: var_or(
                "DELIVERY_LEASE",
                HumanDuration(std::time::Duration::from_secs(120)),
            )?,
            app_url: var_or("APP_URL", "http://localhost:3000".to_owned())?,
            template_dir: var("MAIL_TEMPLATE_DIR")?,
            smtp,
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
    fn smtp_urls_follow_the_documented_forms() {
        let u = SmtpUrl::parse("smtp://relay.example.com").unwrap();
        assert_eq!((u.port, u.security), (587, SmtpSecurity::StartTlsRequired));
        let u = SmtpUrl::parse("smtp://relay.example.com:2525?tls=opportunistic").unwrap();
        assert_eq!((u.port, u.security), (2525, SmtpSecurity::StartTlsOpportunistic));
        let u = SmtpUrl::parse("smtp://localhost?tls=none").unwrap();
        assert_eq!((u.port, u.security), (25, SmtpSecurity::None));
        let u =
            SmtpUrl::parse("smtps://me%40example.com:p%40ss%3Aw%2Frd@mail.example.com/notify.example.com")
                .unwrap();
        assert_eq!((u.port, u.security), (465, SmtpSecurity::ImplicitTls));
        assert_eq!(u.username.as_deref(), Some("me@example.com"));
        assert_eq!(u.password.as_ref().unwrap().expose(), "p@ss:w/rd");
        assert_eq!(u.hello_name.as_deref(), Some("notify.example.com"));
        let u = SmtpUrl::parse("smtp://[::1]:25?tls=none").unwrap();
        assert_eq!(u.server(), "[::1]:25");
        assert!(u.is_loopback());
    }

    #[test]
    fn bad_smtp_urls_are_explained_without_the_password() {
        for (url, expect) in [
            ("http://u:hunter2@relay", "scheme"),
            ("smtp://u:hunter2@relay?tls=maybe", "tls=\"maybe\""),
            ("smtps://u:hunter2@relay?tls=required", "always TLS"),
            ("smtp://u:hunter2@relay?tsl=none", "unknown parameter"),
            ("smtp://u:hunter2@relay.example.com?tls=none", "plain text"),
            ("smtp://u:hunter2@[relay", "not a URL"),
            ("smtp://:hunter2@relay", "user name"),
        ] {
            let err = SmtpUrl::parse(url).unwrap_err();
            assert!(err.contains(expect), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
        // A password is fine in plain text only when the relay is this machine.
        assert!(SmtpUrl::parse("smtp://u:hunter2@127.0.0.1:2525?tls=none").is_ok());
    }

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
        assert_eq!(format!("{:?}", Secret::new("x")), "***");
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
