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

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use url::{Host, Url};

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

/// The ports a target may name (`WEBHOOK_ALLOWED_PORTS`): a comma-separated list of 1 to
/// 65535. Unset ([`AllowedPorts::DEFAULT`]): 443 only, or any port when private targets are
/// allowed; a list the operator sets applies in both cases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedPorts(pub Option<Vec<u16>>);

impl AllowedPorts {
    /// Unset: 443, or any port under `WEBHOOK_ALLOW_PRIVATE=true`.
    pub const DEFAULT: Self = Self(None);

    /// Whether `port` may be connected to, private targets allowed or not.
    pub fn allows(&self, port: u16, allow_private: bool) -> bool {
        match &self.0 {
            Some(list) => list.contains(&port),
            None => allow_private || port == 443,
        }
    }

    /// The rule as words, for a refusal.
    fn shown(&self) -> String {
        match &self.0 {
            Some(list) => list.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
            None => "443".into(),
        }
    }
}

impl FromStr for AllowedPorts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ports = s
            .split(',')
            .map(|p| match p.trim().parse::<u16>() {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(format!(
                    "{:?} is not a port: expected a comma-separated list of ports 1 to 65535, e.g. 443,8443",
                    p.trim()
                )),
            })
            .collect::<Result<Vec<u16>, String>>()?;
        Ok(Self(Some(ports)))
    }
}

/// The operator's deny list (`WEBHOOK_DENY_CIDRS`): comma-separated CIDRs (`203.0.113.0/24`,
/// `2001:db8:1::/48`; a bare address is one host). An address refused here is refused in
/// every form that reaches it (IPv4-mapped, NAT64, and the tunnel forms, by their embedded
/// IPv4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList(pub Vec<IpNet>);

impl DenyList {
    /// The listed range `ip` (or an IPv4 address it carries) falls in, if any.
    pub fn matching(&self, ip: IpAddr) -> Option<IpNet> {
        let mut reached = vec![ip];
        if let IpAddr::V6(v6) = ip {
            reached.extend(embedded_v4(v6).into_iter().map(|(_, v4)| IpAddr::V4(v4)));
        }
        self.0
            .iter()
            .copied()
            .find(|net| reached.iter().any(|ip| net.contains(ip)))
    }
}

impl FromStr for DenyList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let nets = s
            .split(',')
            .map(|item| {
                let item = item.trim();
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "{item:?} is not a CIDR: expected a comma-separated list such as \
                             10.96.0.0/12,2001:db8:1::/48"
                        )
                    })
            })
            .collect::<Result<Vec<IpNet>, String>>()?;
        Ok(Self(nets))
    }
}

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

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
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

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// The IPv4 ranges refused: every entry of IANA's IPv4 Special-Purpose Address Registry that
/// is not globally reachable (192.0.0.0/24 whole, though two anycast addresses in it are:
/// protocol services, never a webhook host), the deprecated 6to4 relay anycast, multicast
/// and the limited broadcast. Globally reachable entries (AS112 192.31.196.0/24 and
/// 192.175.48.0/24, AMT 192.52.193.0/24) are public.
pub const V4_REFUSED: [(Ipv4Net, &str); 16] = [
    (v4(0, 0, 0, 0, 8), "an unspecified (\"this network\") address"),
    (v4(10, 0, 0, 0, 8), "a private address"),
    (v4(100, 64, 0, 0, 10), "a shared (carrier-grade NAT) address"),
    (v4(127, 0, 0, 0, 8), "a loopback address"),
    (
        v4(169, 254, 0, 0, 16),
        "a link-local address (where cloud metadata services answer)",
    ),
    (v4(172, 16, 0, 0, 12), "a private address"),
    (v4(192, 0, 0, 0, 24), "an IETF protocol assignment (192.0.0.0/24)"),
    (v4(192, 0, 2, 0, 24), "a documentation address"),
    (v4(192, 88, 99, 0, 24), "the deprecated 6to4 relay anycast range"),
    (v4(192, 168, 0, 0, 16), "a private address"),
    (v4(198, 18, 0, 0, 15), "a benchmarking address"),
    (v4(198, 51, 100, 0, 24), "a documentation address"),
    (v4(203, 0, 113, 0, 24), "a documentation address"),
    (v4(224, 0, 0, 0, 4), "a multicast address"),
    (v4(255, 255, 255, 255, 32), "the broadcast address"),
    (v4(240, 0, 0, 0, 4), "a reserved address"),
];

