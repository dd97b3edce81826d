//! Which targets notify may reach. Webhook and push URLs come from users: without a check a
//! user could point notify at the cluster's own services, the node's loopback or the cloud's
//! metadata endpoint (server-side request forgery) and read or trigger what only the cluster
//! should. So a target must be `https`, on a port `WEBHOOK_ALLOWED_PORTS` lists (443 by
//! default), and every address its host resolves to must be public ([`forbidden`]) and
//! outside the operator's deny list (`WEBHOOK_DENY_CIDRS`, e.g. the cluster's pod and service
//! ranges where those are public addresses).
//!
//! "Public" follows IANA's IPv4 and IPv6 Special-Purpose Address Registries: every range the
//! registries mark not globally reachable is refused, and so are multicast, IPv6 outside the
//! global unicast space `2000::/3` (site-local `fec0::/10`, IPv4-compatible `::/96`, the
//! reserved rest), and the tunnel ranges 6to4 `2002::/16` and Teredo `2001::/32`, whose
//! embedded IPv4 addresses are judged and named in the reason but which are refused outright
//! even when those are public: what answers there is whichever relay the route finds (RFC 7526
//! deprecated 6to4's anycast relays; Teredo is a client-side NAT traversal, not a server's
//! address), a path the operator cannot see or fence. IPv4 written inside IPv6 that reaches
//! exactly that IPv4 host (mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`) is judged as the IPv4
//! address it carries; the local-use NAT64 prefix `64:ff9b:1::/48` (the operator's own
//! translator, which may reach anything) is refused.
//!
//! `WEBHOOK_ALLOW_PRIVATE=true` lifts the `https` rule, the address rules and the default
//! port (any port then, for tests and local use; notify says so at start); a port list the
//! operator sets applies even then, and the deny list always.
//!
//! The addresses are checked by the HTTP client's own resolver ([`Guard`] implements
//! `reqwest::dns::Resolve`), so the addresses checked are the ones connected to: a name that
//! resolves to a public address when looked at and to a private one when connecting (DNS
//! rebinding) is refused as well. A host written as an IP address reaches no resolver and is
//! checked with the URL ([`Guard::check_url`]), as is the port (the client connects to the
//! URL's port, whatever the name resolves to). Redirects are never followed (the client's
//! policy), so a public target cannot hand notify on to a private one.
//!
//! The policy and its verdict ([`Guard::refuses`]) are here; each part it is made of has a
//! file of its own, so that the registry tables can be read (and checked against IANA's)
//! apart from the code that applies them:
//! - `ranges` — which addresses are public: the special-purpose tables and the IPv4
//!   addresses an IPv6 address carries ([`forbidden`]);
//! - `lists` — the operator's settings, parsed: [`AllowedPorts`] and [`DenyList`];
//! - `target` — the check of a target URL ([`Guard::check_url`]) and how a URL is shown
//!   ([`redacted`]);
//! - `resolver` — the check of the addresses a name resolves to ([`Guard`] as the HTTP
//!   client's resolver).

mod lists;
mod ranges;
mod resolver;
mod target;
#[cfg(test)]
mod tests;

pub use lists::{AllowedPorts, DenyList};
pub use ranges::{forbidden, V4_REFUSED, V6_REFUSED};
pub use target::redacted;

use std::net::IpAddr;

/// The target policy: strict unless `allow_private` (`WEBHOOK_ALLOW_PRIVATE=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub allow_private: bool,
    /// `WEBHOOK_ALLOWED_PORTS`.
    pub ports: AllowedPorts,
    /// `WEBHOOK_DENY_CIDRS`: refused always, `allow_private` or not.
    pub deny: DenyList,
}

/// A target refused by the policy: permanent, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Guard {
    /// The strict policy with no deny list: `https`, port 443, public addresses.
    pub const fn strict() -> Self {
        Self {
            allow_private: false,
            ports: AllowedPorts::DEFAULT,
            deny: DenyList(Vec::new()),
        }
    }

    /// Private targets allowed, any port, no deny list (tests, local use).
    pub const fn open() -> Self {
        Self {
            allow_private: true,
            ports: AllowedPorts::DEFAULT,
            deny: DenyList(Vec::new()),
        }
    }

    /// Why the policy refuses `ip`, if it does: the deny list always, the special-purpose
    /// ranges unless private targets are allowed.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        if let Some(net) = self.deny.matching(ip) {
            return Some(format!(
                "in {net}, a range the operator denies (WEBHOOK_DENY_CIDRS)"
            ));
        }
        if self.allow_private {
            None
        } else {
            forbidden(ip)
        }
    }
}
