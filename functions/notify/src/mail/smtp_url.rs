//! `SMTP_URL`, parsed: where the SMTP mailer connects, how the connection is protected and
//! with which login. It lives with the mailer because it is the mailer's vocabulary; the
//! configuration only reads the variable.
//!
//! The password is a [`SecretString`] (the `secrecy` crate): its `Debug` never shows it, and
//! this module's `Display`, `Debug` and error messages put `***` in its place (error messages
//! for text that is not even a URL through the workspace's one text redactor,
//! [`todo_events_domain::redact`]).

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use todo_events_domain::redact;

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
#[derive(Clone)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The name sent with EHLO (the URL's path); the machine's host name when absent.
    pub hello_name: Option<String>,
}

impl SmtpUrl {
    /// Parses `SMTP_URL`. Error messages never contain the password (nor the URL as given,
    /// which may carry it).
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("{} is not a URL ({e})", redact::passwords(text.trim())))?;
        let shown = redact::passwords(url.as_str());
        let (security, default_port) = security(&url, &shown)?;
        let host = host(&url, &shown)?;
        let (username, password) = login(&url, &shown)?;
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
        parsed.refuse_plain_text_password(&shown)?;
        Ok(parsed)
    }

    /// Refuses a login over `tls=none` to a host that is not this machine.
    fn refuse_plain_text_password(&self, shown: &str) -> Result<(), String> {
        if self.security == SmtpSecurity::None && self.username.is_some() && !self.is_loopback() {
            return Err(format!(
                "{shown}: tls=none would send the password in plain text to a host that is not \
                 this machine; use STARTTLS (tls=required) or smtps://"
            ));
        }
        Ok(())
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

    /// The password itself, for the one place that needs it (the SMTP login).
    pub fn expose_password(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose_secret())
    }
}

/// The protection and default port `url` asks for (its scheme and `tls=`, the one parameter
/// there is); `shown` is the URL as errors name it.
fn security(url: &url::Url, shown: &str) -> Result<(SmtpSecurity, u16), String> {
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    if let Some((k, _)) = url.query_pairs().find(|(k, _)| k != "tls") {
        return Err(format!(
            "{shown}: unknown parameter {k:?} (the only one is tls=required|opportunistic|none)"
        ));
    }
    match (url.scheme(), tls.as_deref()) {
        ("smtps", None) => Ok((SmtpSecurity::ImplicitTls, 465)),
        ("smtps", Some(_)) => Err(format!(
            "{shown}: smtps:// is always TLS; tls= only applies to smtp://"
        )),
        ("smtp", None | Some("required")) => Ok((SmtpSecurity::StartTlsRequired, 587)),
        ("smtp", Some("opportunistic")) => Ok((SmtpSecurity::StartTlsOpportunistic, 587)),
        ("smtp", Some("none")) => Ok((SmtpSecurity::None, 25)),
        ("smtp", Some(other)) => Err(format!(
            "{shown}: tls={other:?} is unknown (required, opportunistic or none)"
        )),
        (scheme, _) => Err(format!(
            "{shown}: the scheme must be smtp or smtps, not {scheme:?}"
        )),
    }
}

/// The relay's host as connected to (an IPv6 address without its brackets).
fn host(url: &url::Url, shown: &str) -> Result<String, String> {
    match url.host() {
        Some(url::Host::Ipv6(ip)) => Ok(ip.to_string()),
        Some(host) => Ok(host.to_string()),
        None => Err(format!("{shown}: no host")),
    }
}

/// The user name and password, percent-decoded; a password needs a user name.
fn login(url: &url::Url, shown: &str) -> Result<(Option<String>, Option<SecretString>), String> {
    let username = match url.username() {
        "" => None,
        u => Some(decode(u, shown)?),
    };
    let password = url
        .password()
        .map(|p| decode(p, shown))
        .transpose()?
        .map(SecretString::from);
    if password.is_some() && username.is_none() {
        return Err(format!("{shown}: a password needs a user name"));
    }
    Ok((username, password))
}

/// A user name or password as written in the URL (which keeps them percent-encoded), decoded.
fn decode(s: &str, shown: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|d| d.into_owned())
        .map_err(|_| format!("{shown}: the user or password is not valid UTF-8"))
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
        assert_eq!(u.expose_password().unwrap(), "p@ss:w/rd");
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
            ("smtp://u:hunter2/x@relay", "not a URL"),
        ] {
            let err = SmtpUrl::parse(url).unwrap_err();
            assert!(err.contains(expect), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
        // A password is fine in plain text only when the relay is this machine.
        assert!(SmtpUrl::parse("smtp://u:hunter2@127.0.0.1:2525?tls=none").is_ok());
    }
}