/// The IPv6 ranges refused outright, before the rule that only global unicast `2000::/3` is
/// public: IANA's IPv6 Special-Purpose Address Registry entries that are not globally
/// reachable (2001::/23 whole: the globally reachable entries inside it are anycast protocol
/// services and overlay identifiers, never a webhook host), and the ones outside 2000::/3 by
/// name, for the reason shown. The forms carrying an IPv4 address are judged before this
/// table ([`forbidden`]).
pub const V6_REFUSED: [(Ipv6Net, &str); 12] = [
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "a loopback address"),
    (v6([0; 8], 128), "an unspecified address"),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "a local-use NAT64 address (64:ff9b:1::/48)",
    ),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "a discard-only address"),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "an IETF protocol assignment (2001::/23)",
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "a documentation address",
    ),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "a documentation address"),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        "a segment-routing (SRv6) address",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "a private (unique local) address",
    ),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "a link-local address"),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "a site-local address (deprecated, RFC 3879)",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast address"),
];

/// The global unicast space: the only IPv6 a target may be in (less the table above); the
/// rest is reserved or unassigned (IANA's IPv6 Address Space registry).
const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// How an IPv6 address carries an IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedding {
    /// `::ffff:a.b.c.d`: the IPv4 host itself.
    Mapped,
    /// `64:ff9b::a.b.c.d`: the IPv4 host through the network's NAT64.
    Nat64,
    /// `::a.b.c.d`, deprecated.
    Compatible,
    /// `2002:AABB:CCDD::/48`: the 6to4 site whose router is a.b.c.d.
    SixToFour,
    /// `2001:0:SSSS:SSSS:…`: the Teredo server.
    TeredoServer,
    /// `…:CCCC:CCCC` XOR `0xffffffff`: the Teredo client's public (NAT) address.
    TeredoClient,
}

fn v4_of(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// The IPv4 addresses `ip` carries, and how.
fn embedded_v4(ip: Ipv6Addr) -> Vec<(Embedding, Ipv4Addr)> {
    let s = ip.segments();
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => vec![(Embedding::Mapped, v4_of(hi, lo))],
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => vec![(Embedding::Nat64, v4_of(hi, lo))],
        // `::` and `::1` are not IPv4-compatible addresses (RFC 4291 §2.5.5.1).
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => vec![(Embedding::Compatible, v4_of(hi, lo))],
        [0x2002, hi, lo, ..] => vec![(Embedding::SixToFour, v4_of(hi, lo))],
        [0x2001, 0, shi, slo, _, _, chi, clo] => vec![
            (Embedding::TeredoServer, v4_of(shi, slo)),
            (Embedding::TeredoClient, v4_of(!chi, !clo)),
        ],
        _ => Vec::new(),
    }
}

