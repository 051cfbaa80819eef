//! `POST /v1/live/sessions`: checks the request ([`super::request`]), answers the offer with
//! the emulator's peer and starts the session; the answer is 201 JSON
//! `{session:{id}, transport:{type:"webrtc", sdp}}` with no `Location` header.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Bytes;
use serde_json::json;
use tokio::sync::oneshot;

use super::request::{self, Refused};
use super::session::LiveSession;
use crate::call::Recorder;
use crate::record::CallRecord;
use crate::{CallEntry, Shared, lock};

use crate::answer::Resp;

fn refused(r: &Refused) -> Resp {
    crate::answer::respond(r.status, "application/json", r.body().to_string())
}

/// Handles a create request whose key and HTTP fault were already checked.
pub(crate) async fn create(
    shared: &Arc<Shared>,
    content_type: Option<String>,
    query: Option<String>,
    body: Bytes,
) -> Resp {
    let req = match request::parse(content_type.as_deref(), query.as_deref(), &body) {
        Ok(r) => r,
        Err(e) => return refused(&e),
    };
    let bad_offer = |e: String| {
        refused(&Refused {
            status: 400,
            code: "invalid_offer",
            param: Some("transport.sdp".into()),
            message: format!("Invalid SDP offer: {e}"),
        })
    };
    let (peer, events, answer, held) =
        match crate::answer::answer_offer(shared, &req.sdp, bad_offer).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let n = {
        let mut s = lock(&shared.stats);
        s.live_sessions += 1;
        s.live_sessions
    };
    let id = format!("live_EMU{n:06}");
    let timing = shared.scenario.live;
    let expire_after = shared
        .faults
        .expire_after
        .unwrap_or(Duration::from_secs(u64::from(timing.max_duration_s)));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires_at = now + expire_after.as_secs_f64().ceil() as u64;
    let session = LiveSession::new(
        shared.scenario.clone(),
        shared.faults.script(),
        &id,
        req,
        expires_at,
    );
    let record = Arc::new(Mutex::new(CallRecord {
        call_id: id.clone(),
        ..CallRecord::default()
    }));
    lock(&shared.records).push(record.clone());
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(super::run::run(
        shared.clone(),
        session,
        peer,
        events,
        rx,
        Recorder::new(record),
        expire_after,
    ));
    lock(&shared.calls).insert(
        id.clone(),
        CallEntry {
            hangup: Some(tx),
            task: task.abort_handle(),
            _dead_ends: held,
        },
    );
    crate::answer::respond(
        201,
        "application/json",
        json!({"session": {"id": id}, "transport": {"type": "webrtc", "sdp": answer}}).to_string(),
    )
}
