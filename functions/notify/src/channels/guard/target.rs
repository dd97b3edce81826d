//! The check of a target URL as written (scheme, credentials, an IP-address host, port) and
//! the one way a URL is shown. Apart from the address tables because it is about the URL,
//! not about addresses: what a name resolves to is checked by the resolver.

use super::{Guard, Refused};
use std::net::IpAddr;
use url::{Host, Url};

impl Guard {
    /// Checks a target URL: `https` (or `http` when private targets are allowed), a host, an
    /// allowed port, no user name or password, and for an IP-address host an address the
    /// policy allows. The error names the URL without its path (webhook URLs often carry
    /// their secret in the path).
    pub fn check_url(&self, raw: &str) -> Result<Url, Refused> {
        let url = Url::parse(raw).map_err(|e| Refused(format!("the target is not a URL: {e}")))?;
        let shown = redacted(&url);
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            other => {
                return Err(Refused(format!(
                    "the target {shown} is {other}://: only https:// targets are allowed"
                )))
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused(format!(
                "the target {shown} carries a user name or password; put credentials in the \
                 endpoint's secret"
            )));
        }
        let ip = match url.host() {
            None => return Err(Refused(format!("the target {shown} has no host"))),
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
        };
        if let Some(why) = ip.and_then(|ip| self.refuses(ip)) {
            return Err(Refused(format!("the target {shown} is {why}")));
        }
        // http and https always have a known default port.
        let port = url.port_or_known_default().unwrap_or(0);
        if !self.ports.allows(port, self.allow_private) {
            return Err(Refused(format!(
                "the target {shown} is on port {port}: the allowed ports are {} (WEBHOOK_ALLOWED_PORTS)",
                self.ports.shown()
            )));
        }
        Ok(url)
    }
}

/// A URL as notify shows it: scheme, host and port, never the path, query or credentials
/// (Slack and Discord webhook URLs are secrets in their path).
/// Not `todo_events_domain::redact::passwords`, which keeps path and query and hides only a
/// password: here the whole URL but its server is the secret.
pub fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}
