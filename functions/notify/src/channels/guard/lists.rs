//! The operator's settings for targets, parsed: the ports a target may name
//! (`WEBHOOK_ALLOWED_PORTS`) and the ranges never reached (`WEBHOOK_DENY_CIDRS`). Apart from
//! the policy because they are the configuration's vocabulary too (`crate::config` reads them).

use super::ranges::embedded_v4;
use ipnet::IpNet;
use std::net::IpAddr;
use std::str::FromStr;

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
    pub(super) fn shown(&self) -> String {
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
