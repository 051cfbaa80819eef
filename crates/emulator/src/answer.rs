//! What every endpoint answers with, Realtime or GPT-Live: an HTTP response, and the SDP
//! answer to the kiosk's offer as OpenAI gives it.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::Shared;
use super::network;
use jarvis_realtime::peer::{Peer, PeerEvents, PeerHandle, PeerOptions};

pub(crate) type Resp = Response<Full<Bytes>>;

pub(crate) fn respond(status: u16, content_type: &str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

/// Answers `offer` as OpenAI does, after the configured answer delay: UDP host candidates and
/// a passive ICE-TCP one, a blocked transport replaced by a dead end the kiosk can try and fail
/// on. `Err` is the response to send: 500 when a socket cannot be bound, `bad_offer(reason)`
/// when the offer is refused.
pub(crate) async fn answer_offer(
    shared: &Shared,
    offer: &str,
    bad_offer: impl FnOnce(String) -> Resp,
) -> Result<(PeerHandle, PeerEvents, String, network::DeadEnds), Resp> {
    if !shared.faults.answer_delay.is_zero() {
        tokio::time::sleep(shared.faults.answer_delay).await;
    }
    let options = PeerOptions {
        local_ips: vec![shared.peer_ip],
        udp: !shared.faults.block_udp,
        tcp_passive: !shared.faults.refuse_tcp,
        ..PeerOptions::default()
    };
    let (dead, held) = network::dead_ends(&shared.faults, shared.peer_ip)
        .map_err(|e| respond(500, "text/plain", format!("cannot bind a socket: {e}")))?;
    let (peer, events, answer) =
        Peer::answer(offer, options).map_err(|e| bad_offer(e.to_string()))?;
    Ok((peer, events, network::with_candidates(&answer, &dead), held))
}
