//! The peer on networks that block UDP: active ICE-TCP against a passive candidate, UDP
//! preferred when it works, and a connection that cannot be made naming what it tried.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use jarvis_realtime::peer::{CloseReason, Peer, PeerEvent, PeerEvents, PeerOptions, Transport};
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(15);

async fn until(events: &mut PeerEvents, want: impl Fn(&PeerEvent) -> bool) -> PeerEvent {
    timeout(GUARD, async {
        loop {
            let ev = events.recv().await.expect("peer events ended");
            if want(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("guard timeout waiting for a peer event")
}

fn server(udp: bool, tcp: bool) -> PeerOptions {
    PeerOptions {
        udp,
        tcp_passive: tcp,
        ..PeerOptions::loopback_only()
    }
}

/// Connects a kiosk offerer to an answerer with `answerer` options; returns both ends once the
/// kiosk's channel is open and a message went each way.
async fn connect(kiosk: PeerOptions, answerer: PeerOptions) -> Transport {
    let (pending, offer) = Peer::offer(kiosk).unwrap();
    let (srv, mut srv_events, answer) = Peer::answer(&offer, answerer).unwrap();
    let (peer, mut events) = pending.accept(&answer).unwrap();
    until(&mut events, |e| *e == PeerEvent::ChannelOpen).await;
    peer.send_event(r#"{"type":"ping"}"#.into()).unwrap();
    until(&mut srv_events, |e| matches!(e, PeerEvent::Message(_))).await;
    srv.send_event(r#"{"type":"pong"}"#.into()).unwrap();
    until(&mut events, |e| matches!(e, PeerEvent::Message(_))).await;
    peer.transport()
        .expect("a connected peer knows its transport")
}

#[tokio::test]
async fn tcp_only_answer_connects_over_ice_tcp() {
    let t = connect(PeerOptions::loopback_only(), server(false, true)).await;
    assert_eq!(t, Transport::Tcp);
}

#[tokio::test]
async fn udp_wins_when_both_work() {
    let t = connect(PeerOptions::loopback_only(), server(true, true)).await;
    assert_eq!(t, Transport::Udp);
}

#[tokio::test]
async fn ipv6_loopback_connects_on_both_transports() {
    let v6 = || PeerOptions {
        local_ips: vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
        ..PeerOptions::default()
    };
    let udp = connect(
        v6(),
        PeerOptions {
            tcp_passive: true,
            ..v6()
        },
    )
    .await;
    assert_eq!(udp, Transport::Udp);
    let tcp = connect(
        v6(),
        PeerOptions {
            udp: false,
            tcp_passive: true,
            ..v6()
        },
    )
    .await;
    assert_eq!(tcp, Transport::Tcp);
}

#[tokio::test]
async fn without_tcp_support_a_tcp_only_answer_says_so() {
    let kiosk = PeerOptions {
        tcp_active: false,
        connect_timeout: Duration::from_secs(2),
        ice_disconnect_grace: Duration::from_millis(500),
        ..PeerOptions::loopback_only()
    };
    let (pending, offer) = Peer::offer(kiosk).unwrap();
    let (_srv, _srv_events, answer) = Peer::answer(&offer, server(false, true)).unwrap();
    let (_peer, mut events) = pending.accept(&answer).unwrap();
    let PeerEvent::Closed { reason } =
        until(&mut events, |e| matches!(e, PeerEvent::Closed { .. })).await
    else {
        unreachable!()
    };
    let text = reason.to_string();
    assert!(matches!(reason, CloseReason::Unreachable { .. }), "{text}");
    assert!(text.contains("TCP to 127.0.0.1:"), "{text}");
    assert!(
        text.contains("not tried (no local TCP candidate)"),
        "{text}"
    );
    assert!(
        text.contains("UDP: the server offered no UDP candidate"),
        "{text}"
    );
    assert!(!text.contains("was lost"), "{text}");
}

/// A UDP relay between the kiosk and the answerer that can be cut, as a network that starts
/// dropping UDP mid-call.
struct UdpRelay {
    front: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpRelay {
    async fn start(server: std::net::SocketAddr) -> UdpRelay {
        use std::sync::atomic::Ordering;
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
            let mut kiosk = None;
            loop {
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut a) => {
                        kiosk = Some(from);
                        if !flag.load(Ordering::Relaxed) {
                            let _ = back.send_to(&a[..n], server).await;
                        }
                    }
                    Ok((n, _)) = back.recv_from(&mut b) => {
                        if let (Some(k), false) = (kiosk, flag.load(Ordering::Relaxed)) {
                            let _ = front.send_to(&b[..n], k).await;
                        }
                    }
                }
            }
        });
        UdpRelay {
            front: addr,
            cut,
            task,
        }
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The SDP with its UDP candidate lines dropped (`keep` = false) or re-addressed to `to`.
fn rewrite_udp_candidates(sdp: &str, to: Option<std::net::SocketAddr>) -> String {
    sdp.split_inclusive("\r\n")
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let udp = line.starts_with("a=candidate:") && f.get(2) == Some(&"udp");
            match (udp, to) {
                (false, _) => Some(line.to_owned()),
                (true, None) => None,
                (true, Some(addr)) => Some(format!(
                    "{} {} {} {} {} {} {}\r\n",
                    f[0],
                    f[1],
                    f[2],
                    f[3],
                    addr.ip(),
                    addr.port(),
                    f[6..].join(" ")
                )),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_call_moves_to_tcp_when_udp_stops_mid_call() {
    use std::sync::atomic::Ordering;
    // Default idle timeout and ICE grace, as the daemon runs.
    let (pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    // The answerer learns the kiosk only through the relay (its UDP candidate is withheld).
    let (srv, mut srv_events, answer) =
        Peer::answer(&rewrite_udp_candidates(&offer, None), server(true, true)).unwrap();
    let srv_udp = answer
        .lines()
        .find(|l| l.starts_with("a=candidate:") && l.contains(" udp "))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{}:{}", f[4], f[5]).parse().ok()
        })
        .expect("the answer has a UDP candidate");
    let relay = UdpRelay::start(srv_udp).await;
    let (peer, mut events) = pending
        .accept(&rewrite_udp_candidates(&answer, Some(relay.front)))
        .unwrap();
    until(&mut events, |e| *e == PeerEvent::ChannelOpen).await;
    assert_eq!(peer.transport(), Some(Transport::Udp));

    relay.cut.store(true, Ordering::Relaxed);
    let cut_at = std::time::Instant::now();
    // Messages keep flowing both ways once ICE has moved to the TCP pair.
    let moved = timeout(GUARD * 2, async {
        loop {
            let _ = srv.send_event(r#"{"type":"ping"}"#.into());
            tokio::time::sleep(Duration::from_millis(200)).await;
            if peer.transport() == Some(Transport::Tcp) {
                return;
            }
        }
    })
    .await;
    assert!(moved.is_ok(), "the call did not move to TCP");
    eprintln!("UDP cut -> sending over TCP after {:?}", cut_at.elapsed());
    peer.send_event(r#"{"type":"after"}"#.into()).unwrap();
    until(&mut srv_events, |e| {
        *e == PeerEvent::Message(r#"{"type":"after"}"#.into())
    })
    .await;
}
