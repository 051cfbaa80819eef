//! What the peer tried on the way to the server, per transport, so a connection that never came
//! up names what failed ("UDP to 1.2.3.4:3478: no answer to 12 checks; TCP to 1.2.3.4:443:
//! connection refused") rather than a bare timeout. Pure: the I/O task reports what it sent and
//! received, and asks for the summary when it gives up.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// The transport a connection runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// UDP (preferred: lowest latency, no head-of-line blocking).
    Udp,
    /// ICE-TCP with RFC 4571 framing (when UDP is blocked).
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        })
    }
}

/// What happened on the way to one remote candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Attempt {
    sent: u32,
    received: u32,
    tcp: TcpState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum TcpState {
    #[default]
    NotTried,
    Connecting,
    Connected,
    Failed(String),
}

/// The record of every path tried, keyed by transport and remote address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathLog {
    remotes: BTreeMap<(Transport, SocketAddr), Attempt>,
}

impl PathLog {
    /// A log that lists `offered` remote candidates even if nothing was ever sent to them.
    pub fn new(offered: impl IntoIterator<Item = (Transport, SocketAddr)>) -> Self {
        let mut log = Self::default();
        for key in offered {
            log.remotes.entry(key).or_default();
        }
        log
    }

    /// A packet (a connectivity check, a DTLS record) went to `remote`.
    pub fn on_sent(&mut self, transport: Transport, remote: SocketAddr) {
        self.remotes.entry((transport, remote)).or_default().sent += 1;
    }

    /// A packet came from `remote`.
    pub fn on_received(&mut self, transport: Transport, remote: SocketAddr) {
        self.remotes
            .entry((transport, remote))
            .or_default()
            .received += 1;
    }

    /// A TCP connect to `remote` started.
    pub fn on_tcp_connecting(&mut self, remote: SocketAddr) {
        self.remotes
            .entry((Transport::Tcp, remote))
            .or_default()
            .tcp = TcpState::Connecting;
    }

    /// A TCP link to `remote` is up.
    pub fn on_tcp_connected(&mut self, remote: SocketAddr) {
        self.remotes
            .entry((Transport::Tcp, remote))
            .or_default()
            .tcp = TcpState::Connected;
    }

    /// A TCP link to `remote` failed or ended, for `why`.
    pub fn on_tcp_failed(&mut self, remote: SocketAddr, why: &str) {
        let a = self.remotes.entry((Transport::Tcp, remote)).or_default();
        // Keep the first cause: "connection refused" matters more than a later close.
        if !matches!(a.tcp, TcpState::Failed(_)) {
            a.tcp = TcpState::Failed(why.to_string());
        }
    }

    /// Whether the server offered any candidate on `transport`.
    pub fn offered(&self, transport: Transport) -> bool {
        self.remotes.keys().any(|(t, _)| *t == transport)
    }

    /// One clause per remote candidate, UDP first, joined by "; ".
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .remotes
            .iter()
            .map(|((t, addr), a)| format!("{t} to {addr}: {}", a.outcome(*t)))
            .collect();
        for t in [Transport::Udp, Transport::Tcp] {
            if !self.offered(t) {
                parts.push(format!("{t}: the server offered no {t} candidate"));
            }
        }
        parts.join("; ")
    }
}

impl Attempt {
    fn outcome(&self, transport: Transport) -> String {
        if transport == Transport::Tcp {
            match &self.tcp {
                TcpState::NotTried => return "not tried (no local TCP candidate)".into(),
                TcpState::Connecting => return "TCP connect still pending".into(),
                TcpState::Failed(why) if self.received == 0 => return why.clone(),
                TcpState::Failed(_) | TcpState::Connected => {}
            }
        }
        match (self.sent, self.received) {
            (0, _) => "not tried".into(),
            (n, 0) => format!("no answer to {n} {}", plural(n, "check", "checks")),
            (n, r) => format!("{r} answers to {n} packets, but no working connection"),
        }
    }
}

fn plural<'a>(n: u32, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// The remote candidates in an SDP answer (`a=candidate` lines), as transport and address;
/// lines that do not parse are skipped (str0m has already accepted the SDP).
pub fn sdp_candidates(sdp: &str) -> Vec<(Transport, SocketAddr)> {
    let mut out = Vec::new();
    for line in sdp.lines() {
        let Some(rest) = line.trim().strip_prefix("a=candidate:") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(proto), Some(ip), Some(port)) = (f.get(2), f.get(4), f.get(5)) else {
            continue;
        };
        let transport = if proto.eq_ignore_ascii_case("udp") {
            Transport::Udp
        } else if proto.eq_ignore_ascii_case("tcp") {
            Transport::Tcp
        } else {
            continue;
        };
        let (Ok(ip), Ok(port)) = (ip.parse(), port.parse()) else {
            continue;
        };
        let key = (transport, SocketAddr::new(ip, port));
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_each_failed_transport() {
        let udp = a("1.2.3.4:3478");
        let tcp = a("1.2.3.4:443");
        let mut log = PathLog::new([(Transport::Udp, udp), (Transport::Tcp, tcp)]);
        for _ in 0..12 {
            log.on_sent(Transport::Udp, udp);
        }
        log.on_tcp_connecting(tcp);
        log.on_tcp_failed(tcp, "connection refused");
        log.on_tcp_failed(tcp, "closed by the other side");
        assert_eq!(
            log.summary(),
            "UDP to 1.2.3.4:3478: no answer to 12 checks; TCP to 1.2.3.4:443: connection refused"
        );
    }

    #[test]
    fn a_missing_transport_is_named() {
        let udp = a("1.2.3.4:3478");
        let mut log = PathLog::new([(Transport::Udp, udp)]);
        log.on_sent(Transport::Udp, udp);
        assert_eq!(
            log.summary(),
            "UDP to 1.2.3.4:3478: no answer to 1 check; TCP: the server offered no TCP candidate"
        );
        let log = PathLog::new([(Transport::Tcp, a("1.2.3.4:443"))]);
        assert_eq!(
            log.summary(),
            "TCP to 1.2.3.4:443: not tried (no local TCP candidate); UDP: the server offered no \
             UDP candidate"
        );
    }

    #[test]
    fn answered_checks_are_counted() {
        let tcp = a("[::1]:443");
        let mut log = PathLog::default();
        log.on_tcp_connected(tcp);
        log.on_sent(Transport::Tcp, tcp);
        log.on_received(Transport::Tcp, tcp);
        assert!(
            log.summary()
                .starts_with("TCP to [::1]:443: 1 answers to 1 packets")
        );
    }

    #[test]
    fn candidates_are_read_from_the_answer() {
        let sdp = "v=0\r\n\
            a=candidate:1 1 udp 2130706431 10.0.0.1 3478 typ host\r\n\
            a=candidate:2 1 TCP 1845501695 10.0.0.1 443 typ host tcptype passive\r\n\
            a=candidate:2 1 TCP 1845501695 10.0.0.1 443 typ host tcptype passive\r\n\
            a=candidate:3 1 tcp 1 ::1 443 typ host tcptype passive\r\n\
            a=candidate:bad\r\n\
            a=candidate:4 1 sctp 1 10.0.0.1 1 typ host\r\n";
        assert_eq!(
            sdp_candidates(sdp),
            vec![
                (Transport::Udp, a("10.0.0.1:3478")),
                (Transport::Tcp, a("10.0.0.1:443")),
                (Transport::Tcp, a("[::1]:443")),
            ]
        );
    }
}
