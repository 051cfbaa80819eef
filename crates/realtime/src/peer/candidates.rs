//! Which local addresses the kiosk offers as ICE host candidates.
//!
//! str0m gathers nothing by itself, so the peer enumerates the kiosk's interfaces. The choice is a
//! pure function of the interface list and of the Realtime base URL, so it is tested without a
//! network; [`interface_addrs`] is the thin adapter over `getifaddrs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of one network interface, as the selection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// Interface name (`eth0`, `wlan0`, `lo`), for logs.
    pub name: String,
    /// The interface's IPv4 or IPv6 address.
    pub ip: IpAddr,
    /// The interface is administratively up and running.
    pub up: bool,
    /// The interface is a loopback interface.
    pub loopback: bool,
}

/// True when `base_url`'s host is a loopback address or `localhost` (the emulator and the demo
/// live there, so the kiosk must offer a 127.0.0.1 candidate to reach them).
pub fn is_loopback_base_url(base_url: &str) -> bool {
    let Some(host) = base_url_host(base_url) else {
        return false;
    };
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// True when `base_url`'s host is the IPv6 loopback `[::1]`: the kiosk offers `::1` only.
pub fn is_ipv6_loopback_base_url(base_url: &str) -> bool {
    base_url_host(base_url).is_some_and(|h| h.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()))
}

fn base_url_host(base_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let host = url.host_str()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// A global unicast IPv6 address (2000::/3): routable to OpenAI, unlike link-local (fe80::/10),
/// unique-local (fc00::/7) or loopback.
pub fn is_global_ipv6(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xe000 == 0x2000
}

/// The host candidate IPs to offer: every IPv4 address of an interface that is up, not loopback
/// and not link-local (169.254/16 is unroutable to OpenAI), and every global IPv6 address,
/// deduplicated in interface order, preceded by 127.0.0.1 when `want_loopback` is set.
pub fn select_candidate_ips(ifaces: &[InterfaceAddr], want_loopback: bool) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    if want_loopback {
        out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    for iface in ifaces {
        let routable = match iface.ip {
            IpAddr::V4(v4) => {
                !v4.is_loopback()
                    && !v4.is_link_local()
                    && !v4.is_unspecified()
                    && !v4.is_multicast()
                    && !v4.is_broadcast()
            }
            IpAddr::V6(v6) => is_global_ipv6(&v6),
        };
        if iface.up && !iface.loopback && routable && !out.contains(&iface.ip) {
            out.push(iface.ip);
        }
    }
    out
}

/// The kiosk's IPv4 and IPv6 interface addresses (all of them; [`select_candidate_ips`]
/// filters).
pub fn interface_addrs() -> std::io::Result<Vec<InterfaceAddr>> {
    use nix::net::if_::InterfaceFlags;
    let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    Ok(addrs
        .filter_map(|a| {
            let addr = a.address.as_ref()?;
            let ip = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (None, Some(v6)) => IpAddr::V6(v6.ip()),
                (None, None) => return None,
            };
            Some(InterfaceAddr {
                up: a.flags.contains(InterfaceFlags::IFF_UP)
                    && a.flags.contains(InterfaceFlags::IFF_RUNNING),
                loopback: a.flags.contains(InterfaceFlags::IFF_LOOPBACK),
                name: a.interface_name,
                ip,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iface(name: &str, ip: [u8; 4], up: bool, loopback: bool) -> InterfaceAddr {
        InterfaceAddr {
            name: name.into(),
            ip: IpAddr::from(ip),
            up,
            loopback,
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback_base_url("http://127.0.0.1:8080/v1"));
        assert!(is_loopback_base_url("http://127.8.9.1/v1"));
        assert!(is_loopback_base_url("http://localhost:1/v1"));
        assert!(is_loopback_base_url("http://LOCALHOST/v1"));
        assert!(is_loopback_base_url("http://[::1]:9/v1"));
        assert!(!is_loopback_base_url("https://api.openai.com/v1"));
        assert!(!is_loopback_base_url("http://10.0.0.1/v1"));
        assert!(!is_loopback_base_url("not a url"));
        assert!(!is_loopback_base_url(""));
    }

    #[test]
    fn only_global_ipv6_addresses_are_offered() {
        let v6 = |name: &str, ip: &str| InterfaceAddr {
            name: name.into(),
            ip: ip.parse().unwrap(),
            up: true,
            loopback: false,
        };
        let ifaces = [
            v6("eth0", "fe80::1"),
            v6("eth0", "2001:db8::20"),
            v6("eth0", "fd00::5"),
            v6("eth0", "::1"),
            iface("eth0", [192, 168, 1, 20], true, false),
        ];
        assert_eq!(
            select_candidate_ips(&ifaces, false),
            vec![
                "2001:db8::20".parse::<IpAddr>().unwrap(),
                IpAddr::from([192, 168, 1, 20])
            ]
        );
        assert!(is_ipv6_loopback_base_url("http://[::1]:8080/v1"));
        assert!(!is_ipv6_loopback_base_url("http://127.0.0.1:8080/v1"));
    }

    #[test]
    fn down_loopback_and_link_local_interfaces_are_skipped() {
        let ifaces = [
            iface("lo", [127, 0, 0, 1], true, true),
            iface("eth0", [192, 168, 1, 20], true, false),
            iface("eth1", [10, 0, 0, 5], false, false),
            iface("wlan0", [169, 254, 3, 4], true, false),
            iface("eth0", [192, 168, 1, 20], true, false),
            iface("docker0", [172, 17, 0, 1], true, false),
        ];
        assert_eq!(
            select_candidate_ips(&ifaces, false),
            vec![
                IpAddr::from([192, 168, 1, 20]),
                IpAddr::from([172, 17, 0, 1])
            ]
        );
    }

    #[test]
    fn loopback_base_url_adds_localhost_first() {
        let ifaces = [
            iface("lo", [127, 0, 0, 1], true, true),
            iface("eth0", [192, 168, 1, 20], true, false),
        ];
        assert_eq!(
            select_candidate_ips(&ifaces, true),
            vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([192, 168, 1, 20])
            ]
        );
        assert_eq!(
            select_candidate_ips(&[], true),
            vec![IpAddr::from([127, 0, 0, 1])]
        );
        assert!(select_candidate_ips(&[], false).is_empty());
    }

    #[test]
    fn this_machine_has_interfaces() {
        let addrs = interface_addrs().unwrap();
        assert!(addrs.iter().any(|a| a.loopback), "{addrs:?}");
    }

    proptest! {
        #[test]
        fn selection_is_unique_up_and_routable(
            raw in proptest::collection::vec((any::<[u8; 4]>(), any::<bool>(), any::<bool>()), 0..12),
            want_loopback in any::<bool>(),
        ) {
            let ifaces: Vec<_> = raw.iter().map(|(ip, up, lo)| iface("x", *ip, *up, *lo)).collect();
            let out = select_candidate_ips(&ifaces, want_loopback);
            let mut dedup = out.clone();
            dedup.dedup();
            prop_assert_eq!(dedup.len(), out.len());
            prop_assert_eq!(out.first() == Some(&IpAddr::from([127, 0, 0, 1])), want_loopback);
            for ip in out.iter().skip(usize::from(want_loopback)) {
                let IpAddr::V4(v4) = ip else { unreachable!() };
                prop_assert!(!v4.is_loopback() && !v4.is_link_local());
                prop_assert!(ifaces.iter().any(|i| i.ip == *ip && i.up && !i.loopback));
            }
        }
    }
}
