//! Network faults the answer carries (`block-udp`, `refuse-tcp`): the emulator's peer offers
//! only what still works, and the answer names a dead address for what does not, so the kiosk
//! sees what it would behind a firewall: a UDP candidate that never answers, a TCP candidate
//! that refuses.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use super::faults::Faults;

/// Sockets that must outlive the answer (the unanswered UDP candidate); dropped with the call.
#[derive(Debug, Default)]
pub struct DeadEnds {
    /// Bound and never read: checks sent to it go unanswered, without ICMP errors.
    _udp: Option<UdpSocket>,
}

/// The candidate lines to add for `faults` on `ip`, and the sockets to hold meanwhile.
pub fn dead_ends(faults: &Faults, ip: IpAddr) -> std::io::Result<(Vec<String>, DeadEnds)> {
    let mut lines = Vec::new();
    let mut held = DeadEnds::default();
    if faults.block_udp {
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        lines.push(candidate_line("udp", sock.local_addr()?, ""));
        held._udp = Some(sock);
    }
    if faults.refuse_tcp {
        // A port that was just free: nothing listens there once the listener is dropped.
        let addr = TcpListener::bind(SocketAddr::new(ip, 0))?.local_addr()?;
        lines.push(candidate_line("tcp", addr, " tcptype passive"));
    }
    Ok((lines, held))
}

fn candidate_line(proto: &str, addr: SocketAddr, extra: &str) -> String {
    // Host priority for the transport (type preference 126 for UDP, 90 for TCP).
    let prio: u32 = if proto == "udp" { 126 } else { 90 } << 24 | 65535 << 8 | 255;
    format!(
        "a=candidate:dead{proto} 1 {proto} {prio} {} {} typ host{extra}",
        addr.ip(),
        addr.port()
    )
}

/// `sdp` with `lines` added to every media section (after its `a=mid:` line).
pub fn with_candidates(sdp: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        return sdp.to_string();
    }
    let mut out = String::with_capacity(sdp.len() + lines.len() * 80);
    for line in sdp.split_inclusive("\r\n") {
        out.push_str(line);
        if line.starts_with("a=mid:") {
            for l in lines {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_candidates_go_into_each_media_section() {
        let sdp = "v=0\r\nm=audio 9 x\r\na=mid:0\r\na=x\r\nm=application 9 y\r\na=mid:1\r\n";
        let out = with_candidates(sdp, &["a=candidate:1".into()]);
        assert_eq!(
            out,
            "v=0\r\nm=audio 9 x\r\na=mid:0\r\na=candidate:1\r\na=x\r\nm=application 9 y\r\n\
             a=mid:1\r\na=candidate:1\r\n"
        );
        assert_eq!(with_candidates(sdp, &[]), sdp);
    }

    #[test]
    fn each_fault_adds_its_dead_end() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (lines, _held) = dead_ends(&Faults::default(), ip).unwrap();
        assert!(lines.is_empty());
        let faults = Faults {
            block_udp: true,
            refuse_tcp: true,
            ..Faults::default()
        };
        let (lines, held) = dead_ends(&faults, ip).unwrap();
        assert!(held._udp.is_some());
        assert!(
            lines[0].contains(" udp 2130706431 127.0.0.1 "),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("typ host tcptype passive"),
            "{}",
            lines[1]
        );
    }
}
