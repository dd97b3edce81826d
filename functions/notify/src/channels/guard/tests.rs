use super::*;
use ipnet::IpNet;
use reqwest::dns::Resolve;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Addresses in the refused ranges, each with the words its reason must hold: at the start,
/// inside and at the end of every range.
const REFUSED: &[(&str, &str)] = &[
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

/// Addresses just outside the refused ranges, and others that are public.
const PUBLIC: &[&str] = &[
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

/// Every refused range, by an address at its start, inside and at its end, with the words
/// its reason must hold; and addresses just outside, which are public.
#[test]
fn every_special_purpose_range_is_refused_and_its_neighbours_are_public() {
    let refused = REFUSED;
    for (ip, needle) in refused {
        let addr: IpAddr = ip.parse().unwrap();
        let why = forbidden(addr).unwrap_or_else(|| panic!("{ip} must be refused"));
        assert!(why.contains(needle), "{ip}: {why:?} should say {needle:?}");
    }
    let public = PUBLIC;
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
