//! The emulator's HTTP side: OpenAI's three Realtime endpoints and GPT-Live's create and
//! hang-up on a small hyper server.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request};
use serde_json::{Value, json};

use super::Shared;
use super::faults::{ErrorResponse, error_response};

/// Largest request body accepted (an SDP offer is ~2 KB).
const MAX_BODY: usize = 64 * 1024;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/realtime/client_secrets`.
    ClientSecrets,
    /// `POST /v1/realtime/calls`.
    Calls,
    /// `POST /v1/realtime/calls/{id}/hangup`.
    Hangup(String),
    /// `POST /v1/live/sessions`.
    LiveSessions,
    /// `POST /v1/live/sessions/{id}/hangup` (documented for SIP; the emulator ends a WebRTC
    /// session with `session.closed`, reason `close_requested`).
    LiveHangup(String),
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// Anything else.
    NotFound,
}

/// Maps a method and path to a [`Route`].
pub fn route(method: &Method, path: &str) -> Route {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let target = match segments.as_slice() {
        ["", "v1", "realtime", "client_secrets"] => Route::ClientSecrets,
        ["", "v1", "realtime", "calls"] => Route::Calls,
        ["", "v1", "realtime", "calls", id, "hangup"] if !id.is_empty() => {
            Route::Hangup((*id).to_string())
        }
        ["", "v1", "live", "sessions"] => Route::LiveSessions,
        ["", "v1", "live", "sessions", id, "hangup"] if !id.is_empty() => {
            Route::LiveHangup((*id).to_string())
        }
        _ => return Route::NotFound,
    };
    if method == Method::POST {
        target
    } else {
        Route::MethodNotAllowed
    }
}

use super::answer::{Resp, answer_offer, respond};

fn error(e: ErrorResponse) -> Resp {
    let mut r = respond(e.status, "application/json", e.body);
    for (k, v) in e.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn bad_request(message: &str) -> Resp {
    error(error_response(400, None, Some(message)))
}

fn has_bearer(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| !k.trim().is_empty())
}

async fn body(req: Request<Incoming>) -> Result<Bytes, Resp> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(bad_request(&format!(
            "Could not read the request body: {e}"
        ))),
    }
}

/// Handles one request.
pub(super) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let r = route(req.method(), req.uri().path());
    let needs_key = !matches!(r, Route::MethodNotAllowed | Route::NotFound);
    if needs_key && !has_bearer(&req) {
        return Ok(error(error_response(
            401,
            None,
            Some("You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."),
        )));
    }
    if matches!(r, Route::ClientSecrets | Route::Calls | Route::LiveSessions)
        && let Some(e) = shared.take_http_fault()
    {
        return Ok(error(e));
    }
    Ok(match r {
        Route::ClientSecrets => client_secret(&shared, req).await,
        Route::Calls => call(&shared, req).await,
        Route::LiveSessions => {
            let header = |name| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let content_type = header(CONTENT_TYPE);
            let query = req.uri().query().map(str::to_string);
            match body(req).await {
                Ok(b) => super::live::http::create(&shared, content_type, query, b).await,
                Err(r) => r,
            }
        }
        Route::Hangup(id) | Route::LiveHangup(id) => {
            if shared.hang_up(&id) {
                respond(200, "application/json", "{}".into())
            } else {
                error(error_response(
                    404,
                    None,
                    Some(&format!("No call with id '{id}'.")),
                ))
            }
        }
        Route::MethodNotAllowed => error(error_response(405, None, Some("Use POST."))),
        Route::NotFound => error(error_response(404, None, Some("Unknown endpoint."))),
    })
}

async fn client_secret(shared: &Shared, req: Request<Incoming>) -> Resp {
    let bytes = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request: Value = if bytes.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return bad_request(&format!("The body is not valid JSON: {e}")),
        }
    };
    let seconds = request["expires_after"]["seconds"].as_u64().unwrap_or(600);
    if !(10..=7200).contains(&seconds) {
        return bad_request("expires_after.seconds must be between 10 and 7200.");
    }
    let n = shared.note_secret();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut session = json!({
        "type": "realtime",
        "object": "realtime.session",
        "id": format!("sess_EMU{n:06}"),
        "model": shared.scenario.model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": null,
        "truncation": "auto",
        "prompt": null,
        "expires_at": 0,
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": null,
                      "noise_reduction": null, "turn_detection": {"type": "server_vad"}},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": shared.scenario.voice, "speed": 1.0}
        },
        "include": null
    });
    if let Some(s) = request.get("session").filter(|s| s.is_object()) {
        super::script::merge(&mut session, s);
    }
    respond(
        200,
        "application/json",
        json!({"value": format!("ek_emu_{n:06}"), "expires_at": now + seconds, "session": session})
            .to_string(),
    )
}

async fn call(shared: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    let is_sdp = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/sdp"));
    if !is_sdp {
        return bad_request(
            "Expected 'Content-Type: application/sdp' with the SDP offer as the body.",
        );
    }
    let bytes = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(offer) = std::str::from_utf8(&bytes) else {
        return bad_request("The SDP offer is not UTF-8.");
    };
    let (peer, events, answer, held) = match answer_offer(shared, offer, |e| {
        bad_request(&format!("Invalid SDP offer: {e}"))
    })
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let call_id = shared.start_call(peer, events, held);
    let mut r = respond(201, "application/sdp", answer);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/realtime/calls/{call_id}")) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let post = Method::POST;
        assert_eq!(
            route(&post, "/v1/realtime/client_secrets"),
            Route::ClientSecrets
        );
        assert_eq!(route(&post, "/v1/realtime/calls"), Route::Calls);
        assert_eq!(route(&post, "/v1/realtime/calls/"), Route::Calls);
        assert_eq!(
            route(&post, "/v1/realtime/calls/rtc_1/hangup"),
            Route::Hangup("rtc_1".into())
        );
        assert_eq!(
            route(&Method::GET, "/v1/realtime/calls"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(&post, "/v1/realtime/calls//hangup"), Route::NotFound);
        assert_eq!(route(&post, "/v1/realtime"), Route::NotFound);
        assert_eq!(route(&post, "/"), Route::NotFound);
        assert_eq!(route(&post, "/v1/realtime/sessions"), Route::NotFound);
        assert_eq!(route(&post, "/v1/live/sessions"), Route::LiveSessions);
        assert_eq!(
            route(&post, "/v1/live/sessions/live_1/hangup"),
            Route::LiveHangup("live_1".into())
        );
        assert_eq!(route(&post, "/v1/live"), Route::NotFound);
    }
}