/// Why `ip` is no place to send a user's notifications to, or `None` for a public address
/// (the module's doc says which are; [`V4_REFUSED`] and [`V6_REFUSED`] list them).
pub fn forbidden(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4).map(str::to_owned),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4_REFUSED
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<String> {
    let carried = embedded_v4(ip);
    // What each carried IPv4 address is, when it is refused as IPv4.
    let judged: Vec<String> = carried
        .iter()
        .filter_map(|(how, v4)| {
            let who = match how {
                Embedding::TeredoServer => "whose Teredo server ",
                Embedding::TeredoClient => "whose Teredo client ",
                _ => "",
            };
            forbidden_v4(*v4).map(|why| format!("{who}{v4}, {why}"))
        })
        .collect();
    let inner = |what: &str| match judged.is_empty() {
        true => what.to_owned(),
        false => format!("{what}, carrying {}", judged.join(" and ")),
    };
    match carried.first().map(|(how, _)| how) {
        // The IPv4 host itself: judged as it.
        Some(Embedding::Mapped) | Some(Embedding::Nat64) => {
            return (!judged.is_empty()).then(|| format!("IPv4 {}", judged.join(" and ")))
        }
        Some(Embedding::SixToFour) => {
            return Some(inner("a 6to4 address (2002::/16, a tunnel through relays)"))
        }
        Some(Embedding::TeredoServer) | Some(Embedding::TeredoClient) => {
            return Some(inner("a Teredo address (2001::/32, a tunnel through relays)"))
        }
        Some(Embedding::Compatible) => {
            return Some(inner(
                "an IPv4-compatible address (::/96, deprecated by RFC 4291)",
            ))
        }
        None => {}
    }
    if let Some((_, why)) = V6_REFUSED.iter().find(|(net, _)| net.contains(&ip)) {
        return Some((*why).to_owned());
    }
    (!GLOBAL_UNICAST.contains(&ip)).then(|| "outside the global unicast space 2000::/3 (reserved)".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refused range, by an address at its start, inside and at its end, with the words
    /// its reason must hold; and addresses just outside, which are public.
    #[test]
    fn every_special_purpose_range_is_refused_and_its_neighbours_are_public() {
        let refused: &[(&str, &str)] = &[
            ("0.0.0.0", "unspecified"),
            ("0.255.255.255", "unspecified"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("100.64.0.1", "shared"),
            ("100.127.255.255", "shared"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("169.254.169.254", "metadata"),
            ("172.16.5.4", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF protocol assignment"),
            ("192.0.0.170", "IETF protocol assignment"),
            ("192.0.2.10", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.254", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::a00:1", "IPv4-compatible"),
            ("::8.8.8.8", "IPv4-compatible"),
            ("::127.0.0.1", "127.0.0.1, a loopback"),
            ("::ffff:127.0.0.1", "IPv4 127.0.0.1, a loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::ffff:0:a00:1", "outside the global unicast"),
            ("64:ff9b::a00:1", "IPv4 10.0.0.1, a private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b:1::5db8:d70e", "local-use NAT64"),
            ("64:ff9b:1:ffff::1", "local-use NAT64"),
            ("100::1", "discard-only"),
            ("100:0:0:1::1", "outside the global unicast"),
            ("2001::1", "Teredo"),
            // Teredo: server 10.0.0.1; client 192.168.0.1 (c0a8:0001 XOR ffff:ffff = 3f57:fffe).
            ("2001:0:a00:1::3f57:fffe", "Teredo server 10.0.0.1, a private"),
            ("2001:0:a00:1::3f57:fffe", "Teredo client 192.168.0.1, a private"),
            ("2001:0:5db8:d70e:0:fbaa:f7f7:f7f7", "Teredo"),
            ("2001:2::1", "IETF protocol assignment"),
            ("2001:1ff:ffff::1", "IETF protocol assignment"),
            ("2001:db8::1", "documentation"),
            ("2001:db8:ffff:ffff::1", "documentation"),
            (
                "2002:a00:1::1",
                "6to4 address (2002::/16, a tunnel through relays), carrying 10.0.0.1, a private",
            ),
            ("2002:7f00:1::1", "127.0.0.1, a loopback"),
            ("2002:a9fe:a9fe::1", "metadata"),
            ("2002:5db8:d70e::1", "6to4"),
            ("3fff::1", "documentation"),
            ("3fff:fff:ffff::1", "documentation"),
            ("5f00::1", "segment-routing"),
            ("fc00::1", "unique local"),
            ("fd00:ec2::254", "unique local"),
            ("fdff:ffff::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fec0::1", "site-local"),
            ("feff:ffff::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("4000::1", "outside the global unicast"),
            ("e000::1", "outside the global unicast"),
        ];
        for (ip, needle) in refused {
            let addr: IpAddr = ip.parse().unwrap();
            let why = forbidden(addr).unwrap_or_else(|| panic!("{ip} must be refused"));
            assert!(why.contains(needle), "{ip}: {why:?} should say {needle:?}");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.1",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.98.255",
            "192.167.255.255",
            "192.169.0.0",
            "192.175.48.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "2001:200::1",
            "2001:db9::1",
            "2003::1",
            "2620:4f:8000::1",
            "3fff:1000::1",
            "::ffff:1.1.1.1",
            "64:ff9b::5db8:d70e",
            "64:ff9b::808:808",
        ];
        for ip in public {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden(addr), None, "{ip} is public");
        }
        println!(
            "{} refused and {} public addresses checked",
            refused.len(),
            public.len()
        );
        assert_eq!((refused.len(), public.len()), (65, 33));
        // Each row of both tables is met by at least one refused address above.
        for (net, _) in V4_REFUSED {
            assert!(
                refused
                    .iter()
                    .filter_map(|(ip, _)| ip.parse::<Ipv4Addr>().ok())
                    .any(|ip| net.contains(&ip)),
                "{net} has no case"
            );
        }
        for (net, _) in V6_REFUSED {
            assert!(
                refused
                    .iter()
                    .filter_map(|(ip, _)| ip.parse::<Ipv6Addr>().ok())
                    .any(|ip| net.contains(&ip)),
                "{net} has no case"
            );
        }
    }

    #[test]
    fn urls_must_be_https_public_on_an_allowed_port_and_without_credentials_unless_allowed() {
        let strict = Guard::strict();
        let open = Guard::open();
        let cases = [
            ("http://hooks.example.com/x", "only https://"),
            ("ftp://hooks.example.com/x", "only https://"),
            ("https://127.0.0.1/x", "loopback"),
            ("https://[::1]/x", "loopback"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://10.1.2.3/x", "private"),
            ("https://[2002:a00:1::1]/x", "6to4"),
            ("https://[fec0::1]/x", "site-local"),
            (
                "https://hooks.example.com:8443/x",
                "port 8443: the allowed ports are 443",
            ),
            ("https://[::1]:8443/x", "loopback"),
            ("https://93.184.215.14:22/x", "port 22"),
            ("https://user:pw@hooks.example.com/x", "user name or password"),
            ("not a url", "not a URL"),
        ];
        for (url, needle) in cases {
            let err = strict.check_url(url).unwrap_err().0;
            assert!(err.contains(needle), "{url}: {err}");
        }
        assert_eq!(cases.len(), 13);
        assert!(strict
            .check_url("https://hooks.slack.com/services/T0/B0/secret")
            .is_ok());
        assert!(strict.check_url("https://hooks.example.com:443/x").is_ok());
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

    #[test]
    fn a_port_list_applies_even_with_private_targets_allowed_and_the_deny_list_always() {
        let ports: AllowedPorts = "443, 8443".parse().unwrap();
        let deny: DenyList = "203.0.113.0/24, 2606:4700:1::/48, 93.184.215.14".parse().unwrap();
        let strict = Guard {
            ports: ports.clone(),
            deny: deny.clone(),
            ..Guard::strict()
        };
        let open = Guard {
            ports,
            deny,
            ..Guard::open()
        };
        assert!(strict.check_url("https://hooks.example.com:8443/x").is_ok());
        assert!(open.check_url("http://127.0.0.1:8443/x").is_ok());
        // http's default port 80 is not listed.
        let err = open.check_url("http://127.0.0.1/x").unwrap_err().0;
        assert!(err.contains("port 80: the allowed ports are 443, 8443"), "{err}");
        let denied = [
            "https://93.184.215.14/x",
            "https://[2606:4700:1::5]/x",
            "https://[::ffff:93.184.215.14]/x",
            "https://[64:ff9b::5db8:d70e]/x",
        ];
        for guard in [&strict, &open] {
            for url in denied {
                let err = guard.check_url(url).unwrap_err().0;
                assert!(err.contains("WEBHOOK_DENY_CIDRS"), "{url}: {err}");
            }
        }
        // 203.0.113.0/24 is denied by the operator and, for the strict guard, documentation.
        let why = open.refuses("203.0.113.5".parse().unwrap()).unwrap();
        assert!(why.contains("in 203.0.113.0/24"), "{why}");
        assert_eq!(open.refuses("2606:4700::1111".parse().unwrap()), None);
        assert_eq!(Guard::open().refuses("10.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn bad_port_lists_and_deny_lists_are_refused() {
        let ports = ["", "0", "65536", "443,", "https", "443;8443", "-1"];
        for bad in ports {
            let err = bad.parse::<AllowedPorts>().unwrap_err();
            assert!(err.contains("is not a port"), "{bad:?}: {err}");
        }
        let cidrs = [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "fd00::/129",
            "pods",
            "10.0.0.0/8,",
            "10.0.0.0/8;fd00::/8",
        ];
        for bad in cidrs {
            let err = bad.parse::<DenyList>().unwrap_err();
            assert!(err.contains("is not a CIDR"), "{bad:?}: {err}");
        }
        assert_eq!((ports.len(), cidrs.len()), (7, 7));
        assert_eq!(
            " 443 ,8443".parse::<AllowedPorts>().unwrap(),
            AllowedPorts(Some(vec![443, 8443]))
        );
        // Host bits are dropped: the range is the network.
        assert_eq!(
            "10.1.2.3/8".parse::<DenyList>().unwrap().0,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
    }

    #[tokio::test]
    async fn names_are_checked_where_they_are_resolved() {
        let strict = Guard::strict();
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("localhost resolves to") && err.contains("loopback"),
            "{err}"
        );
        let open = Guard::open();
        let addrs: Vec<SocketAddr> = open
            .resolve("localhost".parse().unwrap())
            .await
            .expect("allowed")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        // The deny list holds for resolved names too, private targets allowed or not.
        let denied = Guard {
            deny: "127.0.0.0/8,::1".parse().unwrap(),
            ..Guard::open()
        };
        let err = match denied.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("a denied range must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("WEBHOOK_DENY_CIDRS"), "{err}");
    }
}
