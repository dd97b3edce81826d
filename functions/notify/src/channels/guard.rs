//! Which targets notify may reach. Webhook and push URLs come from users: without a check a
//! user could point notify at the cluster's own services, the node's loopback or the cloud's
//! metadata endpoint (server-side request forgery) and read or trigger what only the cluster
//! should. So a target must be `https`, and every address its host resolves to must be public
//! ([`forbidden`]). `WEBHOOK_ALLOW_PRIVATE=true` lifts both, for tests and local use (notify
//! says so at start).
//!
//! The addresses are checked by the HTTP client's own resolver ([`Guard`] implements
//! `reqwest::dns::Resolve`), so the addresses checked are the ones connected to: a name that
//! resolves to a public address when looked at and to a private one when connecting (DNS
//! rebinding) is refused as well. A host written as an IP address reaches no resolver and is
//! checked with the URL ([`Guard::check_url`]). Redirects are never followed (the client's
//! policy), so a public target cannot hand notify on to a private one.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// The target policy: strict unless `WEBHOOK_ALLOW_PRIVATE=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub allow_private: bool,
}

/// A target refused by the policy: permanent, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Guard {
    /// Checks a target URL: `https` (or `http` when private targets are allowed), a host, no
    /// user name or password, and for an IP-address host a public address. The error names
    /// the URL without its path (webhook URLs often carry their secret in the path).
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
        Ok(url)
    }

    /// Why the policy refuses `ip`, if it does.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_private {
            None
        } else {
            forbidden(ip)
        }
    }
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = *self;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some((ip, why)) = addrs
                .iter()
                .find_map(|a| guard.refuses(a.ip()).map(|why| (a.ip(), why)))
            {
                return Err(Box::new(Refused(format!("{host} resolves to {ip}, {why}"))) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Why `ip` is no place to send a user's notifications to, or `None` for a public address:
/// loopback, private (RFC 1918, unique local), shared (carrier-grade NAT), link-local (which
/// holds the cloud metadata endpoints 169.254.169.254 and fd00:ec2::254), unspecified,
/// multicast, broadcast and reserved ranges; IPv4 written inside IPv6 (mapped, NAT64) is
/// judged as the IPv4 address it carries.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // 64:ff9b::/96, the NAT64 prefix: the last 32 bits are an IPv4 address.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return forbidden_v4(Ipv4Addr::new(a, b, c, d));
            }
            forbidden_v6(v6)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address (where cloud metadata services answer)"
    } else if a == 100 && (64..128).contains(&b) {
        "a shared (carrier-grade NAT) address"
    } else if ip.is_unspecified() || a == 0 {
        "an unspecified address"
    } else if ip.is_broadcast() {
        "the broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if a >= 240 || (a == 198 && (18..20).contains(&b)) || (a == 192 && b == 0 && ip.octets()[2] == 0) {
        "a reserved address"
    } else {
        return None;
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_unique_local() {
        "a private (unique local) address"
    } else if ip.is_unicast_link_local() {
        "a link-local address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else {
        return None;
    })
}

/// A URL as notify shows it: scheme, host and port, never the path, query or credentials
/// (Slack and Discord webhook URLs are secrets in their path).
pub fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        let refused = [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{ip} must be refused");
        }
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d70e",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{ip} is public");
        }
        assert_eq!(refused.len(), 22);
    }

    #[test]
    fn urls_must_be_https_public_and_without_credentials_unless_allowed() {
        let strict = Guard { allow_private: false };
        let open = Guard { allow_private: true };
        for (url, needle) in [
            ("http://hooks.example.com/x", "only https://"),
            ("ftp://hooks.example.com/x", "only https://"),
            ("https://127.0.0.1/x", "loopback"),
            ("https://[::1]:8443/x", "loopback"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://10.1.2.3/x", "private"),
            ("https://user:pw@hooks.example.com/x", "user name or password"),
            ("not a url", "not a URL"),
        ] {
            let err = strict.check_url(url).unwrap_err().0;
            assert!(err.contains(needle), "{url}: {err}");
        }
        assert!(strict
            .check_url("https://hooks.slack.com/services/T0/B0/secret")
            .is_ok());
        assert!(open.check_url("http://127.0.0.1:8080/hooks/a").is_ok());
        // The path (a secret for Slack and Discord) is never shown.
        let err = strict
            .check_url("http://hooks.slack.com/services/T0/B0/s3cr3t")
            .unwrap_err()
            .0;
        assert!(
            !err.contains("s3cr3t") && err.contains("http://hooks.slack.com/…"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn names_are_checked_where_they_are_resolved() {
        let strict = Guard { allow_private: false };
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("localhost resolves to") && err.contains("loopback"),
            "{err}"
        );
        let open = Guard { allow_private: true };
        let addrs: Vec<SocketAddr> = open
            .resolve("localhost".parse().unwrap())
            .await
            .expect("allowed")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
