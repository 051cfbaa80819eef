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
