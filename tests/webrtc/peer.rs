//! Two real str0m peers over loopback UDP: the kiosk's offerer against an in-process answerer.

use std::time::Duration;

use jarvis_realtime::peer::{CloseReason, Peer, PeerEvent, PeerEvents, PeerOptions};
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(10);

async fn next_where(
    events: &mut PeerEvents,
    mut want: impl FnMut(&PeerEvent) -> bool,
) -> PeerEvent {
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

fn opus_frames(n: usize) -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    (0..n)
        .map(|i| {
            let pcm: Vec<i16> = (0..960)
                .map(|k| {
                    let t = (i * 960 + k) as f32 / 48_000.0;
                    ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16
                })
                .collect();
            let mut out = vec![0u8; 400];
            let len = enc.encode(&pcm, &mut out).unwrap();
            out.truncate(len);
            out
        })
        .collect()
}

#[tokio::test]
async fn offerer_and_answerer_connect_and_exchange_events_and_audio() {
    let (pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    // What both OpenAI APIs need of the offer: the audio m-line first, the data channel's
    // m-line in the same offer (the channel exists before it), and every candidate already in
    // it (no trickle endpoint exists: gathering is complete when the offer is posted).
    let audio = offer.find("m=audio").expect("an audio m-line");
    let data = offer.find("m=application").expect("a data-channel m-line");
    assert!(audio < data, "{offer}");
    assert!(offer.contains("webrtc-datachannel"), "{offer}");
    assert!(offer.contains("a=candidate:"), "{offer}");
    assert!(pending.local_addrs().iter().all(|a| a.ip().is_loopback()));
    let (server, mut server_events, answer) =
        Peer::answer(&offer, PeerOptions::loopback_only()).unwrap();
    let (kiosk, mut kiosk_events) = pending.accept(&answer).unwrap();

    // Queued before the channel is open: must be delivered once it opens.
    kiosk
        .send_event(r#"{"type":"session.update"}"#.into())
        .unwrap();
    assert_eq!(
        next_where(&mut kiosk_events, |_| true).await,
        PeerEvent::Connected
    );
    assert_eq!(
        next_where(&mut kiosk_events, |_| true).await,
        PeerEvent::ChannelOpen
    );
    next_where(&mut server_events, |e| *e == PeerEvent::ChannelOpen).await;
    let got = next_where(&mut server_events, |e| matches!(e, PeerEvent::Message(_))).await;
    assert_eq!(
        got,
        PeerEvent::Message(r#"{"type":"session.update"}"#.into())
    );

    server.send_event("not json at all".into()).unwrap();
    let got = next_where(&mut kiosk_events, |e| matches!(e, PeerEvent::Message(_))).await;
    assert_eq!(got, PeerEvent::Message("not json at all".into()));

    let frames = opus_frames(10);
    for f in &frames {
        kiosk.send_audio(f.clone(), 960).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut received = Vec::new();
    while received.len() < frames.len() {
        if let PeerEvent::Audio(a) =
            next_where(&mut server_events, |e| matches!(e, PeerEvent::Audio(_))).await
        {
            received.push(a);
        }
    }
    for (i, (a, f)) in received.iter().zip(&frames).enumerate() {
        assert_eq!(&a.payload, f, "frame {i}");
    }
    assert_eq!(received[1].rtp_time - received[0].rtp_time, 960);

    kiosk.close().unwrap();
    assert_eq!(
        next_where(&mut kiosk_events, |e| matches!(e, PeerEvent::Closed { .. })).await,
        PeerEvent::Closed {
            reason: CloseReason::Local
        }
    );
    let closed = next_where(&mut server_events, |e| {
        matches!(e, PeerEvent::Closed { .. })
    })
    .await;
    assert_eq!(
        closed,
        PeerEvent::Closed {
            reason: CloseReason::Remote
        }
    );
}

#[tokio::test]
async fn unanswered_offer_ends_naming_what_was_tried() {
    let (pending, offer) = Peer::offer(PeerOptions {
        connect_timeout: Duration::from_millis(300),
        ..PeerOptions::loopback_only()
    })
    .unwrap();
    // An answer whose peer never runs: its sockets are dropped with the handle.
    let (server, _server_events, answer) =
        Peer::answer(&offer, PeerOptions::loopback_only()).unwrap();
    drop(server);
    let (_kiosk, mut events) = pending.accept(&answer).unwrap();
    let ev = next_where(&mut events, |e| matches!(e, PeerEvent::Closed { .. })).await;
    let PeerEvent::Closed {
        reason: reason @ CloseReason::Unreachable { .. },
    } = ev
    else {
        panic!("{ev:?}")
    };
    let text = reason.to_string();
    assert!(text.contains("UDP to 127.0.0.1:"), "{text}");
    assert!(text.contains("no answer to"), "{text}");
}

#[tokio::test]
async fn silent_remote_ends_an_open_session_as_idle() {
    let (pending, offer) = Peer::offer(PeerOptions {
        idle_timeout: Duration::from_millis(800),
        ..PeerOptions::loopback_only()
    })
    .unwrap();
    let (server, mut server_events, answer) =
        Peer::answer(&offer, PeerOptions::loopback_only()).unwrap();
    let (_kiosk, mut events) = pending.accept(&answer).unwrap();
    next_where(&mut events, |e| *e == PeerEvent::ChannelOpen).await;
    next_where(&mut server_events, |e| *e == PeerEvent::ChannelOpen).await;
    drop(server);
    let ev = next_where(&mut events, |e| matches!(e, PeerEvent::Closed { .. })).await;
    assert!(
        matches!(
            ev,
            PeerEvent::Closed {
                reason: CloseReason::Idle { .. }
            }
        ),
        "{ev:?}"
    );
}

#[tokio::test]
async fn garbage_answer_is_a_clear_error() {
    let (pending, _offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    let err = pending.accept("v=0\r\nthis is not sdp").unwrap_err();
    assert!(err.to_string().contains("remote SDP is invalid"), "{err}");
    let err = Peer::answer("garbage", PeerOptions::loopback_only()).unwrap_err();
    assert!(err.to_string().contains("remote SDP is invalid"), "{err}");
}

#[tokio::test]
async fn dropping_the_handle_stops_the_task() {
    let (pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    let (server, mut server_events, answer) =
        Peer::answer(&offer, PeerOptions::loopback_only()).unwrap();
    let (kiosk, mut events) = pending.accept(&answer).unwrap();
    next_where(&mut events, |e| *e == PeerEvent::ChannelOpen).await;
    // Audio before/after open never errors; the handle only fails once the task is gone.
    kiosk.send_audio(vec![0xf8, 0xff, 0xfe], 960).unwrap();
    drop(kiosk);
    // The task owned the event sender: the stream ends without a Closed event.
    let end = timeout(GUARD, async {
        while let Some(ev) = events.recv().await {
            assert!(!matches!(ev, PeerEvent::Closed { .. }), "{ev:?}");
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "event stream did not end after the handle was dropped"
    );
    next_where(&mut server_events, |e| *e == PeerEvent::ChannelOpen).await;
    drop(server_events);
    assert!(!server.is_finished());
}
