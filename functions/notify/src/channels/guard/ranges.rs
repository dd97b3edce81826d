//! Which addresses are public: IANA's IPv4 and IPv6 Special-Purpose Address Registries as
//! tables ([`V4_REFUSED`], [`V6_REFUSED`]), and the IPv4 addresses an IPv6 address carries
//! (mapped, NAT64, 6to4, Teredo, IPv4-compatible), judged as IPv4. Its own file because the
//! tables follow the registries and are checked against them, apart from the policy that
//! applies them (the parent module's doc says which ranges are refused and why).

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv4 network `a.b.c.d/len`.
const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

/// The IPv6 network `segments/len`.
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
pub(super) enum Embedding {
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

/// The IPv4 address written as two 16-bit halves.
fn v4_of(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// The IPv4 addresses `ip` carries, and how.
pub(super) fn embedded_v4(ip: Ipv6Addr) -> Vec<(Embedding, Ipv4Addr)> {
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

/// Why an IPv4 address is refused: its row of [`V4_REFUSED`], if any.
fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4_REFUSED
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

/// Why an IPv6 address is refused: by the IPv4 it carries, by [`V6_REFUSED`], or for lying
/// outside the global unicast space.
fn forbidden_v6(ip: Ipv6Addr) -> Option<String> {
    let carried = embedded_v4(ip);
    if let Some((how, _)) = carried.first() {
        return forbidden_carrier(*how, &judged(&carried));
    }
    if let Some((_, why)) = V6_REFUSED.iter().find(|(net, _)| net.contains(&ip)) {
        return Some((*why).to_owned());
    }
    (!GLOBAL_UNICAST.contains(&ip)).then(|| "outside the global unicast space 2000::/3 (reserved)".to_owned())
}

/// What each carried IPv4 address is, when it is refused as IPv4.
fn judged(carried: &[(Embedding, Ipv4Addr)]) -> Vec<String> {
    carried
        .iter()
        .filter_map(|(how, v4)| {
            let who = match how {
                Embedding::TeredoServer => "whose Teredo server ",
                Embedding::TeredoClient => "whose Teredo client ",
                _ => "",
            };
            forbidden_v4(*v4).map(|why| format!("{who}{v4}, {why}"))
        })
        .collect()
}

/// Why an address carrying IPv4 the way `how` says is refused, given what its carried
/// addresses are (`judged`): the IPv4 host itself is judged as it, the tunnels and the
/// deprecated form are refused outright.
fn forbidden_carrier(how: Embedding, judged: &[String]) -> Option<String> {
    let inner = |what: &str| match judged.is_empty() {
        true => what.to_owned(),
        false => format!("{what}, carrying {}", judged.join(" and ")),
    };
    match how {
        // The IPv4 host itself: judged as it.
        Embedding::Mapped | Embedding::Nat64 => {
            (!judged.is_empty()).then(|| format!("IPv4 {}", judged.join(" and ")))
        }
        Embedding::SixToFour => Some(inner("a 6to4 address (2002::/16, a tunnel through relays)")),
        Embedding::TeredoServer | Embedding::TeredoClient => {
            Some(inner("a Teredo address (2001::/32, a tunnel through relays)"))
        }
        Embedding::Compatible => Some(inner(
            "an IPv4-compatible address (::/96, deprecated by RFC 4291)",
        )),
    }
}
